"""Hostile use of run directories: paths, a second writer, damaged checkpoints, resumes that do not
fit, diverged runs and failures of the operating system. Each case checks the exit status, one
line on stderr, and that nothing outside the run directory (or of the user's) changed.

Most cases run the command in this process on a tiny digits MLP; one trained run is made once per
module and copied into each test that needs it."""

import contextlib
import errno
import fcntl
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hostile import assert_one_error_line, run_cli, snapshot

from fnlearn.runs.rundir import LOCK_NAME

TINY = """\
name = "tiny"
[data]
val = 0.0
test = 0.2
[model]
sizes = [8]
[training]
epochs = 3
batch_size = 256
[training.checkpoint]
every = 1
[logging]
plots = false
"""

COSINE = TINY + '[optimizer.schedule]\nname = "cosine_decay"\n'


@pytest.fixture(scope="session")  # built once per worker, even if its tests are not consecutive
def trained(tmp_path_factory):
    """A finished 3-epoch run (checkpoints at every epoch) and an uninterrupted 5-epoch one."""
    root = tmp_path_factory.mktemp("trained")
    old = Path.cwd()
    os.chdir(root)
    try:
        Path("tiny.toml").write_text(TINY)
        from fnlearn import cli

        assert cli.main(["train", "tiny.toml", "--out", "run", "--quiet"]) == 0
        assert cli.main(["train", "tiny.toml", "--out", "five", "--quiet", "--set", "training.epochs=5"]) == 0
    finally:
        os.chdir(old)
    return root


@pytest.fixture
def work(tmp_path, monkeypatch, trained):
    """A working folder holding tiny.toml and a copy of the finished run in ./run."""
    monkeypatch.chdir(tmp_path)
    Path("tiny.toml").write_text(TINY)
    shutil.copytree(trained / "run", "run")
    return tmp_path


def records(run_dir) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if k not in ("time", "examples_per_second")}
        for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    ]


def summary(run_dir) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


def same_outcome(a, b) -> None:
    """Two runs ended identically: every metric of every epoch, the steps and the test metrics."""
    assert records(a) == records(b)
    sa, sb = summary(a), summary(b)
    assert (sa["steps"], sa["test"], sa["final"]) == (sb["steps"], sb["test"], sb["final"])


def data_file(checkpoint: Path) -> Path:
    """The largest array data file of a checkpoint (orbax's OCDBT chunk of the state)."""
    return max((p for p in (checkpoint / "state" / "d").iterdir()), key=lambda p: p.stat().st_size)


def damage(checkpoint: Path, how: str) -> None:
    if how == "bit flip":
        path = data_file(checkpoint)
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0x10
        path.write_bytes(bytes(raw))
    elif how == "truncated":
        path = data_file(checkpoint)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "file deleted":
        data_file(checkpoint).unlink()
    elif how == "metadata edited":  # still valid JSON: only the digest can tell
        path = checkpoint / "meta" / "metadata"
        meta = json.loads(path.read_text())
        meta["extra"]["history"][0]["train_loss"] += 1.0
        path.write_text(json.dumps(meta))
    elif how == "metadata garbage":
        (checkpoint / "meta" / "metadata").write_bytes(b"\x00\xff not json")
    else:
        raise AssertionError(how)


# ------------------------------------------------------------------------------------------------
# 1. paths: nothing outside the run directory, nothing the user made is removed


def test_out_naming_an_existing_file_says_so(work, capsys):
    Path("taken").write_text("mine")
    before = snapshot(work)
    code, _, err = run_cli(["train", "tiny.toml", "--out", "taken"], capsys)
    assert code == 2
    assert_one_error_line(err, "--out taken", "is a file, not a folder")
    assert snapshot(work) == before


def test_resume_out_naming_a_file_says_so(work, capsys):
    Path("taken").write_text("mine")
    code, _, err = run_cli(["train", "--resume", "--out", "taken"], capsys)
    assert code == 2
    assert_one_error_line(err, "taken", "is a file")


def test_out_through_a_file_is_one_os_line(work, capsys):
    Path("plain").write_text("mine")
    before = snapshot(work)
    code, _, err = run_cli(["train", "tiny.toml", "--out", "plain/sub/run"], capsys)
    assert code == 1
    assert_one_error_line(err, "plain", "not a folder")
    assert snapshot(work) == before


@pytest.mark.parametrize("made_by_user", ["nothing", "a/b", "a/b/c"])
def test_a_refused_run_removes_only_the_folders_it_made(work, capsys, made_by_user):
    """batch_size larger than the data is found when building, after --out is claimed."""
    if made_by_user != "nothing":
        Path(made_by_user).mkdir(parents=True)
    before = snapshot(work)
    code, _, err = run_cli(
        ["train", "tiny.toml", "--out", "a/b/c", "--set", "training.batch_size=100000"], capsys
    )
    assert code == 2
    assert_one_error_line(err, "training.batch_size")
    assert snapshot(work) == before


def test_a_refused_default_run_leaves_the_users_runs_folder(work, capsys):
    Path("runs").mkdir()
    Path("runs/notes.txt").write_text("mine")
    before = snapshot(work)
    code, _, _ = run_cli(["train", "tiny.toml", "--set", "training.batch_size=100000"], capsys)
    assert code == 2 and snapshot(work) == before


def test_resume_of_a_missing_folder_is_one_line(work, capsys):
    code, _, err = run_cli(["train", "--resume", "--out", "nowhere"], capsys)
    assert code == 2
    assert_one_error_line(err, "nowhere", "does not exist")
    assert not Path("nowhere").exists()


def test_a_finished_run_leaves_no_lock_file(work):
    assert not (work / "run" / LOCK_NAME).exists()


# ------------------------------------------------------------------------------------------------
# 2. one writer per run directory


@contextlib.contextmanager
def held_lock(directory: Path, pid: int = 424242):
    """Hold ``directory``'s lock as another process would (flock is per open file)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_NAME, "w") as handle:
        handle.write(f"{pid}\n")
        handle.flush()
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield


@pytest.mark.parametrize(
    "args",
    [
        ["train", "tiny.toml", "--out", "run"],
        ["train", "--resume", "--out", "run"],
        ["train", "tiny.toml", "--resume", "--out", "run"],
    ],
)
def test_a_locked_run_directory_is_refused_naming_the_holder(work, capsys, args):
    with held_lock(work / "run"):
        before = snapshot(work)
        code, _, err = run_cli(args, capsys)
        assert snapshot(work) == before
    assert code == 2
    assert_one_error_line(err, "in use by another fnlearn process", "pid 424242")


def test_a_fresh_out_that_another_process_is_filling_is_refused(work, capsys):
    with held_lock(work / "fresh"):
        code, _, err = run_cli(["train", "tiny.toml", "--out", "fresh"], capsys)
    assert code == 2
    assert_one_error_line(err, "pid 424242")


def test_a_run_inside_a_locked_sweep_is_refused(work, capsys):
    shutil.copytree("run", "sweep/lr=0.1")
    with held_lock(work / "sweep", pid=777):
        code, _, err = run_cli(["train", "--resume", "--out", "sweep/lr=0.1"], capsys)
    assert code == 2
    assert_one_error_line(err, "inside", "pid 777")


def test_the_default_directory_skips_one_being_made_by_another_process(work, capsys):
    with held_lock(work / "runs" / "tiny"):
        code, out, _ = run_cli(["train", "tiny.toml", "--quiet"], capsys)
    assert code == 0 and "runs/tiny-2:" in out


def test_a_lock_file_left_by_a_killed_process_does_not_block(work, capsys):
    (work / "run" / LOCK_NAME).write_text("99999\n")  # nobody holds it
    code, _, err = run_cli(
        ["train", "--resume", "--out", "run", "--set", "training.epochs=4", "--quiet"], capsys
    )
    assert code == 0, err
    assert summary("run")["epochs"] == 4 and not (work / "run" / LOCK_NAME).exists()


def _start(args, cwd, **env):
    return subprocess.Popen(
        [sys.executable, "-m", "fnlearn", *args],
        cwd=cwd,
        env=os.environ | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate, timeout=120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_two_real_processes_one_run_directory(tmp_path):
    """A second process is refused with the first one's pid while it trains; Ctrl-C stops the first
    with one line naming the run (exit 130, whatever it was doing: often a checkpoint write); the
    lock is then free and --resume completes the run with one history line per epoch."""
    (tmp_path / "long.toml").write_text(TINY.replace("epochs = 3", "epochs = 400"))
    first = _start(["train", "long.toml", "--out", "run", "--quiet"], tmp_path)
    run = tmp_path / "run"
    assert _wait_for(
        lambda: (run / "checkpoints" / "last").is_dir() and any((run / "checkpoints" / "last").iterdir())
    )
    second = subprocess.run(
        [sys.executable, "-m", "fnlearn", "train", "--resume", "--out", "run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert second.returncode == 2, second.stderr
    assert_one_error_line(second.stderr, "in use by another fnlearn process", f"pid {first.pid}")
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 130, err
    assert_one_error_line(err, "interrupted", "fnlearn train --resume --out run")
    assert "absl" not in err and "WARNING" not in err
    trained = len(records(run))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fnlearn",
            "train",
            "--resume",
            "--out",
            "run",
            "--quiet",
            "--set",
            f"training.epochs={trained + 2}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert [r["epoch"] for r in records(run)] == list(range(1, trained + 3))


def test_ctrl_c_in_the_middle_of_a_checkpoint_write(tmp_path, monkeypatch, capsys):
    """KeyboardInterrupt raised inside orbax while it writes the second checkpoint (its metadata
    item, after the arrays): exit 130 with one line naming the resume command, no temporary folder
    left, and the resume completes the run."""
    from orbax.checkpoint._src.handlers import json_checkpoint_handler as handler

    monkeypatch.chdir(tmp_path)
    Path("tiny.toml").write_text(TINY)
    writes = []
    real = {
        name: getattr(handler.JsonCheckpointHandler, name)
        for name in ("save", "async_save")
        if hasattr(handler.JsonCheckpointHandler, name)
    }

    def interrupt_second(name):
        def save(self, *args, **kwargs):
            writes.append(name)
            if len(writes) == 2:
                raise KeyboardInterrupt
            return real[name](self, *args, **kwargs)

        async def async_save(self, *args, **kwargs):
            writes.append(name)
            if len(writes) == 2:
                raise KeyboardInterrupt
            return await real[name](self, *args, **kwargs)

        return async_save if name == "async_save" else save

    for name in real:
        monkeypatch.setattr(handler.JsonCheckpointHandler, name, interrupt_second(name))
    code, _, err = run_cli(["train", "tiny.toml", "--out", "run", "--quiet"], capsys)
    assert code == 130 and len(writes) == 2
    assert_one_error_line(err, "interrupted", "fnlearn train --resume --out run")
    assert [p for p in Path("run").rglob("*") if "tmp" in p.name] == []
    assert sorted(os.listdir("run/checkpoints/last")) == ["6"]
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(["train", "--resume", "--out", "run", "--quiet"], capsys)
    assert code == 0, err
    assert [r["epoch"] for r in records("run")] == [1, 2, 3]


# ------------------------------------------------------------------------------------------------
# 3. checkpoint integrity


@pytest.mark.parametrize(
    "how", ["bit flip", "truncated", "file deleted", "metadata edited", "metadata garbage"]
)
def test_a_damaged_newest_checkpoint_resumes_from_the_one_before_and_ends_identical(
    work, trained, capsys, how
):
    """The 3-epoch run lengthened to 5 with its epoch-3 checkpoint damaged: it reports the damage in
    one line, trains epochs 3-5 again from epoch 2's checkpoint and ends exactly as the 5-epoch run."""
    damage(work / "run" / "checkpoints" / "last" / str(3 * 6), how)
    code, _, err = run_cli(
        ["train", "--resume", "--out", "run", "--set", "training.epochs=5", "--quiet"], capsys
    )
    assert code == 0, err
    lines = err.splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith("fnlearn: warning: checkpoint")
        and "resuming from step 12" in lines[0]
    )
    assert (work / "run" / "checkpoints" / "damaged" / "last-18").is_dir()
    same_outcome(work / "run", trained / "five")


def test_no_readable_checkpoint_is_one_line_and_changes_nothing(work, capsys):
    for step in (6, 12, 18):
        damage(work / "run" / "checkpoints" / "last" / str(step), "metadata garbage")
    before = snapshot(work)
    code, _, err = run_cli(["train", "--resume", "--out", "run", "--set", "training.epochs=5"], capsys)
    assert code == 2
    assert_one_error_line(err, "no readable checkpoint", "Nothing was changed")
    assert snapshot(work) == before  # summary.json, config.toml and every checkpoint still there


def test_a_checkpoint_without_checksums_is_not_trusted(work, capsys):
    from fnlearn.checkpoint import _digest

    for step in (6, 12, 18):
        path = work / "run" / "checkpoints" / "last" / str(step) / "meta" / "metadata"
        meta = json.loads(path.read_text())
        del meta["checksums"]
        meta["digest"] = _digest(meta)
        path.write_text(json.dumps(meta))
    code, _, err = run_cli(["train", "--resume", "--out", "run", "--set", "training.epochs=5"], capsys)
    assert code == 2
    assert_one_error_line(err, "no checksums")


def test_checksums_cover_the_arrays_that_ride_along(tmp_path):
    import jax

    import fnlearn as fl
    from fnlearn.checkpoint import CheckpointError

    state = fl.TrainState.create(fl.nn.mlp([3, 4, 2]), fl.optim.sgd(0.1), jax.random.key(0))
    fl.checkpoint.save(tmp_path, state, arrays={"best_w": np.arange(4096, dtype=np.float32)})
    path = max((p for p in (tmp_path / "0" / "arrays" / "d").iterdir()), key=lambda p: p.stat().st_size)
    raw = bytearray(path.read_bytes())
    raw[-40] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="arrays|corrupt"):
        fl.checkpoint.restore(tmp_path, state)


def test_a_damaged_best_checkpoint_is_moved_aside_and_replaced(tmp_path):
    import jax

    import fnlearn as fl
    from fnlearn.checkpoint import RunCheckpoints
    from fnlearn.errors import FnlearnWarning

    state = fl.TrainState.create(fl.nn.mlp([3, 4, 2]), fl.optim.sgd(0.1), jax.random.key(0))
    run = RunCheckpoints(tmp_path, keep=2)
    run.save(state.replace(step=np.int32(1)), 1, {"e": 1}, best=("val_loss", 1.0))
    run.close()
    damage(tmp_path / "best" / "1", "metadata garbage")
    resumed = RunCheckpoints(tmp_path, keep=2)
    with pytest.warns(FnlearnWarning, match="best"):
        assert int(resumed.restore_latest(state)[0].step) == 1
    resumed.save(
        state.replace(step=np.int32(2)), 2, {"e": 2}, best=("val_loss", 2.0)
    )  # worse, but the only best
    resumed.close()
    assert fl.checkpoint.restore(tmp_path / "best", state)[1]["best"] == {"val_loss": 2.0}
    assert (tmp_path / "damaged" / "best-1").is_dir()


# ------------------------------------------------------------------------------------------------
# 4. resume trusts nothing it has not checked


def test_a_hand_edited_config_toml_is_refused_naming_the_key(work, capsys):
    path = work / "run" / "config.toml"
    path.write_text(path.read_text().replace("learning_rate = 0.001", "learning_rate = 0.01"))
    before = snapshot(work)
    code, _, err = run_cli(["train", "--resume", "--out", "run", "--set", "training.epochs=5"], capsys)
    assert code == 2
    assert_one_error_line(err, "optimizer.learning_rate", "checkpoint")
    assert snapshot(work) == before


def test_a_config_that_differs_from_the_run_is_refused_naming_the_key(work, capsys):
    before = snapshot(work)
    code, _, err = run_cli(
        ["train", "tiny.toml", "--resume", "--out", "run", "--set", "model.sizes=[9]"], capsys
    )
    assert code == 2
    assert_one_error_line(err, "model.sizes")
    assert snapshot(work) == before


def test_a_length_below_what_was_trained_is_refused(work, capsys):
    before = snapshot(work)
    code, _, err = run_cli(["train", "--resume", "--out", "run", "--set", "training.epochs=2"], capsys)
    assert code == 2
    assert_one_error_line(err, "training.epochs = 2", "below the 3 epochs")
    assert snapshot(work) == before


def test_a_schedule_fitted_to_the_old_length_is_not_silently_lengthened(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("cos.toml").write_text(COSINE)
    assert run_cli(["train", "cos.toml", "--out", "run", "--quiet"], capsys)[0] == 0
    before = snapshot(tmp_path)
    for extra in ([], ["cos.toml"]):  # from the run's config.toml, and from the CONFIG file
        code, _, err = run_cli(
            ["train", *extra, "--resume", "--out", "run", "--set", "training.epochs=6"], capsys
        )
        assert code == 2
        assert_one_error_line(err, "optimizer.schedule 'cosine_decay'", "decay_steps = 18", "final rate")
    assert snapshot(tmp_path) == before


def test_a_finished_run_trains_longer_and_equals_a_run_of_that_length(work, trained, capsys):
    code, _, err = run_cli(
        ["train", "--resume", "--out", "run", "--set", "training.epochs=5", "--quiet"], capsys
    )
    assert code == 0 and err == ""
    same_outcome(work / "run", trained / "five")
    config = tomllib.loads((work / "run" / "config.toml").read_text())
    assert config["training"]["epochs"] == 5  # rewritten once the resume was accepted


def test_a_finished_run_at_its_length_is_skipped_untouched(work, capsys):
    before = snapshot(work)
    code, out, _ = run_cli(["train", "--resume", "--out", "run"], capsys)
    assert code == 0 and "already finished, skipped" in out
    assert snapshot(work) == before


@pytest.mark.parametrize("garbage", [b"", b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_a_damaged_summary_does_not_stop_a_resume(work, trained, capsys, garbage):
    (work / "run" / "summary.json").write_bytes(garbage)
    code, _, err = run_cli(
        ["train", "--resume", "--out", "run", "--set", "training.epochs=5", "--quiet"], capsys
    )
    assert code == 0, err
    same_outcome(work / "run", trained / "five")


@pytest.mark.parametrize("garbage", [b"[model\n", b"\xff\xfe\x00", b"name = 'tiny'\n[model]\nsizes = 'x'\n"])
def test_a_damaged_config_toml_is_one_line(work, capsys, garbage):
    (work / "run" / "config.toml").write_bytes(garbage)
    code, _, err = run_cli(["train", "--resume", "--out", "run"], capsys)
    assert code == 2
    assert_one_error_line(err, "config.toml")


# ------------------------------------------------------------------------------------------------
# 5. exit codes and honest messages


@pytest.mark.parametrize("seeds", ["[0]", "[0,1]"])
def test_a_diverged_run_exits_1_and_says_so_in_its_summary(tmp_path, monkeypatch, capsys, seeds):
    monkeypatch.chdir(tmp_path)
    Path("bad.toml").write_text(TINY)
    code, _, err = run_cli(
        [
            "train",
            "bad.toml",
            "--out",
            "run",
            "--quiet",
            "--set",
            "optimizer.learning_rate=1e30",
            "--set",
            f"training.seeds={seeds}",
        ],
        capsys,
    )
    assert code == 1
    lines = [line for line in err.splitlines() if line]
    assert lines and all(line.startswith("fnlearn: ") for line in lines) and "Traceback" not in err
    assert "diverged" in lines[0] and "kept" not in err
    run_dirs = [Path("run")] if seeds == "[0]" else [Path("run/seed_0"), Path("run/seed_1")]
    assert any(summary(d)["status"] == "diverged" for d in run_dirs)


@pytest.mark.parametrize("where", ["run", "fresh"])
def test_a_diverged_run_names_its_last_checkpoint_only_when_there_is_one(work, capsys, monkeypatch, where):
    from fnlearn.callbacks import NonFiniteError
    from fnlearn.runs import execute

    def diverges(*args, **kwargs):
        raise NonFiniteError("training diverged: loss = nan at step 20 (first non-finite metric).")

    monkeypatch.setattr(execute, "fit", diverges)
    args = ["--resume", "--set", "training.epochs=5"] if where == "run" else ["tiny.toml"]
    code, _, err = run_cli(["train", *args, "--out", where, "--quiet"], capsys)
    assert code == 1
    message = summary(where)["error"]
    if where == "run":
        assert "Its last checkpoint (step 18)" in message
    else:
        assert "No checkpoint was written before it" in message and "kept" not in message
    assert len(err.splitlines()) == 1 and message in err


# ------------------------------------------------------------------------------------------------
# 6. failures of the operating system: one line naming the path and the cause, exit 1

NOBODY = 65534


@contextlib.contextmanager
def without_write_permission(*paths: Path):
    """``paths`` become read-only for this process: chmod, and for root (who ignores modes) an
    effective uid of nobody for the duration, with the folders made nobody's first."""
    root = os.geteuid() == 0
    saved = [(p, p.stat().st_mode) for p in paths]
    if root:
        for folder in {p for path in paths for p in [path, *path.parents] if str(p).startswith(str(SANDBOX))}:
            os.chown(folder, NOBODY, NOBODY)
    for path in paths:
        path.chmod(0o555 if path.is_dir() else 0o444)
    if root:
        os.seteuid(NOBODY)
    try:
        yield
    finally:
        if root:
            os.seteuid(0)
        for path, mode in saved:
            path.chmod(mode)


SANDBOX = Path(tempfile.gettempdir()) / "fnlearn-hostile-os"


@pytest.fixture
def sandbox(trained, monkeypatch):
    """A world-traversable folder (pytest's tmp folders are private to root) with tiny.toml and a run."""
    shutil.rmtree(SANDBOX, ignore_errors=True)
    SANDBOX.mkdir(mode=0o777)
    SANDBOX.chmod(0o777)
    (SANDBOX / "tiny.toml").write_text(TINY)
    (SANDBOX / "tiny.toml").chmod(0o644)
    shutil.copytree(trained / "run", SANDBOX / "run")
    monkeypatch.chdir(SANDBOX)
    yield SANDBOX
    if os.geteuid() == 0:
        os.seteuid(0)
    shutil.rmtree(SANDBOX, ignore_errors=True)


def test_a_read_only_out_parent_is_one_line(sandbox, capsys):
    (sandbox / "parent").mkdir()
    with without_write_permission(sandbox / "parent"):
        code, _, err = run_cli(["train", "tiny.toml", "--out", "parent/run"], capsys)
    assert code == 1
    assert_one_error_line(err, "parent", "Permission denied")
    assert list((sandbox / "parent").iterdir()) == []


def test_a_read_only_run_directory_on_resume_is_one_line(sandbox, capsys):
    before = snapshot(sandbox / "run")
    with without_write_permission(sandbox / "run"):
        code, _, err = run_cli(["train", "--resume", "--out", "run", "--set", "training.epochs=5"], capsys)
    assert code == 1
    assert_one_error_line(err, "run", "Permission denied")
    assert snapshot(sandbox / "run") == before


def test_a_read_only_checkpoints_folder_is_one_line(sandbox, capsys):
    last = sandbox / "run" / "checkpoints" / "last"
    with without_write_permission(last, *last.iterdir()):
        code, _, err = run_cli(
            ["train", "--resume", "--out", "run", "--set", "training.epochs=5", "--quiet"], capsys
        )
    assert code == 1, err
    assert_one_error_line(err, "checkpoints", "Permission denied")


def test_an_unreadable_config_is_one_line(sandbox, capsys):
    with without_write_permission(sandbox / "tiny.toml"):
        (sandbox / "tiny.toml").chmod(0o000)
        code, _, err = run_cli(["train", "tiny.toml", "--out", "x"], capsys)
    assert code == 1
    assert_one_error_line(err, "tiny.toml", "Permission denied")
    assert not (sandbox / "x").exists()


@contextlib.contextmanager
def disk_of(size_kib: int, where: Path):
    """``where`` becomes a folder that fills up after ``size_kib`` KiB: a tmpfs for root (a real
    ENOSPC); otherwise a per-file size limit (EFBIG), the nearest an ordinary user can get."""
    where.mkdir()
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(where)], capture_output=True
        ).returncode
        == 0
    )
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = None
    if not mounted:
        handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size_kib * 1024, limits[1]))
    try:
        yield errno.ENOSPC if mounted else errno.EFBIG
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], check=True)
        else:
            resource.setrlimit(resource.RLIMIT_FSIZE, limits)
            signal.signal(signal.SIGXFSZ, handler)


@pytest.mark.parametrize("size_kib", [8, 24, 64, 160])
def test_a_full_disk_is_one_line_and_leaves_no_half_file(tmp_path, monkeypatch, capsys, size_kib):
    """The run fills the disk at different points (config.toml, metrics.jsonl, a checkpoint, the
    summary): one line naming the path and the cause, exit 1; every file there is whole."""
    monkeypatch.chdir(tmp_path)
    Path("tiny.toml").write_text(TINY.replace("epochs = 3", "epochs = 30"))
    with disk_of(size_kib, tmp_path / "disk") as expected:
        code, _, err = run_cli(["train", "tiny.toml", "--out", "disk/run", "--quiet"], capsys)
        files = {p.name: p.read_bytes() for p in (tmp_path / "disk").rglob("*") if p.is_file()}
        leftovers = [p for p in (tmp_path / "disk").rglob("*") if "tmp" in p.name]
    assert code == 1, err
    assert_one_error_line(err, "disk", os.strerror(expected))
    assert leftovers == []
    if "summary.json" in files:
        json.loads(files["summary.json"])
    if "config.toml" in files:
        tomllib.loads(files["config.toml"].decode())
