"""fl.predict against numpy on the model's raw outputs; sample moments; a run restored from disk."""

import csv
import io
import json

import jax
import numpy as np
import pytest
from hostile import assert_one_error_line, run_cli

import fnlearn as fl
from fnlearn import config as fconfig
from fnlearn.commands import predict as predict_command
from fnlearn.errors import FnlearnError
from fnlearn.runs import build as fbuild
from fnlearn.runs import execute, rundir, summary
from fnlearn.runs.plans import Plan

RNG = np.random.default_rng(0)
X = RNG.normal(size=(37, 3)).astype(np.float32)  # 37: the last batch of 16 is padded


def _state(outputs: int, seed: int = 0):
    return fl.TrainState.create(fl.nn.mlp([3, 8, outputs]), fl.optim.sgd(0.1), seed)


def _raw(state, x=X):
    return np.asarray(state.model.apply(state.params, state.model_state, x)[0])


def test_categorical_mode_is_argmax_and_mean_is_softmax():
    state = _state(4)
    head = fl.distributions.get("categorical")
    raw = _raw(state)
    mode = fl.predict(state, X, head=head, batch_size=16)
    np.testing.assert_array_equal(np.asarray(mode), np.argmax(raw, axis=-1))
    probs = np.exp(raw - raw.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(fl.predict(state, X, head=head, kind="mean", batch_size=16), probs, rtol=1e-5)
    dist = fl.predict(state, X, head=head, kind="distribution")
    assert sorted(dist) == ["logits", "probs"]
    np.testing.assert_allclose(dist["logits"], raw, rtol=1e-6)


def test_poisson_mean_is_exp_of_the_log_rate_and_mode_its_floor():
    state = _state(1)
    head = fl.distributions.get("poisson")
    rate = np.exp(_raw(state)[:, 0].astype(np.float64))
    np.testing.assert_allclose(fl.predict(state, X, head=head, kind="mean")[:, 0], rate, rtol=1e-6)
    np.testing.assert_array_equal(fl.predict(state, X, head=head)[:, 0], np.floor(rate.astype(np.float32)))


def test_predictions_do_not_depend_on_the_batch_size():
    state = _state(2)
    head = fl.distributions.get("gaussian", scale="learned")
    key = jax.random.key(3)
    a = fl.predict(state, X, head=head, kind="sample", key=key, batch_size=5)
    b = fl.predict(state, X, head=head, kind="sample", key=key, batch_size=64)
    np.testing.assert_array_equal(a, b)  # example i draws from fold_in(key, i)


def _moments_within_5_se(samples, mean, var, fourth_central):
    """sample mean and variance of n iid draws within 5 standard errors of the true ones."""
    n = len(samples)
    assert abs(samples.mean() - mean) < 5 * np.sqrt(var / n)
    se_var = np.sqrt((fourth_central - var**2) / n)
    assert abs(samples.var(ddof=1) - var) < 5 * se_var


def test_sample_moments_match_the_distribution_within_5_standard_errors():
    state = _state(2, seed=1)
    n = 4000
    x = np.repeat(X[:1], n, axis=0)  # n iid draws from one predicted distribution
    gauss = fl.distributions.get("gaussian", scale="learned")
    p = fl.predict(state, X[:1], head=gauss, kind="distribution")
    mu, sigma = float(p["loc"][0, 0]), float(p["scale"][0, 0])
    draws = np.asarray(fl.predict(state, x, head=gauss, kind="sample", key=jax.random.key(0)))[:, 0]
    _moments_within_5_se(draws.astype(np.float64), mu, sigma**2, 3 * sigma**4)
    poisson = fl.distributions.get("poisson")
    lam = float(fl.predict(_state(1, 2), X[:1], head=poisson, kind="mean")[0, 0])
    draws = np.asarray(fl.predict(_state(1, 2), x, head=poisson, kind="sample", key=jax.random.key(1)))[:, 0]
    _moments_within_5_se(draws.astype(np.float64), lam, lam, lam + 3 * lam**2)  # Poisson: μ4 = λ + 3λ²


def test_a_standardiser_is_applied_to_inputs_and_inverted_on_regression_outputs():
    state = _state(2)
    head = fl.distributions.get("gaussian", scale="learned")
    std = fl.data.Standardizer(
        np.array([1.0, -2.0, 0.5], np.float32),
        np.array([2.0, 0.5, 3.0], np.float32),
        np.array([10.0], np.float32),
        np.array([4.0], np.float32),
    )
    x_hat = (X - std.x_mean) / std.x_scale
    inner = fl.predict(state, x_hat, head=head, kind="distribution")
    outer = fl.predict(state, X, head=head, kind="distribution", standardizer=std)
    np.testing.assert_allclose(outer["loc"], inner["loc"] * 4.0 + 10.0, rtol=1e-5)
    np.testing.assert_allclose(outer["scale"], inner["scale"] * 4.0, rtol=1e-5)
    mean = fl.predict(state, X, head=head, kind="mean", standardizer=std)
    np.testing.assert_allclose(mean, outer["loc"], rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"kind": "median"}, "kind must be one of"),
        ({"kind": "sample"}, "needs key="),
        ({"batch_size": 0}, "batch_size"),
        ({"use_ema": True}, "keeps no moving average"),
        ({"head": "categorical"}, "head must be a distribution head"),
    ],
)
def test_mistakes_are_one_line(kwargs, needle):
    args = {"head": fl.distributions.get("categorical")} | kwargs
    with pytest.raises(FnlearnError, match=needle):
        fl.predict(_state(2), X, **args)


def test_inputs_of_the_wrong_shape_or_not_finite_are_refused():
    head = fl.distributions.get("categorical")
    with pytest.raises(FnlearnError, match=r"examples of shape \(3,\)"):
        fl.predict(_state(2), X[:, :2], head=head)
    bad = X.copy()
    bad[5, 1] = np.nan
    with pytest.raises(FnlearnError, match="example 5"):
        fl.predict(_state(2), bad, head=head)


# A run on disk: learned-variance regression with standardised targets and a moving average.
RUN = """\
name = "tiny"
[data]
name = "heteroscedastic"
options = { n = 120, seed = 0 }
val = 0.0
test = 0.25
standardize = true
standardize_targets = true
[model]
sizes = [8]
[loss]
distribution = "gaussian"
options = { scale = "learned" }
[training]
epochs = 2
batch_size = 16
ema = 0.9
[training.checkpoint]
every = 1
[logging]
plots = false
"""


def _train_in_process(folder, text: str):
    """(run_dir, built, state): trained in this process the way `fnlearn train` does it."""
    run_dir = folder / "tiny"
    source = folder / "tiny.toml"
    source.write_text(text)
    built = fbuild.build(fconfig.load(source))
    run_dir.mkdir()
    rundir.write_config(run_dir, built)
    state, history, _ = execute._fit_run(built, run_dir, resume=False, quiet=True)
    summary.write_run(Plan(run_dir, built, "tiny"), state, history, 0.0)
    return run_dir, built, state


@pytest.fixture(scope="session")  # built once per worker, even if its tests are not consecutive
def trained_run(tmp_path_factory):
    return _train_in_process(tmp_path_factory.mktemp("run"), RUN)


def test_a_run_that_restored_its_best_epoch_loads_those_weights(tmp_path):
    """Early stopping on the *highest* training loss: the best epoch is the first, the run ends
    on its weights, and so does the loaded run (its last checkpoint is epoch 2's)."""
    text = RUN.replace("ema = 0.9\n", "") + (
        '[training.early_stopping]\nenabled = true\nmonitor = "train_loss"\nmode = "max"\npatience = 5\n'
    )
    run_dir, built, state = _train_in_process(tmp_path, text)
    loaded = fl.runs.load(run_dir)
    assert int(loaded.state.step) == int(state.step)
    jax.tree.map(np.testing.assert_array_equal, loaded.state.params, state.params)


def test_a_restored_run_predicts_exactly_what_the_trained_state_predicted(trained_run):
    run_dir, built, state = trained_run
    x = fl.data.load("heteroscedastic", n=120, seed=0).x  # the data's units
    loaded = fl.runs.load(run_dir)
    assert int(loaded.state.step) == int(state.step)
    for kind in ("mode", "distribution"):
        for use_ema in (False, True):
            here = fl.predict(
                state, x, head=built.head, kind=kind, use_ema=use_ema, standardizer=built.standardizer
            )
            there = loaded.predict(x, kind=kind, use_ema=use_ema)
            jax.tree.map(np.testing.assert_array_equal, here, there)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["test_ema"]) == set(summary["test"]) and summary["test_ema"] != summary["test"]


def test_the_predict_command_writes_a_csv_and_never_overwrites_silently(trained_run, tmp_path, capsys):
    run_dir, built, state = trained_run
    x = fl.data.load("heteroscedastic", n=120, seed=0).x[:7]
    np.savez(tmp_path / "x.npz", x=x)
    out = tmp_path / "preds.csv"
    code, stdout, _ = run_cli(
        ["predict", run_dir, "--data", tmp_path / "x.npz", "--out", out, "--kind", "distribution"], capsys
    )
    assert code == 0 and "7 rows" in stdout
    table = np.genfromtxt(out, delimiter=",", names=True)
    expected = fl.predict(state, x, head=built.head, kind="distribution", standardizer=built.standardizer)
    np.testing.assert_allclose(table["loc"], np.asarray(expected["loc"])[:, 0], rtol=1e-6)
    np.testing.assert_allclose(table["scale"], np.asarray(expected["scale"])[:, 0], rtol=1e-6)
    before = out.read_bytes()
    code, _, err = run_cli(["predict", run_dir, "--data", tmp_path / "x.npz", "--out", out], capsys)
    assert code == 2 and out.read_bytes() == before
    assert_one_error_line(err, "exists already", "--overwrite")
    code, _, _ = run_cli(
        ["predict", run_dir, "--data", tmp_path / "x.npz", "--out", out, "--overwrite"], capsys
    )
    assert code == 0 and out.read_bytes() != before


def test_the_predict_command_reads_csv_columns_by_count(trained_run, tmp_path, capsys):
    run_dir, built, state = trained_run
    (tmp_path / "x.csv").write_text("x\n0.25\n0.5\n")
    code, stdout, _ = run_cli(["predict", run_dir, "--data", tmp_path / "x.csv", "--kind", "mean"], capsys)
    assert code == 0
    lines = stdout.splitlines()
    expected = fl.predict(
        state, np.array([[0.25], [0.5]]), head=built.head, kind="mean", standardizer=built.standardizer
    )
    assert lines[0] == "mean"
    np.testing.assert_allclose([float(v) for v in lines[1:]], np.asarray(expected)[:, 0], rtol=1e-6)


@pytest.mark.parametrize(
    ("make", "needles"),
    [
        (lambda d, run: [d / "nowhere", "--data", d / "x.npz"], ("no run directory",)),
        (lambda d, run: [d, "--data", d / "x.npz"], ("not a run directory",)),
        (lambda d, run: [run, "--data", d / "missing.npz"], ("no such file",)),
        (lambda d, run: [run, "--data", d / "x.txt"], ("expected a .csv or .npz",)),
        (lambda d, run: [run, "--data", d / "wide.csv"], ("header has 2 columns",)),
    ],
)
def test_predict_command_mistakes_are_one_line(trained_run, tmp_path, capsys, make, needles):
    run_dir = trained_run[0]
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 1), np.float32))
    (tmp_path / "x.txt").write_text("1\n")
    (tmp_path / "wide.csv").write_text("a,b\n1,2\n")
    code, _, err = run_cli(["predict", *make(tmp_path, run_dir)], capsys)
    assert code == 2
    assert_one_error_line(err, *needles)


def test_a_run_without_checkpoint_or_with_a_damaged_one_is_one_line(trained_run, tmp_path):
    run_dir = trained_run[0]
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "config.toml").write_bytes((run_dir / "config.toml").read_bytes())
    with pytest.raises(FnlearnError, match="no checkpoint to load"):
        fl.runs.load(copy)
    (copy / "config.toml").write_text("[training]\nepochs = -1\n")
    with pytest.raises(FnlearnError, match="config.toml"):
        fl.runs.load(copy)


def test_to_csv_names_the_columns_of_each_kind():
    text = predict_command.to_csv(
        {"probs": np.array([[0.25, 0.75]]), "logits": np.zeros((1, 2))}, "distribution"
    )
    assert text.splitlines()[0] == "probs_0,probs_1,logits_0,logits_1"
    assert predict_command.to_csv(np.array([2, 0]), "mode") == "mode\n2\n0\n"


def test_to_csv_writes_label_names_with_the_class_ids_and_quotes_them():
    labels = ("bird", "cat, wild", 'say "hi"')
    text = predict_command.to_csv(np.array([1, 0, 2]), "mode", labels)
    assert text == 'mode,mode_id\n"cat, wild",1\nbird,0\n"say ""hi""",2\n'
    tokens = predict_command.to_csv(np.array([[0, 2], [1, 1]]), "sample", ("a", "\n", ","))
    assert list(csv.reader(io.StringIO(tokens))) == [["sample_0", "sample_1"], ["a", ","], ["\n", "\n"]]
    assert predict_command.to_csv(np.array([[0.25, 0.75]]), "mean", labels) == "mean_0,mean_1\n0.25,0.75\n"


def test_the_predict_command_writes_the_text_labels_of_a_csv_run(tmp_path, capsys):
    """Text labels of a CSV become ids in sorted order; predictions come back as those labels."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 2))
    names = np.array(["dog", "cat", "bird"])[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0)]
    rows = "".join(f"{a:.4f},{b:.4f},{name}\n" for (a, b), name in zip(x, names))
    (tmp_path / "pets.csv").write_text("a,b,kind\n" + rows)
    text = (
        'name = "tiny"\n[data]\nname = "csv"\noptions = {path = "pets.csv", target = "kind"}\n'
        "val = 0.0\ntest = 0.2\n[model]\nsizes = [4]\n[training]\nepochs = 1\nbatch_size = 16\n"
        "[training.checkpoint]\nevery = 1\n[logging]\nplots = false\n"
    )
    run_dir, built, state = _train_in_process(tmp_path, text)
    (tmp_path / "new.csv").write_text("a,b\n0.5,0.5\n-0.5,-0.5\n0.5,-0.5\n")
    code, stdout, _ = run_cli(["predict", run_dir, "--data", tmp_path / "new.csv"], capsys)
    assert code == 0
    header, *lines = stdout.splitlines()
    assert header == "mode,mode_id"
    ids = fl.predict(
        state,
        np.array([[0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]]),
        head=built.head,
        standardizer=built.standardizer,
    )
    assert lines == [f"{('bird', 'cat', 'dog')[i]},{i}" for i in np.asarray(ids)]


def test_datasets_name_their_classes_where_they_can():
    assert fl.data.load("iris").class_names == ("setosa", "versicolor", "virginica")
    assert fl.data.load("digits").class_names is None  # its classes are their ids 0..9
    with pytest.raises(FnlearnError, match="class_names must hold one string per class id 0..K-1"):
        fl.data.from_arrays(X, np.arange(37) % 2, task="classification", class_names=["a"])
    with pytest.raises(FnlearnError, match="class_names"):
        fl.data.from_arrays(X, np.arange(37) % 2, task="classification", class_names=["a", "a"])
