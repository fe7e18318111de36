"""``fnlearn launch -n N -- train CONFIG ...``: N local processes training one run together.

Each process is ``python -m fnlearn train CONFIG ...`` with ``FNLEARN_COORDINATOR`` (127.0.0.1
and a free port), ``FNLEARN_PROCESS_ID`` and ``FNLEARN_NUM_PROCESSES`` in its environment, which
``fnlearn.distributed`` turns into ``jax.distributed.initialize`` (CPU collectives through gloo).
The launcher waits for all of them: Ctrl-C stops every one, and a process that dies stops the
others, with one line naming it and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

from fnlearn.errors import FnlearnError

EPILOG = """\
Every process runs the same command on the same data and seed; with training.devices = 0 (all)
the run trains data-parallel over the devices of all of them. Process 0 writes the run directory
and prints; all of them write the checkpoints (orbax's multi-process protocol). See docs/scaleout.md.

examples:
  fnlearn launch -n 2 -- train configs/digits_mlp.toml --set training.devices=0
  fnlearn launch -n 2 --local-devices 4 -- train configs/digits_mlp.toml --set training.devices=0
  fnlearn launch -n 2 -- train --resume --out runs/digits_mlp
"""

POLL_S = 0.05
FLUSH_S = 10.0  # at most this long for a finished worker's last output lines


def add_parser(subcommands) -> None:
    sub = subcommands.add_parser(
        "launch",
        help="start N local processes of one training command (jax.distributed)",
        description="Start N processes of `fnlearn COMMAND ...` on this machine, joined by jax.distributed.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.add_argument("-n", "--processes", type=int, required=True, metavar="N", help="how many processes")
    sub.add_argument(
        "--local-devices",
        type=int,
        metavar="K",
        help="K virtual CPU devices in each process (XLA's --xla_force_host_platform_device_count)",
    )
    sub.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="-- COMMAND ...", help="e.g. -- train CONFIG"
    )
    sub.set_defaults(func=run)


def run(args) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else list(args.command)
    if args.processes < 1:
        raise FnlearnError(f"fnlearn launch: -n {args.processes}: give at least 1 process.")
    if args.local_devices is not None and args.local_devices < 1:
        raise FnlearnError(f"fnlearn launch: --local-devices {args.local_devices}: give at least 1.")
    if not command or command[0] not in ("train", "sweep"):
        raise FnlearnError("fnlearn launch: give the command to run after --, e.g. `-- train CONFIG`.")
    address = f"127.0.0.1:{_free_port()}"
    processes = [
        _start(command, i, args.processes, address, args.local_devices) for i in range(args.processes)
    ]
    try:
        code = _wait(processes)
        for process in processes:  # their last lines (the summary) reach the terminal first
            process.forwarder.join(timeout=FLUSH_S)
        return code
    except KeyboardInterrupt:
        _stop(processes)
        print(
            f"fnlearn: error: interrupted; stopped all {len(processes)} processes.",
            file=sys.stderr,
            flush=True,
        )
        return 130


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(command: list[str], index: int, count: int, address: str, local_devices: int | None):
    """Process ``index`` of ``count``, in a session of its own (Ctrl-C reaches the launcher, which stops it)."""
    env = dict(os.environ)
    env |= {
        "FNLEARN_COORDINATOR": address,
        "FNLEARN_PROCESS_ID": str(index),
        "FNLEARN_NUM_PROCESSES": str(count),
    }
    if local_devices is not None:
        flag = f"--xla_force_host_platform_device_count={local_devices}"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
    process = subprocess.Popen(
        [sys.executable, "-m", "fnlearn", *command], env=env, start_new_session=True, stdout=subprocess.PIPE
    )
    process.forwarder = threading.Thread(target=_forward, args=(process.stdout,), daemon=True)
    process.forwarder.start()
    return process


# gloo's C++ prints a line per device when the processes connect (16 for 2 x 4 devices): not news
_GLOO_CONNECTED = re.compile(rb"\[Gloo\] Rank \d+ is connected to \d+ peer ranks")


def _forward(stream) -> None:
    """A worker's standard output, line by line, to ours, without gloo's connection lines."""
    for line in iter(stream.readline, b""):
        if not _GLOO_CONNECTED.match(line):
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()


def _wait(processes) -> int:
    """0 when every process ended well; else stop the others and name the first that failed."""
    while True:
        codes = [p.poll() for p in processes]
        # one that was killed before one that failed (likely because its peer was gone)
        failures = sorted((code > 0, i) for i, code in enumerate(codes) if code not in (None, 0))
        failed = failures[0][1] if failures else None
        if failed is not None:
            _stop(processes)
            code, pid = codes[failed], processes[failed].pid
            cause = f"code {code}" if code > 0 else f"signal {signal.Signals(-code).name}"
            others = len(processes) - 1
            print(
                f"fnlearn: error: process {failed} (pid {pid}) exited with {cause}; stopped the other {others}.",
                file=sys.stderr,
                flush=True,
            )
            return code if code > 0 else 128 - code
        if all(code == 0 for code in codes):
            return 0
        time.sleep(POLL_S)


def _stop(processes) -> None:
    """SIGKILL to every process still running. Not SIGTERM: jax.distributed catches it (its
    preemption notice) and the process trains on; and a process whose peer died is stuck in a
    collective anyway. Nothing is lost: a checkpoint is renamed into place only when complete."""
    for p in processes:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
    for p in processes:
        p.wait()
