"""fnlearn.config: TOML round trips checked by tomllib, builders checked against optax and numpy."""

import dataclasses
import gzip
import math
import struct
import tomllib
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnlearn import config as C
from fnlearn import optim
from fnlearn.config.parse import _set_path
from fnlearn.errors import FnlearnError
from fnlearn.runs.build import build

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.toml"))


# ------------------------------------------------------------------------------------------------
# The TOML writer, against the stdlib reader


def test_default_config_round_trips_through_toml():
    config = C.loads("", name="x")
    text = C.dumps(config)
    assert C.from_dict(tomllib.loads(text)) == config
    assert tomllib.loads(text) == C.to_dict(config)


keys = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8)
scalars = (
    st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(keys, values, max_size=5))
def test_writer_output_is_read_back_by_tomllib(table):
    """Any nesting of the value types (quotes, backslashes, control characters, unicode, ±inf,
    extreme floats and ints, odd keys) reads back equal."""
    assert tomllib.loads(C.dumps(table)) == table


def test_writer_writes_nan_and_infinities():
    table = {"a": math.inf, "b": -math.inf, "c": math.nan}
    back = tomllib.loads(C.dumps(table))
    assert back["a"] == math.inf and back["b"] == -math.inf and math.isnan(back["c"])


settable = st.fixed_dictionaries(
    {},
    optional={
        "data.val": st.floats(0.0, 0.4),
        "data.augment.noise_std": st.floats(0.0, 2.0),
        "model.sizes": st.lists(st.integers(1, 512), max_size=4),
        "model.activation": st.sampled_from(["relu", "tanh", "gelu"]),
        "model.norm": st.sampled_from(["none", "batch_norm", "layer_norm"]),
        "loss.l2": st.floats(0.0, 1.0),
        "loss.options": st.dictionaries(st.sampled_from(["scale", "floor"]), st.floats(0.1, 2.0)),
        "optimizer.learning_rate": st.floats(1e-6, 1.0),
        "optimizer.schedule.options": st.dictionaries(
            st.sampled_from(["alpha", "end_value"]), st.floats(0, 1)
        ),
        "training.seeds": st.lists(st.integers(0, 1000), min_size=1, max_size=4, unique=True),
        "training.batch_size": st.integers(1, 4096),
        "name": st.from_regex(r"[a-z][a-z0-9_.-]{0,10}", fullmatch=True),
    },
)


@settings(max_examples=60, deadline=None)
@given(settable)
def test_any_valid_config_round_trips(settings_):
    raw = {}
    for key, value in settings_.items():
        _set_path(raw, key.split("."), value, key)
    config = C.from_dict(raw, name="r")
    assert C.from_dict(tomllib.loads(C.dumps(config))) == config


# ------------------------------------------------------------------------------------------------
# Overrides


@pytest.mark.parametrize(
    "text, path, value",
    [
        ("optimizer.learning_rate=1e-3", ["optimizer", "learning_rate"], 1e-3),
        ("model.sizes=[64,32]", ["model", "sizes"], [64, 32]),
        ('data.name="iris"', ["data", "name"], "iris"),
        ("data.name=iris", ["data", "name"], "iris"),  # a bare word is a string
        ("model.residual=true", ["model", "residual"], True),
        ('loss.options={scale = "learned"}', ["loss", "options"], {"scale": "learned"}),
        ("data.options.n = 500", ["data", "options", "n"], 500),
        ("training.epochs=0x10", ["training", "epochs"], 16),
    ],
)
def test_override_values_are_toml_literals(text, path, value):
    got_path, got = C.parse_override(text)
    assert got_path == path and got == value
    literal = text.partition("=")[2].strip()
    if literal != "iris":
        assert got == tomllib.loads(f"v = {literal}")["v"]


@pytest.mark.parametrize(
    "text", ["optimizer.learning_rate", "=3", "a..b=1", "model.sizes=[1,", "data.name=two words"]
)
def test_malformed_overrides(text):
    with pytest.raises(FnlearnError, match="--set"):
        C.parse_override(text)


def test_overrides_apply_on_top_of_the_file_and_do_not_touch_it():
    raw = {"optimizer": {"name": "sgd"}}
    out = C.apply_overrides(raw, ["optimizer.learning_rate=0.5", "data.options.n=9"])
    assert raw == {"optimizer": {"name": "sgd"}}
    assert out == {
        "optimizer": {"name": "sgd", "learning_rate": 0.5},
        "data": {"options": {"n": 9}},
    }
    with pytest.raises(FnlearnError, match=r"optimizer.name = \"sgd\" is a value, not a table"):
        C.apply_overrides(raw, ["optimizer.name.x=1"])


# ------------------------------------------------------------------------------------------------
# Validation: each message names the key, the value and what is expected


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["optimizer.learning_rat=1"],
            r"^optimizer.learning_rat: unknown key. Did you mean 'learning_rate'\?",
        ),
        (
            ["optimizer.learning_rate=-1"],
            r"^optimizer.learning_rate = -1: out of range: expected a number > 0.$",
        ),
        (["optimizer.learning_rate=nan"], r"^optimizer.learning_rate = nan: out of range"),
        (["training.epochs=2.5"], r"^training.epochs = 2.5: expected an integer, got a number."),
        (["training.epochs=true"], r"^training.epochs = true: expected an integer, got a boolean."),
        (
            ["model.sizes=[64, 0]"],
            r"^model.sizes = \[64, 0\]: out of range: expected a list of integers each >= 1.",
        ),
        (["model.sizes=64"], r"^model.sizes = 64: expected a list of integers"),
        (
            ["data.name=digts"],
            r"^data.name = \"digts\": unknown dataset. Did you mean 'digits'\? Known: ",
        ),
        (
            ["model.activation=rleu"],
            r"^model.activation = \"rleu\": unknown activation. Did you mean 'relu'\?",
        ),
        (
            ["optimizer.schedule.name=cosine"],
            r"^optimizer.schedule.name = \"cosine\": unknown schedule.",
        ),
        (
            ["training.seeds=[1, 1]"],
            r"^training.seeds = \[1, 1\]: out of range: expected a list of integers without repeats.",
        ),
        (
            ["training.steps=10", "training.epochs=3"],
            r"^training.epochs = 3: expected exactly one of",
        ),
        (["data.val=0.5", "data.test=0.5"], r"^data.val = 0.5: expected val \+ test < 1"),
        (["data=3"], r"^data = 3: expected a table \[data\]"),
        (['name="a b"'], r"^name = \"a b\": expected a run name"),
    ],
)
def test_validation_messages(overrides, message):
    with pytest.raises(FnlearnError, match=message):
        C.loads("", overrides)


def test_steps_without_epochs_means_train_for_steps():
    config = C.loads("[training]\nsteps = 100\n")
    assert (config.training.epochs, config.training.steps) == (0, 100)


def test_toml_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[model\nsizes = [1]\n")
    with pytest.raises(
        FnlearnError, match=r"config file .*bad.toml' is not valid TOML at line 1, column 7: Expected"
    ):
        C.load(path)


# ------------------------------------------------------------------------------------------------
# Building: data, model, head, penalty, optimizer, augmentation


def test_build_digits_infers_widths_and_standardises_on_train():
    built = build(C.loads("[data]\nval = 0.1\ntest = 0.2\n[model]\nsizes = [32]\n"))
    train, val, test = built.splits
    assert (len(train), len(val), len(test)) == (1258, 180, 359)
    assert built.model.input_shape == (64,) and built.model.output_shape == (10,)
    assert built.config.loss.distribution == "categorical"  # "auto" resolved for class labels
    mean = train.x.mean(axis=0)
    np.testing.assert_allclose(mean, 0.0, atol=1e-5)
    assert built.total_steps == 20 * math.ceil(1258 / 32) and built.steps_per_epoch == math.ceil(1258 / 32)


def test_learned_variance_head_gets_two_outputs_per_target():
    built = build(C.loads('[data]\nname = "heteroscedastic"\n[loss]\noptions = {scale = "learned"}\n'))
    assert built.config.loss.distribution == "gaussian"
    assert built.model.output_shape == (2,)
    np.testing.assert_allclose(built.splits.train.y.std(axis=0), 1.0, rtol=1e-5)  # targets standardised


def test_bernoulli_reads_one_output_for_binary_labels_and_rejects_three_classes():
    built = build(C.loads('[data]\nname = "breast_cancer"\n[loss]\ndistribution = "bernoulli"\n'))
    assert built.model.output_shape == (1,)
    with pytest.raises(FnlearnError, match=r"^loss.distribution = \"bernoulli\" does not fit dataset 'iris'"):
        build(C.loads('[data]\nname = "iris"\n[loss]\ndistribution = "bernoulli"\n'))


def test_mlp_options_reach_the_model():
    built = build(C.loads('[model]\nsizes = [16, 16]\nnorm = "batch_norm"\nresidual = true\ndropout = 0.1\n'))
    params, state = built.model.init(jax.random.key(0))
    # block 0 maps 64 → 16 (not residual), block 1 16 → 16 (residual), then the output layer
    assert built.model.layer.sublayers[1].name.startswith("residual")
    assert not built.model.layer.sublayers[0].name.startswith("residual")
    assert jax.tree_util.tree_leaves(state)  # BatchNorm running statistics


@pytest.mark.parametrize("l1, l2", [(0.0, 1e-3), (1e-2, 0.0), (1e-2, 1e-3)])
def test_penalty_is_the_masked_elastic_net(l1, l2):
    built = build(C.loads(f"[model]\nsizes = [8]\n[loss]\nl1 = {l1}\nl2 = {l2}\n"))
    params, _ = built.model.init(jax.random.key(1))
    weights = [np.asarray(layer["w"]) for layer in (params[0][0], params[1])]
    expected = sum(l1 * np.abs(w).sum() + l2 * 0.5 * (w**2).sum() for w in weights)  # biases excluded
    np.testing.assert_allclose(built.penalty(params), expected, rtol=1e-5)
    everything = build(C.loads(f'[model]\nsizes = [8]\n[loss]\nl1 = {l1}\nl2 = {l2}\npenalty_mask = "all"\n'))
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(params)]
    expected_all = sum(l1 * np.abs(x).sum() + l2 * 0.5 * (x**2).sum() for x in leaves)
    np.testing.assert_allclose(everything.penalty(params), expected_all, rtol=1e-5)


def test_no_penalty_when_both_strengths_are_zero():
    assert build(C.loads("")).penalty is None


def _run_updates(tx, params, steps=12, seed=0):
    state = tx.init(params)
    grads_key = jax.random.key(seed)
    out = []
    for i in range(steps):
        grads = jax.tree_util.tree_map(
            lambda p, i=i: 3.0 * jax.random.normal(jax.random.fold_in(grads_key, i), p.shape), params
        )
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        out.append(params)
    return out


def _mask(params):
    return jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key != "b", params)


PARAMS = {"dense": {"w": jnp.ones((3, 4)) * 0.5, "b": jnp.ones((4,)) * 0.1}}


@pytest.mark.parametrize(
    "text, reference",
    [
        (
            '[optimizer]\nname = "adam"\nlearning_rate = 0.01\nclip_norm = 1.0\nweight_decay = 0.1\n'
            '[optimizer.schedule]\nname = "cosine_decay"\n',
            lambda total: optax.chain(
                optax.clip_by_global_norm(1.0),
                optax.add_decayed_weights(0.1, mask=_mask),
                optax.adam(optax.cosine_decay_schedule(0.01, total)),
            ),
        ),
        (
            '[optimizer]\nname = "adamw"\nlearning_rate = 0.01\nweight_decay = 0.1\nweight_decay_mask = "all"\n',
            lambda total: optax.adamw(0.01, weight_decay=0.1),
        ),
        (
            '[optimizer]\nname = "sgd"\nlearning_rate = 0.1\noptions = {momentum = 0.9, nesterov = true}\n'
            '[optimizer.schedule]\nname = "exponential_decay"\noptions = {decay_rate = 0.5, transition_steps = 4}\nwarmup_steps = 3\n',
            lambda total: optax.sgd(
                optax.join_schedules(
                    [optax.linear_schedule(0.0, 0.1, 3), optax.exponential_decay(0.1, 4, 0.5)], [3]
                ),
                momentum=0.9,
                nesterov=True,
            ),
        ),
        (
            '[optimizer]\nname = "rmsprop"\nlearning_rate = 0.01\n'
            '[optimizer.schedule]\nname = "warmup_cosine_decay"\noptions = {init_value = 0.0, warmup_steps = 5}\n',
            lambda total: optax.rmsprop(optax.warmup_cosine_decay_schedule(0.0, 0.01, 5, total)),
        ),
    ],
)
def test_built_optimizer_follows_the_optax_reference(text, reference):
    built = build(C.loads(text + "[training]\nepochs = 1\nbatch_size = 100\n"))
    total = built.total_steps
    assert total == math.ceil(1258 / 100)
    ours = _run_updates(built.optimizer, PARAMS, steps=total + 3)
    theirs = _run_updates(reference(total), PARAMS, steps=total + 3)
    for a, b in zip(ours, theirs):
        chex.assert_trees_all_close(a, b, rtol=1e-5, atol=1e-7)


def test_schedule_options_are_filled_in_and_recorded():
    built = build(
        C.loads(
            '[optimizer]\nlearning_rate = 0.02\n[optimizer.schedule]\nname = "linear"\noptions = {end_value = 0.0}\n'
        )
    )
    assert built.config.optimizer.schedule.options == {
        "end_value": 0.0,
        "init_value": 0.02,
        "transition_steps": built.total_steps,
    }
    # the resolved config builds the same optimizer again, and round-trips
    again = build(C.from_dict(tomllib.loads(C.dumps(built.config))))
    assert again.config == built.config


def test_skip_nonfinite_wraps_in_apply_if_finite():
    built = build(C.loads("[optimizer]\nskip_nonfinite = 3\n"))
    assert optim.skipped_steps(built.optimizer.init(PARAMS)) is not None
    assert optim.skipped_steps(build(C.loads("")).optimizer.init(PARAMS)) is None


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '[optimizer]\nname = "sgd"\noptions = {momentm = 0.9}\n',
            r"^optimizer.options: optimizer 'sgd'",
        ),
        (
            "[optimizer]\noptions = {learning_rate = 0.1}\n",
            r"^optimizer.options.learning_rate: set by the config itself",
        ),
        (
            '[optimizer.schedule]\nname = "exponential_decay"\n',
            r"^optimizer.schedule.options.decay_rate: missing required value",
        ),
        (
            '[loss]\noptions = {scale = "learned"}\n',
            r"^loss.options: distribution 'categorical' has no option 'scale'",
        ),
        ("[data]\noptions = {n = 10}\n", r"^data.options: dataset 'digits' has no option 'n'"),
        (
            '[data]\nname = "iris"\n[data.augment]\nmax_shift = 1\n',
            r"^data.augment.max_shift = 1: expected 0 / false: image transforms",
        ),
        (
            "[data]\nval = 0.0\n[training.early_stopping]\nenabled = true\n",
            r"^training.early_stopping.monitor = \"val_loss\": expected a train_\* metric",
        ),
        ('[data]\nname = "csv"\n', r"^data.options: "),
    ],
)
def test_build_errors_name_the_key(text, message):
    with pytest.raises(FnlearnError, match=message):
        build(C.loads(text))


def test_augmentation_switches_map_to_make_augment():
    from fnlearn.data import augment

    assert build(C.loads("")).augment is None
    built = build(C.loads("[data.augment]\nmax_shift = 1\nflip = true\n"))
    x = jnp.asarray(built.splits.train.x[:4])
    reference = augment.make_augment(image_shape=(8, 8), max_shift=1, flip=True)
    np.testing.assert_array_equal(built.augment(jax.random.key(3), x), reference(jax.random.key(3), x))


# ------------------------------------------------------------------------------------------------
# Sweeps


def test_sweep_grid_is_the_product_with_labels_and_seeds():
    config = C.loads('[sweep.grid]\n"model.norm" = ["none", "batch_norm"]\n')
    runs = C.expand_sweep(config, ["optimizer.learning_rate=1e-3,1e-2", "model.sizes=[64,32],[8]"], seeds=3)
    assert len(runs) == 2 * 2 * 2
    labels = [label for label, _ in runs]
    assert len(set(labels)) == 8 and "norm=batch_norm_learning_rate=0.01_sizes=64-32" in labels
    sizes = {run.model.sizes for _, run in runs}
    assert sizes == {(64, 32), (8,)}
    assert all(run.training.seeds == (0, 1, 2) and run.sweep == C.SweepConfig() for _, run in runs)


def test_sweep_variants_cross_the_grid():
    config = C.loads(
        'name = "v"\n[sweep]\nvariants = [{label = "a", "model.dropout" = 0.1}, {label = "b", "loss.l2" = 0.01}]\n'
        '[sweep.grid]\n"training.batch_size" = [16, 32]\n'
    )
    runs = dict(C.expand_sweep(config))
    assert set(runs) == {"a_batch_size=16", "a_batch_size=32", "b_batch_size=16", "b_batch_size=32"}
    assert runs["a_batch_size=32"].model.dropout == 0.1 and runs["b_batch_size=16"].loss.l2 == 0.01


@pytest.mark.parametrize(
    "grid, message",
    [
        (["optimizer.learning_rate"], r"--grid 'optimizer.learning_rate': expected KEY=V1,V2"),
        (["optimizer.learning_rat=1,2"], r"^optimizer.learning_rat: unknown key"),
        (["optimizer.learning_rate=1,-2"], r"^optimizer.learning_rate = -2: out of range"),
    ],
)
def test_sweep_errors(grid, message):
    with pytest.raises(FnlearnError, match=message):
        C.expand_sweep(C.loads(""), grid)


# ------------------------------------------------------------------------------------------------
# The shipped configs


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_parses_builds_and_says_what_it_shows(path, tmp_path):
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# ") and any(line.startswith("# Takes:") for line in lines[:12])
    config = C.load(path)
    assert config.name == path.stem
    overrides = []
    if config.data.name == "mnist":
        _fake_mnist(tmp_path)
        overrides = [f'data.options.path="{tmp_path}"', "data.options.verify=false", "training.batch_size=16"]
    runs = C.expand_sweep(C.load(path, overrides))
    cache = {}
    for _, run in runs:
        built = build(run, cache=cache)
        assert C.from_dict(tomllib.loads(C.dumps(built.config))) == built.config


def test_mnist_config_without_files_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("FNLEARN_DATA_DIR", str(tmp_path))
    with pytest.raises(FnlearnError, match=r"^data.options: .*train-images-idx3-ubyte"):
        build(C.load(Path(__file__).parent.parent / "configs" / "mnist_mlp.toml"))


def _idx(array: np.ndarray, code: int) -> bytes:
    return (
        struct.pack(">HBB", 0, 0x08, array.ndim)
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.astype(">u1").tobytes()
    )


def _fake_mnist(directory: Path, n_train=60, n_test=20):
    """A tiny IDX set in MNIST's file layout (the IDX format, not MNIST's content)."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28))
        labels = np.arange(n) % 10
        (directory / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images, 3)))
        (directory / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels, 1)))


def test_schema_sections_are_frozen():
    config = C.loads("")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.optimizer.learning_rate = 1.0  # type: ignore[misc]


def test_accumulation_makes_a_step_an_update_of_k_batches_and_the_schedule_follows():
    text = '[data]\nname = "iris"\n[optimizer.schedule]\nname = "cosine_decay"\n[training]\nepochs = 3\nbatch_size = 8\n'
    plain = build(C.loads(text))
    acc = build(C.loads(text + 'accumulate = 4\nema = 0.99\nprecision = "bf16"\n'))
    n = len(acc.splits.train)
    assert plain.steps_per_epoch == -(-n // 8) and acc.steps_per_epoch == -(-n // 32)
    assert acc.total_steps == 3 * acc.steps_per_epoch
    assert acc.config.optimizer.schedule.options["decay_steps"] == acc.total_steps
    from fnlearn.runs.build import fit_kwargs

    assert {k: fit_kwargs(acc)[k] for k in ("accumulate", "ema", "compute_dtype")} == {
        "accumulate": 4,
        "ema": 0.99,
        "compute_dtype": "bfloat16",
    }
    assert not {"accumulate", "ema", "compute_dtype"} & set(fit_kwargs(plain))
    with pytest.raises(FnlearnError, match="training.accumulate = 100: out of range"):
        build(C.loads(text + "accumulate = 100\n"))
    with pytest.raises(FnlearnError, match="training.precision"):
        C.loads(text + 'precision = "fp16"\n')
    with pytest.raises(FnlearnError, match="training.ema"):
        C.loads(text + "ema = 1.0\n")
