"""The moving average of the parameters (fnlearn.ema): against a numpy loop, through fit,
evaluate and predict, checkpointed and resumed exactly; and checkpoints written before it existed."""

import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

import fnlearn as fl
from fnlearn import ema as fema
from fnlearn.errors import FnlearnError

DATA = Path(__file__).parent / "data"
RNG = np.random.default_rng(1)
X = RNG.normal(size=(24, 3)).astype(np.float32)
Y = (X[:, 0] + X[:, 1] > 0).astype(np.int32)
HEAD = fl.distributions.get("categorical")


def _state(seed=0):
    return fl.TrainState.create(fl.nn.mlp([3, 5, 2]), fl.optim.adam(0.05), seed)


def test_the_average_equals_a_numpy_loop_over_the_same_parameters():
    beta, steps = 0.8, 7
    obj, state = fl.train.configure(fl.train.objective(HEAD), _state(), ema=beta)
    step = fl.train.make_train_step(obj, donate=False)
    thetas = []
    for t in range(steps):
        state, _ = step(state, (X[t : t + 8], Y[t : t + 8]))
        thetas.append(jax.tree.map(np.asarray, state.params))
    for leaf in range(len(jax.tree.leaves(state.params))):
        m = np.zeros_like(jax.tree.leaves(thetas[0])[leaf], np.float64)
        for theta in thetas:
            m = beta * m + (1 - beta) * jax.tree.leaves(theta)[leaf]
        expected = m / (1 - beta**steps)
        got = jax.tree.leaves(fema.averaged(state.ema, state.params))[leaf]
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-7)
    assert int(state.ema.count) == steps


def test_before_any_update_the_average_is_the_parameters():
    state = _state()
    ema = fema.init(state.params, 0.99)
    jax.tree.map(np.testing.assert_array_equal, fema.averaged(ema, state.params), state.params)


def test_fit_evaluate_and_predict_use_the_average_when_asked():
    state, _ = fl.fit(_state(), (X, Y), loss=HEAD, epochs=3, batch_size=8, ema=0.5)
    assert int(state.ema.count) == int(state.step) == 9
    averaged = state.replace(params=fema.averaged(state.ema, state.params), ema=None)
    assert fl.evaluate(state, (X, Y), HEAD, use_ema=True) == fl.evaluate(averaged, (X, Y), HEAD)
    assert fl.evaluate(state, (X, Y), HEAD, use_ema=True) != fl.evaluate(state, (X, Y), HEAD)
    np.testing.assert_array_equal(
        fl.predict(state, X, head=HEAD, kind="mean", use_ema=True),
        fl.predict(averaged, X, head=HEAD, kind="mean"),
    )


def test_the_average_is_checkpointed_and_resumed_exactly(tmp_path):
    whole, _ = fl.fit(_state(), (X, Y), loss=HEAD, epochs=4, batch_size=8, ema=0.7, run_dir=tmp_path / "a")
    fl.fit(_state(), (X, Y), loss=HEAD, epochs=2, batch_size=8, ema=0.7, run_dir=tmp_path / "b")
    resumed, _ = fl.fit(
        _state(), (X, Y), loss=HEAD, epochs=4, batch_size=8, ema=0.7, run_dir=tmp_path / "b", resume=True
    )
    jax.tree.map(np.testing.assert_array_equal, resumed.ema, whole.ema)


def test_a_checkpoint_written_before_the_ema_field_existed_restores(tmp_path):
    # written by fnlearn at commit fd86818 (TrainState without ema): an mlp([3, 4, 2]) with adam(1e-2)
    # from seed 7, after 3 steps; its params are also in checkpoint_before_ema_params.npz
    shutil.copytree(DATA / "checkpoint_before_ema", tmp_path / "ckpt")
    template = fl.TrainState.create(fl.nn.mlp([3, 4, 2]), fl.optim.adam(1e-2), 7)
    restored, extra = fl.checkpoint.restore(tmp_path / "ckpt", template)
    assert int(restored.step) == 3 and restored.ema is None and "before TrainState.ema" in extra["note"]
    saved = np.load(DATA / "checkpoint_before_ema_params.npz")
    for i, leaf in enumerate(jax.tree.leaves(restored.params)):
        np.testing.assert_array_equal(leaf, saved[f"p{i}"])
    state, _ = fl.fit(restored, (X, Y), loss=HEAD, steps=5, batch_size=8)  # and trains on
    assert int(state.step) == 5


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.5, "0.9", True])
def test_a_decay_outside_0_1_is_one_line(bad):
    with pytest.raises(FnlearnError, match="0 < β < 1"):
        fl.fit(_state(), (X, Y), loss=HEAD, steps=1, batch_size=8, ema=bad)


def test_a_state_averaging_with_another_decay_is_refused():
    state, _ = fl.fit(_state(), (X, Y), loss=HEAD, steps=1, batch_size=8, ema=0.9)
    with pytest.raises(FnlearnError, match="already averages"):
        fl.fit(state, (X, Y), loss=HEAD, steps=2, batch_size=8, ema=0.5)


def test_resuming_with_the_average_turned_on_or_off_is_one_specific_line(tmp_path):
    """The checkpoint holds the moving average or not: fit and --resume say which, in one line."""
    import types

    from fnlearn import config as fconfig
    from fnlearn.runs import resume

    text = "[training]\nepochs = 1\nbatch_size = 8\n"
    kwargs = {"loss": HEAD, "epochs": 1, "batch_size": 8}
    fl.fit(
        _state(), (X, Y), **kwargs, run_dir=tmp_path / "plain", config=fconfig.to_dict(fconfig.loads(text))
    )
    with pytest.raises(FnlearnError, match=r"^checkpoint \S+ was written without training.ema .*--out.$"):
        fl.fit(_state(), (X, Y), **kwargs, ema=0.9, run_dir=tmp_path / "plain", resume=True)
    with_ema = types.SimpleNamespace(
        config=fconfig.loads(text + "ema = 0.9\n"), steps_per_epoch=3, total_steps=3
    )
    with pytest.raises(
        FnlearnError,
        match=r"^--resume: training.ema = 0.9, but the checkpoint \(step 3\) was written without training.ema; "
        r"resume without it, or start a new run with --out.$",
    ):
        resume.decide(tmp_path / "plain", with_ema)
    # and the other way round (a checkpoint with the average, a resume without it), on the checks alone
    with pytest.raises(FnlearnError, match=r"^checkpoint x keeps a moving average of the parameters"):
        fema.check_restorable([["ema/decay", [], "float32"]], [["key", [2], "uint32"]], Path("x"))
    with pytest.raises(FnlearnError, match=r"^--resume: the checkpoint \(step 3\) keeps a moving average"):
        resume._check_ema(fconfig.to_dict(with_ema.config), fconfig.to_dict(fconfig.loads(text)), 3)
