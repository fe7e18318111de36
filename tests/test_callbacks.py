"""ReduceLROnPlateau in fit: the rate changes at the epochs a hand simulation of the rule gives, the
records show the rate each epoch's steps used, nothing recompiles, and a resumed run equals an
uninterrupted one."""

from __future__ import annotations

import chex
import jax
import numpy as np
import pytest

import fnlearn as fl
from fnlearn.callbacks import LambdaCallback, ReduceLROnPlateau
from fnlearn.errors import FnlearnError
from fnlearn.optim.hyperparams import find_hyperparams

HEAD = fl.distributions.get("categorical")
MODEL = fl.nn.mlp([4, 16, 2])
TX = fl.optim.inject_hyperparams(fl.optim.adam)(learning_rate=0.05)
RULE = {"patience": 2, "factor": 0.5, "cooldown": 1, "min_delta": 1e-3}
EPOCHS = 8


def _data():
    """Labels independent of the inputs: the validation loss falls for a few epochs, then rises."""
    rng = np.random.default_rng(0)
    x, xv = (rng.normal(size=(48, 4)).astype(np.float32) for _ in range(2))
    y, yv = (rng.integers(0, 2, 48).astype(np.int32) for _ in range(2))
    return (x, y), (xv, yv)


def _fit(callbacks, tx=TX, **options):
    train, val = _data()
    state = fl.TrainState.create(MODEL, tx, jax.random.key(0))
    return fl.fit(
        state,
        train,
        loss=HEAD,
        epochs=EPOCHS,
        batch_size=16,
        eval=val,
        callbacks=callbacks,
        progress=False,
        **options,
    )


def simulate(values, rate, *, patience, factor, cooldown, min_delta, min_lr=0.0):
    """The rule written out plainly: the rate each epoch trains with, and the reductions made."""
    best, wait, cooling, used, reductions = np.inf, 0, 0, [], []
    for epoch, value in enumerate(values, start=1):
        used.append(rate)
        counted = cooling == 0
        cooling = max(cooling - 1, 0)
        if value < best - min_delta:
            best, wait = value, 0
        elif counted:
            wait += 1
            if wait == patience:
                wait = 0
                new = max(rate * factor, min_lr)
                if new < rate:
                    rate, cooling = new, cooldown
                    reductions.append({"epoch": epoch, "learning_rate": rate})
    return used, reductions


@pytest.fixture(scope="session")  # built once per worker, even if its tests are not consecutive
def reference():
    """One uninterrupted run, shared by the tests: (callback, state, history)."""
    callback = ReduceLROnPlateau(**RULE)
    state, history = _fit([callback])
    return callback, state, history


def test_rate_changes_at_the_epochs_the_rule_gives_and_the_records_show_the_rate_used(reference):
    callback, state, history = reference
    used, reductions = simulate([r["val_loss"] for r in history], 0.05, **RULE)
    assert len(reductions) >= 2, "the problem no longer plateaus; the test would prove nothing"
    assert [r["epoch"] for r in callback.reductions] == [r["epoch"] for r in reductions]
    np.testing.assert_allclose(
        [r["learning_rate"] for r in callback.reductions], [r["learning_rate"] for r in reductions], rtol=1e-7
    )
    # train_learning_rate is read from the state of the update itself: the rate the steps used.
    np.testing.assert_allclose([r["train_learning_rate"] for r in history], used, rtol=1e-7)
    assert float(fl.optim.learning_rate(state.opt_state)) == pytest.approx(used[-1])


class _Interrupt(Exception):
    pass


def _interrupt_at(epoch):
    def hook(ctx):
        if ctx.epoch == epoch:
            raise _Interrupt

    return LambdaCallback(on_epoch_end=hook)


def _without_timing(history):
    return [{k: v for k, v in r.items() if k not in ("time", "examples_per_second")} for r in history]


def test_resumed_run_equals_the_uninterrupted_one(reference, tmp_path):
    """Killed at the end of the epoch after the first reduction, before its checkpoint: the resume
    starts from the checkpoint saved just after the reduction, with one cooldown epoch left. A
    callback that forgot its counters would count that epoch and reduce again one epoch early."""
    reference, ref_state, ref_history = reference
    first = reference.reductions[0]["epoch"]
    assert len(reference.reductions) >= 2 and reference.reductions[1]["epoch"] > first + 1
    # The one checkpoint needed: right after the reduction.
    saves = {"run_dir": tmp_path / "cut", "checkpoint_every": first}
    with pytest.raises(_Interrupt):
        _fit([ReduceLROnPlateau(**RULE), _interrupt_at(first + 1)], **saves)
    resumed = ReduceLROnPlateau(**RULE)
    state, history = _fit([resumed], resume=True, **saves)
    assert resumed.reductions == reference.reductions
    assert resumed.state_dict() == reference.state_dict()
    assert _without_timing(history) == _without_timing(ref_history)
    chex.assert_trees_all_equal(state.params, ref_state.params)
    chex.assert_trees_all_equal(state.opt_state, ref_state.opt_state)


def test_an_optimizer_without_an_injected_rate_is_one_clear_error_at_the_start_of_fit():
    opt_state = fl.optim.adam(0.05).init({"w": np.ones(2)})
    ctx = fl.callbacks.FitContext(state=_Opt(opt_state), epoch=0, step=0, history=[])
    with pytest.raises(FnlearnError, match=r"inject_hyperparams\(fl.optim.adam\)"):
        ReduceLROnPlateau().on_fit_start(ctx)
    schedule = fl.optim.inject_hyperparams(fl.optim.adam)(
        learning_rate=fl.optim.linear_schedule(0.1, 0.0, 10)
    )
    ctx.state = _Opt(schedule.init({"w": np.ones(2)}))
    with pytest.raises(FnlearnError, match="not a schedule"):
        ReduceLROnPlateau().on_fit_start(ctx)


class _Opt:
    """The one part of a TrainState that the callback reads."""

    def __init__(self, opt_state):
        self.opt_state = opt_state


@pytest.mark.parametrize(
    "options, name",
    [
        ({"factor": 1.0}, "factor"),
        ({"patience": 0}, "patience"),
        ({"cooldown": -1}, "cooldown"),
        ({"min_lr": -1.0}, "min_lr"),
        ({"mode": "up"}, "mode"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(options, name):
    with pytest.raises(FnlearnError, match=name):
        ReduceLROnPlateau(**options)


def test_mode_max_and_min_lr():
    """Accuracy-like metrics improve upwards; the rate never goes below min_lr."""
    callback = ReduceLROnPlateau("val_accuracy", patience=1, factor=0.1, min_lr=0.01)
    assert callback.mode == "max"
    state = fl.TrainState.create(MODEL, TX, jax.random.key(0))
    ctx = fl.callbacks.FitContext(state=state, epoch=0, step=0, history=[])
    callback.on_fit_start(ctx)
    for epoch, accuracy in enumerate([0.5, 0.6, 0.6, 0.55, 0.7, 0.7], start=1):
        ctx.epoch, ctx.record = epoch, {"val_accuracy": accuracy}
        callback.on_epoch_end(ctx)
    assert [(r["epoch"], round(r["learning_rate"], 6)) for r in callback.reductions] == [(3, 0.01)]
    assert float(find_hyperparams(ctx.state.opt_state)["learning_rate"]) == pytest.approx(0.01)
