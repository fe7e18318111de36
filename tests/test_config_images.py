"""The image configs: digits_cnn and mnist_cnn train end to end (briefly; MNIST on tiny IDX files
written here), and the config's models meet image-shaped data."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from test_config import _fake_mnist  # tests/ is on sys.path

import fnlearn.config as C
from fnlearn import data, nn
from fnlearn.errors import FnlearnError
from fnlearn.runs.build import build_data, build_model
from tests.hostile import run_cli

CONFIGS = Path(__file__).parent.parent / "configs"
QUIET = ["--set", "training.checkpoint.every=0", "--set", "logging.plots=false", "--quiet"]


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_digits_cnn_trains_briefly(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", CONFIGS / "digits_cnn.toml", "--out", out, "--set", "training.epochs=1", *QUIET]
    args += ["--set", 'training.driver="loop"']  # "auto" would compile and time both (CPU 12 -> 8 s)
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    summary = _summary(out)
    assert summary["examples"] == {"train": 1438, "val": 0, "test": 359}  # digits_mlp's 80/20 split
    # 2 conv blocks (3×3: 32, 64) + dense 128 + 10 outputs on 8×8×1 images, pooled to 2×2×64
    assert summary["num_params"] == (9 * 32 + 32) + (9 * 32 * 64 + 64) + (256 * 128 + 128) + (128 * 10 + 10)
    assert summary["test"]["accuracy"] > 0.8  # 1 of the config's 30 epochs (99.2 % after 30)
    config = C.load(out / "config.toml")
    assert config.model.name == "cnn" and config.data.options["layout"] == "image"


def test_mnist_cnn_on_tiny_idx_files(tmp_path, capsys):
    _fake_mnist(tmp_path, n_train=40, n_test=10)
    out = tmp_path / "run"
    args = ["train", CONFIGS / "mnist_cnn.toml", "--out", out, "--set", f'data.options.path="{tmp_path}"']
    args += [
        "--set",
        "data.options.verify=false",
        "--set",
        "training.epochs=1",
        "--set",
        "training.batch_size=12",
    ]
    args += ["--set", "optimizer.schedule.warmup_steps=1", "--set", "logging.progress=false", *QUIET]
    # driver "loop" (the faster on a CNN on a CPU): "auto" would time both drivers on this 3.3M-parameter
    # network, which was most of this test's time (97 of 111 s) for a 3-step run whose point is the
    # IDX files and the network; auto's measuring is tested in tests/test_drivers.py
    args += ["--set", 'training.driver="loop"']
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    summary = _summary(out)
    assert (summary["examples"]["train"], summary["examples"]["test"]) == (36, 10)  # the official test files
    # TensorFlow's "Deep MNIST for Experts" network: 3,274,634 parameters
    assert summary["num_params"] == 3_274_634
    assert np.isfinite(summary["test"]["loss"])


def test_an_mlp_config_takes_images_through_a_flatten():
    x = np.random.default_rng(0).normal(size=(5, 4, 4, 1))
    images = data.from_arrays(x, np.arange(5) % 3, task="classification", image_shape=(4, 4, 1))
    model = build_model(C.loads("[model]\nsizes = [8]\n").model, images, 3)
    assert model.input_shape == (4, 4, 1) and model.output_shape == (3,)
    params, state = model.init(jax.random.key(0))
    y, _ = model.apply(params, state, images.x)
    reference, _ = nn.mlp([16, 8, 3]).apply(params[1], state[1], images.x.reshape(5, -1))
    np.testing.assert_allclose(y, reference, rtol=1e-6)


def test_a_cnn_on_flat_rows_says_how_to_load_images():
    cnn = C.loads('[model]\nname = "cnn"\n').model
    with pytest.raises(
        FnlearnError,
        match=r'gives flat rows of 64 features. Load it as images: data.options.layout = "image"',
    ):
        build_model(cnn, data.load("digits"), 10)


def test_standardize_per_channel_from_a_config():
    text = '[data]\noptions = {layout = "image"}\nstandardize_per = "channel"\n'
    parts, scaler = build_data(C.loads(text).data)
    assert scaler.x_mean.shape == (1, 1, 1) and parts.train.x.shape[1:] == (8, 8, 1)
    np.testing.assert_allclose([parts.train.x.mean(), parts.train.x.std()], [0.0, 1.0], atol=1e-5)
    with pytest.raises(FnlearnError, match=r'^data.standardize_per = "channel": .*needs image-shaped x'):
        build_data(C.loads('[data]\nstandardize_per = "channel"\n').data)
    with pytest.raises(FnlearnError, match=r"unknown standardisation. Did you mean 'channel'"):
        C.loads('[data]\nstandardize_per = "chanel"\n')
