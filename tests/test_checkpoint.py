"""fnlearn.checkpoint: round trips, mismatches, corruption, and exact resume after a real kill -9."""

import os
import random
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import chex
import jax
import numpy as np
import pytest

import fnlearn as fl
from fnlearn.checkpoint import CheckpointError, RunCheckpoints

JOB = Path(__file__).parent / "jobs" / "resume_job.py"
JOB_EPOCHS = runpy.run_path(str(JOB))["EPOCHS"]


def _trained_state(sizes=(4, 8, 3), steps=3):
    model = fl.nn.mlp(list(sizes), norm="batch_norm")
    state = fl.TrainState.create(model, fl.optim.adam(1e-2), jax.random.key(1))
    step = fl.train.make_train_step(fl.distributions.get("categorical"))
    x = np.random.default_rng(0).normal(size=(16, sizes[0])).astype(np.float32)
    y = np.arange(16, dtype=np.int32) % sizes[-1]
    for _ in range(steps):
        state, _ = step(state, (x, y))
    return state


def test_round_trip_restores_every_leaf(tmp_path):
    state = _trained_state()
    fl.checkpoint.save(tmp_path, state, extra={"note": "hello", "epoch": 3})
    template = fl.TrainState.create(state.model, state.tx, jax.random.key(99))
    restored, extra = fl.checkpoint.restore(tmp_path, template)
    chex.assert_trees_all_equal(
        (restored.step, restored.params, restored.model_state, restored.opt_state),
        (state.step, state.params, state.model_state, state.opt_state),
    )
    assert np.array_equal(jax.random.key_data(restored.key), jax.random.key_data(state.key))
    assert extra == {"note": "hello", "epoch": 3}
    assert fl.checkpoint.latest_step(tmp_path) == 3


def test_restoring_into_a_different_model_names_the_first_mismatching_leaf(tmp_path):
    fl.checkpoint.save(tmp_path, _trained_state())
    other = fl.TrainState.create(
        fl.nn.mlp([4, 9, 3], norm="batch_norm"), fl.optim.adam(1e-2), jax.random.key(0)
    )
    with pytest.raises(
        CheckpointError, match=r"first mismatching leaf is 'model_state/0/1/mean' \(state: shape \(9,\)"
    ):
        fl.checkpoint.restore(tmp_path, other)
    different_optimizer = fl.TrainState.create(
        fl.nn.mlp([4, 8, 3], norm="batch_norm"), fl.optim.sgd(0.1), jax.random.key(0)
    )
    with pytest.raises(CheckpointError, match="does not fit this state"):
        fl.checkpoint.restore(tmp_path, different_optimizer)


def _corrupt(directory: Path, how: str):
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.stat().st_size > 0)
    if how == "truncate":
        for p in files:
            if "ocdbt" in str(p) or p.parent.name == "d":
                p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])
    elif how == "garbage_metadata":
        for p in files:
            if p.name in ("metadata", "_METADATA") or p.parent.name == "meta":
                p.write_bytes(b"\x00garbage{")
    elif how == "delete_arrays":
        for p in files:
            if p.parent.name == "d":
                p.unlink()


@pytest.mark.parametrize("how", ["truncate", "garbage_metadata", "delete_arrays"])
def test_a_corrupt_checkpoint_raises_a_clear_error(tmp_path, how):
    state = _trained_state()
    path = fl.checkpoint.save(tmp_path, state)
    _corrupt(path, how)
    with pytest.raises(CheckpointError, match="corrupt|incomplete|truncated|does not fit"):
        fl.checkpoint.restore(tmp_path, state)


def test_missing_checkpoints_are_reported(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint directory"):
        fl.checkpoint.restore(tmp_path / "nothing", _trained_state())


def test_run_checkpoints_keep_the_last_k_and_the_best(tmp_path):
    state = _trained_state()
    run = RunCheckpoints(tmp_path, keep=2)
    for step, val_loss in [(1, 3.0), (2, 1.0), (3, 2.0), (4, 2.5)]:
        run.save(state.replace(step=np.int32(step)), step, {"epoch": step}, best=("val_loss", val_loss))
    run.close()
    assert sorted(int(p.name) for p in (tmp_path / "last").iterdir() if p.name.isdigit()) == [3, 4]
    assert [int(p.name) for p in (tmp_path / "best").iterdir() if p.name.isdigit()] == [2]
    _, extra = fl.checkpoint.restore(tmp_path / "best", state)
    assert extra["best"] == {"val_loss": 1.0}


def test_a_resumed_run_does_not_replace_the_best_by_a_worse_one(tmp_path):
    """The best value so far is read back from best/ on resume: epoch 3 (val 2.0) must not become
    the best after a resume from epoch 2 (val 1.0)."""
    state = _trained_state()
    run = RunCheckpoints(tmp_path, keep=3)
    for step, val_loss in [(1, 3.0), (2, 1.0)]:
        run.save(state.replace(step=np.int32(step)), step, {"epoch": step}, best=("val_loss", val_loss))
    run.close()
    resumed = RunCheckpoints(tmp_path, keep=3)
    assert int(resumed.restore_latest(state)[0].step) == 2
    resumed.save(state.replace(step=np.int32(3)), 3, {"epoch": 3}, best=("val_loss", 2.0))
    resumed.save(
        state.replace(step=np.int32(4)), 4, {"epoch": 4}, best=("val_accuracy", 0.5)
    )  # higher is better, from None
    resumed.close()
    _, extra = fl.checkpoint.restore(tmp_path / "best", state)
    assert extra["best"] == {"val_loss": 1.0}


def test_other_arrays_ride_along_and_come_back_by_name(tmp_path):
    state = _trained_state()
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "count": np.int32(7)}
    fl.checkpoint.save(tmp_path, state, extra={"note": 1}, arrays=arrays)
    _, extra = fl.checkpoint.restore(tmp_path, state)
    assert extra["note"] == 1 and sorted(extra["arrays"]) == ["count", "w"]
    np.testing.assert_array_equal(extra["arrays"]["w"], arrays["w"])
    assert extra["arrays"]["w"].dtype == np.float32 and int(extra["arrays"]["count"]) == 7
    with pytest.raises(fl.errors.FnlearnError, match='key "arrays"'):
        fl.checkpoint.save(tmp_path / "b", state, extra={"arrays": 1})


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path):
    state = _trained_state()
    run = RunCheckpoints(tmp_path, keep=3)
    run.save(state.replace(step=np.int32(1)), 1, {"epoch": 1})
    run.save(state.replace(step=np.int32(2)), 2, {"epoch": 2})
    run.close()
    _corrupt(tmp_path / "last" / "2", "delete_arrays")
    restored, extra = RunCheckpoints(tmp_path).restore_latest(state)
    assert extra == {"epoch": 1} and int(restored.step) == 1


def _run_job(run_dir, out, resume=False, **popen):
    cmd = [sys.executable, str(JOB), str(run_dir), str(out)] + (["--resume"] if resume else [])
    return subprocess.Popen(cmd, env=os.environ | {"PYTHONHASHSEED": "0"}, **popen)


def test_resume_after_kill_minus_nine_is_bit_identical(tmp_path):
    """Train uninterrupted; train again, kill -9 it at a random moment (possibly mid-checkpoint),
    resume from what is on disk; the final parameters (early stopping's best epoch's), optimizer
    state, key, best epoch and validation losses are bit-identical."""
    reference = _run_job(tmp_path / "ref", tmp_path / "ref.npz")
    assert reference.wait(timeout=600) == 0
    run_dir = tmp_path / "killed"
    victim = _run_job(run_dir, tmp_path / "never.npz")
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 1.0))  # somewhere inside training, maybe inside a save
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "never.npz").exists(), "the job finished before it could be killed"
    resumed = _run_job(run_dir, tmp_path / "resumed.npz", resume=True)
    assert resumed.wait(timeout=600) == 0
    a, b = np.load(tmp_path / "ref.npz"), np.load(tmp_path / "resumed.npz")
    assert sorted(a.files) == sorted(b.files)
    for name in a.files:
        assert np.array_equal(a[name], b[name]), name
    assert 1 <= int(a["best_epoch"]) < JOB_EPOCHS  # the final parameters are an earlier epoch's
    lines = metrics.read_text().splitlines()
    assert len(lines) == JOB_EPOCHS  # the history continues where the checkpoint left it, no duplicates
