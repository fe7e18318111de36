"""Several processes, one run (``fnlearn launch``, ``fnlearn.distributed``): real processes on
127.0.0.1, JAX's own runtime with gloo. Two processes × 4 virtual CPU devices (8 in all) train the
digits MLP with SGD; the result must equal one process with 8 devices and one with 1 device. A
second launch is killed mid-run (one worker, after its first checkpoint): the launcher names the
dead worker in one line and exits non-zero, and the resumed run equals the uninterrupted one.
Streamed batches, each process feeding its half of every global batch, equal one device.

One set of runs (module fixture) serves every assertion; they are small (360 training rows,
3 epochs of 12 steps)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import fnlearn as fl
from fnlearn import cli, distributed
from fnlearn.commands import launch
from fnlearn.errors import FnlearnError

sys.path.insert(0, str(Path(__file__).parent / "jobs"))
from streamed_shards_job import streamed_fit  # noqa: E402

CONFIG = """\
name = "digits_mp"
[data]
name = "digits"
val = 0.0
test = 0.8          # 360 training rows: 12 steps per epoch
[model]
sizes = [32]
[loss]
distribution = "categorical"
[optimizer]
name = "sgd"
learning_rate = 0.1
[training]
epochs = 3
batch_size = 32
devices = 0         # all: 8 here, over one or two processes
driver = "scan"     # the same driver in every run compared
[training.checkpoint]
every = 1
[logging]
plots = false
"""
pytestmark = pytest.mark.xdist_group("multiprocess")  # one worker runs the module fixture once
STEPS = 36
TIMEOUT_S = 300
STREAMED_JOB = Path(__file__).parent / "jobs" / "streamed_shards_job.py"


def _env(devices: int | None = None) -> dict:
    env = dict(os.environ)
    if devices is not None:
        flag = f"--xla_force_host_platform_device_count={devices}"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
    return env


def _command(*args) -> list[str]:
    return [sys.executable, "-m", "fnlearn", *args]


def _launch(config: Path, out: Path, *extra) -> list[str]:
    return _command(
        "launch", "-n", "2", "--local-devices", "4", "--", "train", *extra, "--out", str(out), "--quiet"
    )


def _streamed_processes() -> list:
    """The streamed job in two processes joined by hand (FNLEARN_*), 4 devices each."""
    address = f"127.0.0.1:{launch._free_port()}"
    processes = []
    for i in range(2):
        env = _env(4) | {
            "FNLEARN_COORDINATOR": address,
            "FNLEARN_PROCESS_ID": str(i),
            "FNLEARN_NUM_PROCESSES": "2",
        }
        out = subprocess.PIPE if i == 0 else subprocess.DEVNULL
        processes.append(
            subprocess.Popen([sys.executable, str(STREAMED_JOB)], env=env, stdout=out, text=True)
        )
    return processes


def _workers(launcher_pid: int) -> dict[int, int]:
    """{FNLEARN_PROCESS_ID: pid} of the launcher's children."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == launcher_pid:
            for item in environ:
                if item.startswith(b"FNLEARN_PROCESS_ID="):
                    found[int(item.split(b"=", 1)[1])] = int(entry.name)
    return found


def _checkpoint_steps(run_dir: Path) -> list[int]:
    last = run_dir / "checkpoints" / "last"
    return sorted(int(p.name) for p in last.iterdir() if p.name.isdigit()) if last.is_dir() else []


def _kill_after_first_checkpoint(config: Path, out: Path):
    """A two-process launch whose worker 1 is killed (SIGKILL) once the first checkpoint exists."""
    launcher = subprocess.Popen(
        _launch(config, out, str(config)),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + TIMEOUT_S
    while not _checkpoint_steps(out) and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    workers = _workers(launcher.pid)
    if 1 in workers:
        os.kill(workers[1], signal.SIGKILL)
    _, err = launcher.communicate(timeout=TIMEOUT_S)
    return launcher.returncode, err, workers.get(1), _checkpoint_steps(out)


def _result(run_dir: Path) -> dict:
    loaded = fl.runs.load(run_dir)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {
        "params": jax.tree.map(np.asarray, loaded.state.params),
        "step": int(loaded.state.step),
        "losses": np.array([row["train_loss"] for row in rows]),
        "summary": json.loads((run_dir / "summary.json").read_text()),
    }


@pytest.fixture(scope="session")  # session: kept on its worker until the end, never built twice
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiprocess")
    config = root / "digits_mp.toml"
    config.write_text(CONFIG)
    two = subprocess.Popen(
        _launch(config, root / "two", str(config)), env=_env(), stderr=subprocess.PIPE, text=True
    )
    eight = subprocess.Popen(
        _command("train", str(config), "--out", str(root / "eight"), "--quiet"),
        env=_env(8),
        stderr=subprocess.PIPE,
        text=True,
    )
    streamed = _streamed_processes()
    one = ["train", str(config), "--out", str(root / "one"), "--set", "training.devices=1", "--quiet"]
    assert cli.main(one) == 0
    streamed_reference = streamed_fit(0, 1, None)
    for process in (two, eight):
        _, err = process.communicate(timeout=TIMEOUT_S)
        assert process.returncode == 0, err[-3000:]
    streamed_out, _ = streamed[0].communicate(timeout=TIMEOUT_S)
    assert streamed[1].wait(timeout=TIMEOUT_S) == 0 and streamed[0].returncode == 0
    killed = _kill_after_first_checkpoint(config, root / "killed")
    resumed = subprocess.run(
        _launch(config, root / "killed", "--resume"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    results = {name: _result(root / name) for name in ("two", "eight", "one", "killed")}
    streamed_result = json.loads(streamed_out.strip().splitlines()[-1])
    return results | {"root": root, "kill": killed, "streamed": (streamed_result, streamed_reference)}


def _max_difference(a, b) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_two_processes_equal_one_process_with_eight_devices(runs):
    two, eight = runs["two"], runs["eight"]
    assert two["step"] == eight["step"] == STEPS
    assert two["summary"]["device"]["count"] == eight["summary"]["device"]["count"] == 8
    assert _max_difference(two["params"], eight["params"]) < 1e-5
    np.testing.assert_allclose(two["losses"], eight["losses"], rtol=1e-5)
    np.testing.assert_allclose(two["summary"]["test"]["loss"], eight["summary"]["test"]["loss"], rtol=1e-5)


def test_two_processes_equal_one_device(runs):
    two, one = runs["two"], runs["one"]
    assert one["summary"]["device"]["count"] >= 1 and one["step"] == STEPS
    assert _max_difference(two["params"], one["params"]) < 1e-4
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-4)
    np.testing.assert_allclose(two["summary"]["test"]["loss"], one["summary"]["test"]["loss"], rtol=1e-4)


def test_process_zero_alone_writes_the_run_directory(runs):
    """One metrics record per epoch (not one per process), no lock left behind."""
    run_dir = runs["root"] / "two"
    assert len(runs["two"]["losses"]) == 3
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoints",
        "config.toml",
        "metrics.jsonl",
        "summary.json",
    ]
    assert _checkpoint_steps(run_dir) == [12, 24, 36]


def test_a_dying_worker_stops_the_others_in_one_line(runs):
    code, err, pid, steps = runs["kill"]
    assert code != 0 and pid is not None
    lines = [line for line in err.splitlines() if line.startswith("fnlearn:")]
    assert lines == [
        f"fnlearn: error: process 1 (pid {pid}) exited with signal SIGKILL; stopped the other 1."
    ]
    assert steps and max(steps) < STEPS  # killed mid-run, after its first checkpoint


def test_a_killed_run_resumes_to_the_uninterrupted_result(runs):
    killed, two = runs["killed"], runs["two"]
    assert killed["step"] == STEPS
    assert _max_difference(killed["params"], two["params"]) == 0.0
    np.testing.assert_array_equal(killed["losses"], two["losses"])
    assert killed["summary"]["test"] == two["summary"]["test"]


def test_streamed_batches_fed_per_process_equal_one_device(runs):
    (result, reference) = runs["streamed"]
    assert result["devices"] == 8
    assert _max_difference(result["params"], reference["params"]) < 1e-5
    np.testing.assert_allclose(result["losses"], reference["losses"], rtol=1e-5)
    np.testing.assert_allclose(result["val_losses"], reference["val_losses"], rtol=1e-5)


# ------------------------------------------------------------------------------------------------
# who joins whom (no processes started)


@pytest.mark.parametrize(
    "flags, environ, expected",
    [
        ((None, None, None), {}, None),
        ((None, None, None), {"SLURM_NTASKS": "1"}, None),
        ((None, None, None), {"SLURM_NTASKS": "4"}, distributed.Cluster()),
        ((None, None, None), {"OMPI_COMM_WORLD_SIZE": "2"}, distributed.Cluster()),
        (
            (None, None, None),
            {"FNLEARN_COORDINATOR": "127.0.0.1:5", "FNLEARN_PROCESS_ID": "1", "FNLEARN_NUM_PROCESSES": "2"},
            distributed.Cluster("127.0.0.1:5", 1, 2),
        ),
        (("host:7", 0, 3), {"SLURM_NTASKS": "4"}, distributed.Cluster("host:7", 0, 3)),  # flags win
    ],
)
def test_which_cluster_a_process_joins(flags, environ, expected):
    assert distributed.requested(*flags, environ=environ) == expected


@pytest.mark.parametrize(
    "flags, message",
    [
        (("host:7", None, None), "give all three"),
        (("host", 0, 2), "is not HOST:PORT"),
        (("host:7", 2, 2), "not in 0..1"),
    ],
)
def test_cluster_mistakes_are_one_line(flags, message):
    with pytest.raises(FnlearnError, match=message):
        distributed.requested(*flags, environ={})
