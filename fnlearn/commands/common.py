"""What several commands share: the ``--set`` option, training into a run directory, the table
printed after training, and the one-line warning."""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from pathlib import Path

from fnlearn.errors import FnlearnWarning

RAW = argparse.RawDescriptionHelpFormatter


def add_set(sub: argparse.ArgumentParser) -> None:
    """The repeatable ``--set KEY=VALUE`` config override (stored as ``args.overrides``)."""
    sub.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="override a config value, as a TOML literal: optimizer.learning_rate=1e-3, "
        'model.sizes=[64,32], data.name="iris" (repeatable)',
    )


def add_training_options(sub: argparse.ArgumentParser, *, out: str, resume: str, quiet: str) -> None:
    """``--set``, ``--out DIR``, ``--resume`` and ``--quiet`` of a command that trains, with its help texts."""
    add_set(sub)
    sub.add_argument("--out", metavar="DIR", help=out)
    sub.add_argument("--resume", action="store_true", help=resume)
    sub.add_argument("--quiet", action="store_true", help=quiet)
    cluster = sub.add_argument_group(
        "several processes (docs/scaleout.md; default: fnlearn launch's, or SLURM's / mpirun's own)"
    )
    cluster.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address, reachable by all")
    cluster.add_argument("--process-id", type=int, metavar="I", help="this process's number, 0..N-1")
    cluster.add_argument("--num-processes", type=int, metavar="N", help="how many processes train together")


def add_compile_cache_option(sub: argparse.ArgumentParser) -> None:
    """``--no-compile-cache`` (stored as ``args.compile_cache``, True by default) of a command that
    compiles; ``fnlearn.cli`` adds it to each of them."""
    sub.add_argument(
        "--no-compile-cache",
        action="store_false",
        dest="compile_cache",
        help="compile every program afresh instead of loading it from jax's persistent compilation "
        "cache (default folder: $XDG_CACHE_HOME/fnlearn/jax or ~/.cache/fnlearn/jax; "
        "JAX_COMPILATION_CACHE_DIR overrides it, FNLEARN_COMPILE_CACHE=0 also turns it off)",
    )


def warn(message: str) -> None:
    """One ``fnlearn: warning: ...`` line (through ``warnings``; ``cli`` prints it as one line)."""
    warnings.warn(FnlearnWarning(message), stacklevel=2)


def train_into(args, plans_for, default: Path, again: Callable[[Path], str]) -> list:
    """``execute.run_command`` with the command's options.

    Once the run directory ``out`` is claimed it is kept on ``args.run_out``, and ``args.again``
    is the command (``again(out)``) that continues it, for the Ctrl-C line.
    """
    from fnlearn import distributed
    from fnlearn.runs import execute

    cluster = distributed.requested(args.coordinator, args.process_id, args.num_processes)
    distributed.initialize(cluster)  # before anything asks jax for its devices
    if cluster is not None:
        distributed.silence_followers()

    def claimed(out):
        args.run_out = out
        args.again = again(out)

    return execute.run_command(
        args.out,
        default,
        plans_for,
        resume=args.resume,
        quiet=args.quiet,
        announce=getattr(args, "announce", None),
        claimed=claimed,
    )


def print_table(paths) -> None:
    """The markdown comparison table of the runs below ``paths``, on stdout."""
    from fnlearn import report

    runs = report.find_runs(paths)
    columns, rows = report.compare_table(runs)
    print(report.markdown_table(columns, rows))
    if report.key_text(runs):
        print(report.key_text(runs))
