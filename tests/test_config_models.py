"""The config's model registry: ``model.name`` picks mlp, cnn or gpt, each with its own keys."""

import jax
import numpy as np
import pytest

import fnlearn as fl
import fnlearn.config as C
from fnlearn import data
from fnlearn.errors import FnlearnError
from fnlearn.runs.build import build, build_model, fit_kwargs
from tests.hostile import assert_one_error_line, run_cli


def test_each_model_name_has_its_own_section_and_round_trips():
    for name, cls in C.MODEL_CONFIGS.items():
        config = C.loads(f'[model]\nname = "{name}"\n[data]\nstandardize = false\n')
        assert type(config.model) is cls and config.model == cls()
        assert C.loads(C.dumps(config)) == config
    assert set(C.MODEL_BUILDERS) == {"mlp", "cnn", "gpt"}


def test_the_mlp_section_is_written_as_before():
    """Existing configs and their written config.toml stay byte for byte what they were."""
    text = C.dumps(C.loads('[model]\nsizes = [64, 32]\ndropout = 0.2\nnorm = "layer_norm"\n'))
    section = text.split("[model]\n")[1].split("\n\n")[0]
    assert section == (
        'name = "mlp"\nsizes = [64, 32]\nactivation = "relu"\ndropout = 0.2\nnorm = "layer_norm"\nresidual = false\nremat = false'
    )


def test_cnn_and_gpt_options_are_read_and_checked():
    cnn = C.loads('[model]\nname = "cnn"\nchannels = [4, 8]\nkernel_size = 5\npool = 1\ndense = []\n').model
    assert (cnn.channels, cnn.kernel_size, cnn.pool, cnn.dense) == ((4, 8), 5, 1, ())
    gpt = C.loads(
        '[model]\nname = "gpt"\nwidth = 16\ndepth = 1\nnum_heads = 2\n[data]\nstandardize = false\n'
    )
    assert (gpt.model.width, gpt.model.depth, gpt.model.num_heads) == (16, 1, 2)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[model]\nchannels = [8]\n", "model.channels: 'channels' is an option of model 'cnn', not 'mlp'."),
        (
            '[model]\nname = "cnn"\nsizes = [8]\n',
            "model.sizes: 'sizes' is an option of model 'mlp', not 'cnn'.",
        ),
        (
            '[model]\nname = "gpt"\nnorm = "layer_norm"\n[data]\nstandardize = false\n',
            "model.norm: 'norm' is an option of models 'mlp' and 'cnn', not 'gpt'.",
        ),
        (
            '[model]\nname = "gpt"\nwidht = 8\n',
            "model.widht: unknown key. Did you mean 'width'? Keys of model 'gpt'",
        ),
        (
            '[model]\nname = "cnm"\nchannels = [8]\n',
            "model.name = \"cnm\": unknown model. Did you mean 'cnn'?",
        ),
        ("[model]\nname = 3\n", "model.name = 3: expected a string, got an integer."),
        ("model = 3\n", "model = 3: expected a table [model], got an integer."),
        (
            '[model]\nname = "cnn"\nchannels = []\n',
            "model.channels = []: out of range: expected a list of integers",
        ),
        ('[model]\nname = "cnn"\npool = 0\n', "model.pool = 0: out of range: expected an integer >= 1."),
        (
            '[model]\nname = "gpt"\nwidth = 10\nnum_heads = 4\n[data]\nstandardize = false\n',
            "model.num_heads = 4: expected a divisor of model.width = 10",
        ),
        ('[model]\nname = "gpt"\n', "data.standardize = true: expected false for model 'gpt'"),
        ('[model]\nname = "cnn"\nremat = 1\n', "model.remat = 1: expected true or false"),
    ],
)
def test_model_mistakes_are_one_line_naming_the_key(text, needle):
    with pytest.raises(FnlearnError) as info:
        C.loads(text)
    assert str(info.value).startswith(needle) and "\n" not in str(info.value), str(info.value)


def test_switching_an_mlp_config_to_cnn_on_the_command_line_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text("[model]\nsizes = [8]\n")
    code, out, err = run_cli(["train", "c.toml", "--set", "model.name=cnn"], capsys)
    assert code == 2 and out == ""
    assert_one_error_line(err, "model.sizes: 'sizes' is an option of model 'mlp', not 'cnn'")
    assert list(tmp_path.iterdir()) == [tmp_path / "c.toml"]


def _images(n=6, shape=(6, 6, 1), classes=3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    return data.from_arrays(x, np.arange(n) % classes, task="classification", name="images")


def _tokens(n=5, length=7, vocab=11):
    x = np.random.default_rng(0).integers(0, vocab, size=(n, length)).astype(np.float32)
    return data.from_arrays(x, np.arange(n) % vocab, task="classification", num_classes=vocab, name="tokens")


def test_every_builder_is_made_from_a_config():
    mlp_config = C.loads('[model]\nsizes = [16, 8]\nnorm = "layer_norm"\n').model
    mlp = build_model(mlp_config, data.load("iris"), 3)
    assert (mlp.input_shape, mlp.output_shape) == ((4,), (3,))
    cnn_config = C.loads('[model]\nname = "cnn"\nchannels = [4]\ndense = [8]\nnorm = "batch_norm"\n').model
    cnn = build_model(cnn_config, _images(), 3)
    assert (cnn.input_shape, cnn.output_shape) == ((6, 6, 1), (3,))
    params, state = jax.eval_shape(lambda: cnn.init(jax.random.key(0)))
    assert params[0][0]["w"].shape == (3, 3, 1, 4) and state[0][1]["mean"].shape == (4,)  # conv, batch norm
    assert params[2][0]["w"].shape == (3 * 3 * 4, 8)  # 6x6 pooled by 2 to 3x3, 4 channels, dense 8
    gpt_config = C.loads(
        '[model]\nname = "gpt"\nwidth = 8\ndepth = 2\nnum_heads = 2\n[data]\nstandardize = false\n'
    )
    gpt = build_model(gpt_config.model, _tokens(), 11)  # vocabulary from the head, max_len = T from the data
    assert (gpt.input_shape, gpt.output_shape) == ((7,), (7, 11))
    shapes = jax.eval_shape(lambda: gpt.init(jax.random.key(0)))[0]
    assert shapes[0]["embedding"].shape == (11, 8) and shapes[1]["embedding"].shape == (7, 8)
    assert len(shapes) == 2 + 2 + 2  # embeddings, depth blocks, final norm and logits


def test_a_model_that_does_not_fit_the_data_is_one_line():
    cnn = C.loads('[model]\nname = "cnn"\n').model
    with pytest.raises(FnlearnError, match=r"^model.name = 'cnn': expected examples with spatial axes"):
        build_model(cnn, data.load("iris"), 3)
    gpt = C.loads('[model]\nname = "gpt"\n[data]\nstandardize = false\n').model
    with pytest.raises(
        FnlearnError, match=r"^model.name = 'gpt': expected token sequences, x of shape \[n, T\]"
    ):
        build_model(gpt, _images(), 3)
    with pytest.raises(FnlearnError, match=r"holding ids 0..9; .* with other values"):
        build_model(gpt, _tokens(vocab=11), 10)


def _losses(text: str) -> list[float]:
    built = build(C.loads(text))
    state = fl.TrainState.create(built.model, built.optimizer, jax.random.key(0))
    _, history = fl.fit(state, (built.splits.train.x, built.splits.train.y), **fit_kwargs(built))
    return [float(row["train_loss"]) for row in history]


def test_model_remat_in_a_config_trains_to_the_same_losses():
    """``[model] remat = true`` builds the rematerialised blocks and changes no number of training."""
    text = (
        '[data]\nname = "iris"\nval = 0.0\n[model]\nsizes = [8, 8]\ndropout = 0.1\n'
        "[training]\nepochs = 2\nbatch_size = 32\n"
    )
    plain = _losses(text)
    remat_text = text.replace("dropout = 0.1\n", "dropout = 0.1\nremat = true\n")
    assert "remat(block_0)" in fl.nn.summary(build(C.loads(remat_text)).model)
    np.testing.assert_allclose(_losses(remat_text), plain, rtol=0, atol=1e-6)
    assert len(plain) == 2
