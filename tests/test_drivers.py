"""fnlearn.drivers: the scan and the loop drivers train alike, auto chooses by measurement and
records it, resuming is exact under each driver and keeps auto's choice."""

import chex
import jax
import numpy as np
import pytest

import fnlearn as fl
from fnlearn import drivers
from fnlearn.callbacks import EarlyStopping, LambdaCallback
from fnlearn.errors import FnlearnError

KEY = jax.random.key(0)
HEAD = fl.distributions.get("categorical")


def _problem(n=50, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)


def _state(model=None):
    return fl.TrainState.create(model or fl.nn.mlp([6, 16, 3]), fl.optim.adam(1e-2), KEY)


def _fit(driver, **kwargs):
    x, y = _problem()
    return fl.fit(_state(), (x, y), loss=HEAD, batch_size=16, driver=driver, **kwargs)


def _records(history):
    return [{k: v for k, v in r.items() if k not in ("time", "examples_per_second")} for r in history]


def test_scan_and_loop_give_the_same_run_with_eval_callbacks_and_log_every(tmp_path):
    """4 epochs of 4 steps (the last padded), evaluated, a callback at every epoch end, a log line
    every 3 steps (chunks that cross no epoch end): same parameters, records and log lines."""
    seen = {"scan": [], "loop": []}
    runs = {}
    for driver in ("scan", "loop"):
        hook = LambdaCallback(
            on_epoch_end=lambda ctx, d=driver: seen[d].append(float(ctx.record["train_loss"]))
        )
        runs[driver] = _fit(
            driver,
            epochs=4,
            eval=_problem(20, seed=1),
            callbacks=[hook],
            log_every=3,
            run_dir=tmp_path / driver,
        )
    (scan, scan_history), (loop, loop_history) = runs["scan"], runs["loop"]
    chex.assert_trees_all_close(scan.params, loop.params, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(scan.opt_state, loop.opt_state, rtol=1e-5, atol=1e-6)
    assert int(scan.step) == int(loop.step) == 16
    a, b = _records(scan_history), _records(loop_history)
    assert [sorted(r) for r in a] == [sorted(r) for r in b] and len(a) == 4
    for ra, rb in zip(a, b):
        np.testing.assert_allclose([ra[k] for k in sorted(ra)], [rb[k] for k in sorted(rb)], rtol=1e-5)
    np.testing.assert_allclose(seen["scan"], seen["loop"], rtol=1e-5)
    lines = {d: (tmp_path / d / "metrics.jsonl").read_text().splitlines() for d in seen}
    assert len(lines["scan"]) == len(lines["loop"]) == 4 + 4  # a log line mid-epoch (step 3) in each
    assert scan_history.driver["driver"] == "scan" and loop_history.driver["driver"] == "loop"


def test_loop_driver_steps_with_early_stopping_and_a_remainder():
    """steps=18 (4 epochs and 2 steps), early stopping that never fires: both drivers stop at
    step 18 with the same weights (restored best included)."""
    out = [
        _fit(d, steps=18, eval=_problem(20, seed=1), callbacks=[EarlyStopping("val_loss", patience=50)])
        for d in ("scan", "loop")
    ]
    chex.assert_trees_all_close(out[0][0].params, out[1][0].params, rtol=1e-5, atol=1e-6)
    assert int(out[0][0].step) == int(out[1][0].step) == 18


@pytest.mark.parametrize("driver", ["scan", "loop"])
def test_resume_is_bit_identical_under_each_driver(tmp_path, driver):
    full, _ = _fit(driver, epochs=4, run_dir=tmp_path / "full")
    _fit(driver, epochs=2, run_dir=tmp_path / "cut")
    resumed, history = _fit(driver, epochs=4, run_dir=tmp_path / "cut", resume=True)
    chex.assert_trees_all_equal(full.params, resumed.params)
    chex.assert_trees_all_equal(full.opt_state, resumed.opt_state)
    assert [r["epoch"] for r in history] == [1, 2, 3, 4] and history.driver["driver"] == driver


def test_auto_keeps_the_driver_of_the_checkpoint_it_resumes(tmp_path, monkeypatch):
    """A run whose auto chose the scan resumes with the scan, even where auto would now choose the
    loop: the checkpoint's record wins, so the resumed run is the uninterrupted one."""
    choice = drivers.DriverChoice("scan", "measured (test)", 1e-3, 5e-4)
    monkeypatch.setattr(drivers, "choose_driver", lambda *a, **k: choice)
    monkeypatch.setattr(fl.loop, "_CHOICES", {})
    full, _ = _fit("auto", epochs=4, run_dir=tmp_path / "full")
    _fit("auto", epochs=2, run_dir=tmp_path / "cut")
    monkeypatch.setattr(fl.loop, "_CHOICES", {})  # no choice measured earlier in this process
    monkeypatch.setattr(
        drivers, "choose_driver", lambda *a, **k: drivers.DriverChoice("loop", "other", 1.0, 2.0)
    )
    resumed, history = _fit("auto", epochs=4, run_dir=tmp_path / "cut", resume=True)
    assert history.driver == choice.as_dict()
    chex.assert_trees_all_equal(full.params, resumed.params)


def test_a_measured_choice_is_reused_by_later_fits_of_the_same_program(monkeypatch):
    """The probe runs once per program and process: a second fit with the same model, optimizer,
    data shapes and batch size reuses the first one's measured choice; another batch size measures."""
    calls = []

    def measured(*args, **kwargs):
        calls.append(kwargs["remaining_steps"])
        return drivers.DriverChoice("scan", "measured (test)", 2e-3, 1e-3)

    monkeypatch.setattr(drivers, "choose_driver", measured)
    monkeypatch.setattr(fl.loop, "_CHOICES", {})
    x, y = _problem()
    model, tx = fl.nn.mlp([6, 16, 3]), fl.optim.adam(1e-2)  # the same objects: the same program
    _, first = fl.fit(fl.TrainState.create(model, tx, KEY), (x, y), loss=HEAD, batch_size=16, epochs=2)
    _, second = fl.fit(fl.TrainState.create(model, tx, KEY), (x, y), loss=HEAD, batch_size=16, epochs=3)
    assert calls == [8] and first.driver["driver"] == second.driver["driver"] == "scan"
    assert "earlier fit" in second.driver["reason"] and second.driver["scan_s_per_step"] == 1e-3
    fl.fit(fl.TrainState.create(model, tx, KEY), (x, y), loss=HEAD, batch_size=10, epochs=1)
    assert calls == [8, 5]


def _fake_timed(loop_s, scan_s):
    """A clock that only the fake steps advance, and the steps: loop_s per loop step, scan_s per
    scanned step. Records what was called."""
    now, calls = [0.0], []

    def loop_step():
        now[0] += loop_s
        calls.append(("loop", 1))
        return np.zeros(())

    def scan_steps(k):
        now[0] += scan_s * k
        calls.append(("scan", k))
        return np.zeros(())

    return loop_step, scan_steps, (lambda: now[0]), calls


@pytest.mark.parametrize(
    "loop_s, scan_s, expected", [(1e-3, 4e-4, "scan"), (2e-3, 9e-3, "loop"), (1e-3, 1.2e-3, "loop")]
)
def test_choose_driver_picks_the_faster_of_the_measured_two(loop_s, scan_s, expected):
    loop_step, scan_steps, clock, calls = _fake_timed(loop_s, scan_s)
    choice = drivers.choose_driver(loop_step, scan_steps, remaining_steps=10_000, clock=clock)
    assert choice.driver == expected
    assert choice.loop_s_per_step == pytest.approx(loop_s) and choice.scan_s_per_step == pytest.approx(scan_s)
    lengths = {k for kind, k in calls if kind == "scan"}
    # one call ≈ SCAN_PROBE_CALL_S of steps, within the bounds
    low, high = drivers.SCAN_PROBE_LENGTHS
    expected_length = min(high, max(low, int(np.ceil(drivers.SCAN_PROBE_CALL_S / loop_s))))
    assert lengths == {expected_length}
    # the probe stays bounded: a warm-up step, rounds of 1, 2, ..., 64 loop steps, a warm-up call
    # and at most 5 timed calls of the scan
    assert sum(k for _, k in calls) <= 1 + 127 + 6 * expected_length


def test_choose_driver_skips_the_scan_on_a_short_run():
    """remaining · t_loop below MEASURE_ABOVE_S: the loop, the scan never compiled or run."""
    loop_step, scan_steps, clock, calls = _fake_timed(1e-3, 1e-5)
    choice = drivers.choose_driver(loop_step, scan_steps, remaining_steps=100, clock=clock)
    assert choice.driver == "loop" and choice.scan_s_per_step is None and "short run" in choice.reason
    assert all(kind == "loop" for kind, _ in calls)


def test_choose_driver_skips_the_scan_when_its_probe_outlasts_the_run():
    """A large model's few steps (0.2 s each, 5 left): the scan's probe alone would run 3 × 2 steps
    and compile, so the loop, unmeasured; with 7 steps left the scan is measured."""
    for remaining, measured in ((5, False), (7, True)):
        loop_step, scan_steps, clock, calls = _fake_timed(0.2, 0.1)
        choice = drivers.choose_driver(loop_step, scan_steps, remaining_steps=remaining, clock=clock)
        assert (choice.scan_s_per_step is not None) == measured, choice
        assert any(kind == "scan" for kind, _ in calls) == measured


def test_auto_measures_both_on_a_tiny_conv_records_it_and_trains_as_the_chosen_driver(tmp_path, monkeypatch):
    """A tiny CNN with auto forced to measure: both times in history.driver and in the checkpoint;
    the run equals an explicit run of the chosen driver (the probe ran on a copy of the state)."""
    monkeypatch.setattr(drivers, "MEASURE_ABOVE_S", 0.0)
    monkeypatch.setattr(drivers, "PROBE_BUDGET_S", 0.0)
    monkeypatch.setattr(drivers, "SCAN_PROBE_LENGTHS", (2, 2))  # a 6-step probe: not longer than the run
    monkeypatch.setattr(drivers, "SCAN_PROBE_MAX_CALL_S", 0.0)  # (not the run's 3-step chunk: 9 steps)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 6, 6, 1)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0).astype(np.int32)
    model = fl.nn.cnn((6, 6, 1), channels=[4], dense=[], num_outputs=2)

    def run(driver, run_dir=None):
        state = fl.TrainState.create(model, fl.optim.adam(1e-2), KEY)
        return fl.fit(state, (x, y), loss=HEAD, epochs=2, batch_size=8, driver=driver, run_dir=run_dir)

    auto, history = run("auto", tmp_path / "auto")
    record = history.driver
    assert record["driver"] in ("scan", "loop") and record["reason"].startswith("measured")
    assert record["loop_s_per_step"] > 0 and record["scan_s_per_step"] > 0
    checkpoints = fl.checkpoint.RunCheckpoints(tmp_path / "auto" / "checkpoints")
    saved = checkpoints.restore_latest(auto)[1]
    checkpoints.close()
    assert saved["driver"] == record
    chosen, _ = run(record["driver"])
    chex.assert_trees_all_equal(auto.params, chosen.params)


def test_driver_mistakes_get_one_clear_line():
    with pytest.raises(FnlearnError, match=r"fit: driver must be one of 'auto', 'scan', 'loop', got 'fast'"):
        _fit("fast", epochs=1)
    x, y = _problem()
    batches = [(x[:16], y[:16]), (x[16:32], y[16:32])]
    with pytest.raises(FnlearnError, match="driver='scan' needs the training data as arrays"):
        fl.fit(_state(), batches, loss=HEAD, epochs=1, driver="scan")
    _, history = fl.fit(_state(), batches, loss=HEAD, epochs=1)
    assert history.driver["driver"] == "loop" and "streamed" in history.driver["reason"]


def test_an_interrupt_lost_inside_a_step_is_raised_by_the_next_check(monkeypatch):
    """Ctrl-C whose KeyboardInterrupt something swallows (as jax's dispatch can) is raised again by
    check(); outside the block Python's own handler is back."""
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    # from Python's own handler (whatever an earlier test in this process may have installed)
    monkeypatch.setattr(signal, "getsignal", lambda signum: signal.default_int_handler)
    with drivers.noticed_interrupts() as check:
        check()  # nothing yet
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pass  # swallowed
        with pytest.raises(KeyboardInterrupt):
            check()
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the block's handler is gone
    signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize("scan_length, expected", [(45, 45), (1000, 50), (1, 50), (None, 50)])
def test_the_scan_probe_runs_the_runs_own_chunk_when_it_is_short(scan_length, expected):
    """With the run's chunk (scan_length) the probe measures the very program training runs, unless a
    call would take over SCAN_PROBE_MAX_CALL_S (1000 · 1 ms) or it is under 2 steps: then about
    SCAN_PROBE_CALL_S of steps (50 of 1 ms)."""
    loop_step, scan_steps, clock, calls = _fake_timed(1e-3, 4e-4)
    choice = drivers.choose_driver(
        loop_step, scan_steps, remaining_steps=10_000, scan_length=scan_length, clock=clock
    )
    assert choice.driver == "scan" and {k for kind, k in calls if kind == "scan"} == {expected}


def test_auto_compiles_the_scan_once_for_its_probe_and_the_run(monkeypatch):
    """auto measuring both drivers, then training by the scan, one chunk per epoch (a callback wakes
    the host): the probe's scan is the run's program, compiled once."""
    monkeypatch.setattr(drivers, "MEASURE_ABOVE_S", 0.0)
    monkeypatch.setattr(drivers, "PROBE_BUDGET_S", 0.0)
    monkeypatch.setattr(drivers, "_time_loop", lambda *args: 1.0)  # a slow loop: the scan wins
    monkeypatch.setattr(drivers, "SCAN_PROBE_MAX_CALL_S", float("inf"))  # ... and 4 of its steps are short
    monkeypatch.setattr(fl.loop, "_CHOICES", {})
    x, y = _problem()
    before = drivers.run_chunk._cache_size()
    state = _state()  # new model and optimizer objects: a new entry of run_chunk's cache
    hook = LambdaCallback(on_epoch_end=lambda ctx: None)
    # 4 epochs of 4 steps: longer than the probe's 3 calls of a 4-step chunk, so the scan is measured
    _, history = fl.fit(state, (x, y), loss=HEAD, batch_size=16, epochs=4, callbacks=[hook])
    assert history.driver["driver"] == "scan" and history.driver["scan_s_per_step"] is not None
    assert drivers.run_chunk._cache_size() == before + 1
