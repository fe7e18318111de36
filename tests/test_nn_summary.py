"""fl.nn.summary: its counts against fl.tree.num_params, its shapes against the model's outputs."""

from pathlib import Path

import jax
import numpy as np
import pytest
from hostile import run_cli

import fnlearn as fl
from fnlearn import config as fconfig
from fnlearn.errors import FnlearnError
from fnlearn.runs import build as fbuild

ROOT = Path(__file__).parent.parent

MODELS = {
    "mlp": lambda: fl.nn.mlp([8, 16, 16, 2], norm="batch_norm", residual=True, dropout=0.1),
    "cnn": lambda: fl.nn.cnn((8, 8, 1), channels=(4,), dense=(8,), num_outputs=3, norm="batch_norm"),
    "gpt": lambda: fl.nn.gpt(11, 6, width=8, depth=1, num_heads=2),
}


def _rows(text: str) -> list[list[str]]:
    lines = text.splitlines()
    rule = [i for i, line in enumerate(lines) if set(line) == {"-"}]
    return [line.split() for line in lines[rule[0] + 1 : rule[1]]]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_counts_add_up_to_num_params_and_the_last_shape_is_the_output(name):
    model = MODELS[name]()
    params, state = jax.eval_shape(model.init, jax.random.key(0))
    text = fl.nn.summary(model)
    rows = _rows(text)
    assert sum(int(r[-2].replace(",", "")) for r in rows) == fl.tree.num_params(params)
    assert sum(int(r[-1].replace(",", "")) for r in rows) == fl.tree.num_params(state)
    assert f"params: {fl.tree.num_params(params):,} values" in text
    nbytes = sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(params))
    assert (f"{nbytes} bytes" if nbytes < 1024 else f"{nbytes / 1024:.1f} KiB") in text
    assert rows[-1][-3].replace(" ", "") in str(model.output_shape).replace(" ", "")
    assert max(map(len, text.splitlines())) < 100


def test_every_leaf_layer_has_a_row_with_the_shape_it_outputs():
    model = MODELS["mlp"]()
    params, state = model.init(jax.random.key(0))
    x = np.zeros((2, 8), np.float32)
    outputs = fl.nn.intermediates(model, params, state, x)  # the residual block is one entry there
    rows = _rows(fl.nn.summary(model))
    assert [r[0].rsplit("/", 1)[-1] for r in rows[:4]] == ["dense_0", "batch_norm", "relu", "dropout"]
    assert rows[3][2] == str(tuple(outputs[3][1].shape[1:]))


def test_every_shipped_config_fits_in_100_columns():
    # stand-ins for the widest data of the shipped configs: MNIST rows or images, 128-token text
    tokens = np.zeros((2, 128), np.int32)  # only x's shape and ids are read for a GPT
    widest = {
        "mlp": (fl.data.from_arrays(np.zeros((2, 784)), np.arange(2), task="classification"), 10),
        "cnn": (
            fl.data.from_arrays(
                np.zeros((2, 28, 28, 1)), np.arange(2), task="classification", image_shape=(28, 28, 1)
            ),
            10,
        ),
        "gpt": (fl.data.from_arrays(tokens, np.arange(2), task="classification", num_classes=128), 128),
    }
    for path in sorted((ROOT / "configs").glob("*.toml")):
        config = fconfig.load(path)
        model = fbuild.build_model(config.model, *widest[config.model.name])
        assert max(map(len, fl.nn.summary(model).splitlines())) < 100, path.name


def test_long_paths_are_elided_in_the_middle():
    layer = fl.nn.serial(fl.nn.dense(3, name="d" * 150), name="m")
    text = fl.nn.summary(fl.nn.build(layer, 2), width=60)
    assert max(map(len, text.splitlines())) <= 60 and "…" in text


def test_summary_of_something_else_is_one_line():
    with pytest.raises(FnlearnError, match="fl.nn.Model"):
        fl.nn.summary(fl.nn.dense(3))


def test_the_summary_command_prints_the_table_and_writes_nothing(tmp_path, capsys, monkeypatch):
    (tmp_path / "c.toml").write_text('[data]\nname = "iris"\n[model]\nsizes = [5]\n')
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(["summary", "c.toml", "--set", "model.sizes=[7]"], capsys)
    assert code == 0
    assert "mlp/block_0/dense_0" in out and "(7,)" in out and "head: categorical()" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]
