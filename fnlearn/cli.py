"""The ``fnlearn`` command: train, sweep, compare, plot.

::

    fnlearn train configs/digits_mlp.toml [--set optimizer.learning_rate=3e-3] [--out runs/x] [--resume]
    fnlearn sweep configs/optimizers.toml [--grid optimizer.name=sgd,adam] [--seeds 3]
    fnlearn compare runs/a runs/b [--csv table.csv] [--out curves.png]
    fnlearn plot runs/a
    fnlearn sample runs/sort_gpt --prompt "86523=" --length 5

A config mistake is one line on stderr naming the key, and exit status 2; it is found before any
run directory is made. Training code (jax, the engine) is imported inside the commands that train.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

from fnlearn.errors import FnlearnError, FnlearnWarning

__all__ = ["main", "run"]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

EPILOG_TRAIN = """\
run directory (OUT, default runs/NAME, or runs/NAME-2, -3, ... if that is taken):
  config.toml     the resolved config (defaults filled in, --set applied), written before training
  metrics.jsonl   one JSON object per logging point (step, epoch, train_*, val_*, learning_rate, ...)
  checkpoints/    what --resume continues from
  summary.json    final and best metrics, test metrics, wall time, versions, device
  plots/          training.png: loss, metric and learning rate
with several training.seeds, OUT holds one such directory per seed: OUT/seed_0, OUT/seed_1, ...
The seeds train together as one vmapped program (training.replicas = true, the default; their
checkpoints are written when it ends, so --resume of an interrupted multi-seed run starts it over);
with training.replicas = false they train one after another, each resumable mid-run.

examples:
  fnlearn train configs/digits_mlp.toml
  fnlearn train configs/digits_mlp.toml --set optimizer.learning_rate=3e-3 --set model.sizes=[256,128]
  fnlearn train configs/digits_mlp.toml --set training.seeds=[0,1,2] --out runs/digits_seeds
  fnlearn train --resume --out runs/digits_mlp      (continue an interrupted run)
"""

EPILOG_SWEEP = """\
Runs every combination of the --grid values (and of the config's [sweep] grid and variants), each
into OUT/LABEL (OUT/LABEL/seed_S with several seeds): the configurations one after another, the
seeds of each as one vmapped program (see train --help), then prints the comparison table. Every run's config is validated and built before the first one starts.

examples:
  fnlearn sweep configs/digits_mlp.toml --grid optimizer.name=sgd,adam --grid optimizer.learning_rate=1e-3,1e-2 --seeds 3
  fnlearn sweep configs/optimizers.toml
  fnlearn sweep configs/deep_mlp.toml --resume --out runs/deep_mlp-sweep   (finish an interrupted sweep)
"""

EPILOG_COMPARE = """\
Runs whose configs differ only in training.seeds are grouped; each cell is mean ± sample std over
the group's seeds. Columns: test metrics (from summary.json), final and best validation metrics
(from metrics.jsonl; training metrics when there is no validation split), epochs, wall time.

damaged runs: a run directory named on the command line that cannot be read (a config.toml,
summary.json or metrics.jsonl that is unreadable, not UTF-8, not valid TOML/JSON, not a JSON object,
or a directory) is an error (exit 2, one line naming the file). A damaged run found below a named
folder is left out with one "fnlearn: warning: skipped RUN: ..." line on stderr, and the rest are
compared; exit 2 if none is left. A torn last line of metrics.jsonl (an interrupted run) is
ignored, and so are NaN, infinite and out-of-range numbers. --csv and --out must name a file in an
existing folder (no folder is created; checked before anything is read); both are written whole
or not at all, and their paths are printed on stderr ("table: ...", "curves: ...").

examples:
  fnlearn compare runs/optimizers-sweep
  fnlearn compare runs/a runs/b --csv table.csv --out curves.png
"""


# ------------------------------------------------------------------------------------------------
# argument parsing


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is a FnlearnError (one line, exit status 2), not an exit."""

    def error(self, message):
        raise FnlearnError(f"{self.prog}: {message}. See `{self.prog} --help`.")


def _parser() -> argparse.ArgumentParser:
    from fnlearn import __version__

    parser = _Parser(
        prog="fnlearn",
        description="Train neural networks from TOML configs, and compare the runs.",
        epilog="`fnlearn COMMAND --help` explains each command. Configs: see configs/*.toml.\n\n"
        "exit status: 0 done; 1 a run diverged (its summary.json says so), or the operating system failed\n"
        "(disk full, permission denied: one line naming the path); 2 a mistake in the config, the command\n"
        "line, a data file or a checkpoint, or a run directory in use by another process; 130 interrupted.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fnlearn {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    raw = argparse.RawDescriptionHelpFormatter

    train = commands.add_parser(
        "train",
        help="train one config (one run per seed)",
        epilog=EPILOG_TRAIN,
        formatter_class=raw,
        description="Train CONFIG, evaluate on the test split, write a run directory.",
    )
    train.add_argument(
        "config",
        nargs="?",
        metavar="CONFIG",
        help="the TOML config (optional with --resume: OUT/config.toml is used)",
    )
    _add_set(train)
    train.add_argument("--out", metavar="DIR", help="the run directory (default runs/NAME)")
    train.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    train.add_argument("--quiet", action="store_true", help="print only the final line of each run")
    train.set_defaults(handler=cmd_train)

    sweep = commands.add_parser(
        "sweep",
        help="train every combination of a grid of config values",
        epilog=EPILOG_SWEEP,
        formatter_class=raw,
        description="Train every combination of --grid values, then compare them.",
    )
    sweep.add_argument("config", metavar="CONFIG", help="the TOML config the grid varies")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a config key and the values to try (TOML literals; repeat for more axes)",
    )
    sweep.add_argument("--seeds", type=int, metavar="N", help="train every combination with seeds 0..N-1")
    _add_set(sweep)
    sweep.add_argument("--out", metavar="DIR", help="the sweep directory (default runs/NAME-sweep)")
    sweep.add_argument(
        "--resume", action="store_true", help="skip finished runs, resume unfinished ones in --out"
    )
    sweep.add_argument("--quiet", action="store_true", help="print only the table")
    sweep.set_defaults(handler=cmd_sweep)

    compare = commands.add_parser(
        "compare",
        help="table and learning curves of run directories",
        epilog=EPILOG_COMPARE,
        formatter_class=raw,
        description="Compare runs: a markdown table on stdout and a PNG of the curves.",
    )
    compare.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_DIR",
        help="run directories, or folders of them (a sweep's DIR)",
    )
    compare.add_argument("--csv", metavar="FILE", help="also write the table as CSV (mean and std columns)")
    compare.add_argument(
        "--out",
        metavar="PNG",
        default="compare.png",
        help="the learning-curve figure (default compare.png)",
    )
    compare.add_argument("--no-plot", action="store_true", help="print the table only")
    compare.set_defaults(handler=cmd_compare)

    plot = commands.add_parser(
        "plot",
        help="loss, metric and learning-rate curves of a run",
        description="Plot loss, metric and learning rate against the step.",
    )
    plot.add_argument("run", metavar="RUN_DIR", help="a run directory (or a folder of them: one plot each)")
    plot.add_argument("--out", metavar="PNG", help="where to write (default RUN_DIR/plots/training.png)")
    plot.set_defaults(handler=cmd_plot)
    from fnlearn.commands import sample  # noqa: PLC0415 - commands in their own modules

    sample.add_parser(commands)
    return parser


def _add_set(sub) -> None:
    sub.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="override a config value, as a TOML literal: optimizer.learning_rate=1e-3, "
        'model.sizes=[64,32], data.name="iris" (repeatable)',
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Every failure is one line on stderr: a mistake in the config or the command line (exit 2),
    a failure of the operating system such as a full disk or a folder without write permission
    (exit 1, naming the path and the cause), a diverged run (exit 1), Ctrl-C (exit 130).
    """
    args = None
    with _one_line_reports():
        try:
            args = _parser().parse_args(argv)
            if args.command is None:
                _parser().print_help()
                return EXIT_USAGE
            return (getattr(args, "func", None) or args.handler)(args) or 0
        except FnlearnError as error:
            _error(error)
            return EXIT_USAGE
        except OSError as error:
            _error(_os_message(error))
            return EXIT_FAILURE
        except SystemExit as done:  # --help, --version
            return done.code if isinstance(done.code, int) else 0
        except KeyboardInterrupt:
            out = getattr(args, "run_out", None)
            if out is not None and getattr(args, "command", None) in ("train", "sweep"):
                again = f"`fnlearn {args.command} --resume --out {out}`" + (
                    f" {args.config}" if args.command == "sweep" else ""
                )
                _error(f"interrupted; {again} continues from the last checkpoint.")
            else:
                _error("interrupted.")
            return EXIT_INTERRUPTED


def run() -> None:
    """The ``fnlearn`` console command: ``main()`` in a process that stays quiet to its end.

    After the command's one line, orbax's and TensorStore's background threads may still die (an
    interrupted save, a full disk) and print tracebacks as the interpreter shuts down. The command
    owns its process, so its hooks for those stay silent throughout (``FNLEARN_DEBUG=1`` keeps
    them); ``main()`` alone, called from Python, leaves the caller's hooks as they were.
    """
    if not os.environ.get("FNLEARN_DEBUG"):
        sys.excepthook = sys.unraisablehook = threading.excepthook = lambda *args: None
        logging.disable(logging.CRITICAL)
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


def _warn(message: str) -> None:
    """One ``fnlearn: warning: ...`` line (through ``warnings``, printed by ``_one_line_reports``)."""
    warnings.warn(FnlearnWarning(message), stacklevel=2)


def _error(message) -> None:
    text = " ".join(str(message).split("\n"))
    print(f"fnlearn: error: {text}", file=sys.stderr, flush=True)


def _os_message(error: OSError) -> str:
    """``PATH: No space left on device`` and what to do, for a failure of the operating system."""
    where = error.filename or "a file"
    cause = error.strerror or str(error)
    hint = {
        errno.ENOSPC: "Free some space (or write to another --out) and resume with --resume.",
        errno.EDQUOT: "Free some space (or write to another --out) and resume with --resume.",
        errno.EACCES: "Check the permissions of that path, or write to another --out.",
        errno.EPERM: "Check the permissions of that path, or write to another --out.",
        errno.EROFS: "That file system is read-only: write to another --out.",
        errno.ENOTDIR: "A file stands where a folder is needed: choose another path.",
        errno.EISDIR: "A folder stands where a file is needed: choose another path.",
    }.get(error.errno, "")
    return f"{where}: {cause}. {hint}".strip()


@contextlib.contextmanager
def _one_line_reports():
    """While the command runs: warnings print as one line; the absl/orbax/asyncio loggers and the
    tracebacks of dying background threads (orbax reading a damaged checkpoint) stay silent.
    ``FNLEARN_DEBUG=1`` keeps them. Library users keep whatever logging they configured."""
    if os.environ.get("FNLEARN_DEBUG"):
        yield
        return
    saved_hooks = sys.unraisablehook, threading.excepthook, warnings.showwarning
    loggers = [logging.getLogger(name) for name in ("absl", "asyncio", "orbax")]
    levels = [logger.level for logger in loggers]
    sys.unraisablehook = threading.excepthook = lambda *args: None
    warnings.showwarning = lambda message, *args, **kwargs: print(
        f"fnlearn: warning: {message}", file=sys.stderr, flush=True
    )
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        sys.unraisablehook, threading.excepthook, warnings.showwarning = saved_hooks
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


# ------------------------------------------------------------------------------------------------
# the commands that train


def _train_into(args, plans_for, default: Path) -> list:
    """``execute.run_command`` with the command's options; the run directory is kept on ``args``
    for the Ctrl-C hint."""
    from fnlearn.runs import execute

    def claimed(out):
        args.run_out = out

    return execute.run_command(
        args.out,
        default,
        plans_for,
        resume=args.resume,
        quiet=args.quiet,
        announce=getattr(args, "announce", None),
        claimed=claimed,
    )


def cmd_train(args) -> int:
    from fnlearn import config as fconfig
    from fnlearn.runs import execute

    if args.config is None:
        if not (args.resume and args.out):
            raise FnlearnError("fnlearn train: give a CONFIG file (or --resume --out DIR to continue a run).")
        config = execute.resume_config(Path(args.out), args.overrides)
    else:
        config = fconfig.load(args.config, args.overrides)
    done = _train_into(
        args, lambda out: execute.plan_runs(config, out, config.name), Path("runs") / config.name
    )
    if args.quiet:
        print("\n".join(execute.summary_line(d.run_dir, d.summary) for d in done))
    if len(done) > 1 and not args.quiet:
        _print_table([d.run_dir for d in done])
    return execute.exit_status(done)


def cmd_sweep(args) -> int:
    from fnlearn import config as fconfig
    from fnlearn.runs import execute

    config = fconfig.load(args.config, args.overrides)
    runs = fconfig.expand_sweep(config, args.grid, args.seeds)

    def plans_for(out):
        return [plan for label, run in runs for plan in execute.plan_runs(run, out / label, label)]

    args.announce = lambda out, plans: f"sweep: {len(runs)} configurations, {len(plans)} runs into {out}"
    done = _train_into(args, plans_for, Path("runs") / f"{config.name}-sweep")
    _print_table([args.run_out])
    return execute.exit_status(done)


def _print_table(paths) -> None:
    from fnlearn import report

    columns, rows = report.compare_table(report.find_runs(paths))
    print(report.markdown_table(columns, rows))


def cmd_compare(args) -> int:
    """Damaged runs below a folder: one warning line each, left out; outputs checked first."""
    from fnlearn import report

    if args.csv is not None:
        report.check_output(args.csv, "--csv")
    if not args.no_plot:
        report.check_figure_path(args.out, "--out")
    runs = report.find_runs(args.runs, on_damaged=_warn)
    columns, rows = report.compare_table(runs)
    print(report.markdown_table(columns, rows))
    if args.csv is not None:
        print(f"table: {report.write_csv(args.csv, columns, rows)}", file=sys.stderr)
    if not args.no_plot:
        print(f"curves: {report.plot_compare(runs, args.out)}", file=sys.stderr)
    return 0


def cmd_plot(args) -> int:
    """One figure per run; a damaged run or one with nothing to plot below a folder is one warning."""
    from fnlearn import report

    if args.out:
        report.check_figure_path(args.out, "--out")
    runs = report.find_runs([args.run], on_damaged=_warn)
    if args.out and len(runs) > 1:
        raise FnlearnError(
            f"--out names one file, but {args.run} holds {len(runs)} runs; leave --out out to plot each into its plots/."
        )
    plotted = 0
    for run in runs:
        try:
            print(report.plot_run(run, args.out))
            plotted += 1
        except FnlearnError as error:
            if len(runs) == 1:
                raise
            _warn(f"skipped {report.show_path(run.path)}: {error}")
    if not plotted:
        raise FnlearnError(
            f"none of the {len(runs)} runs in {report.show_path(args.run)} could be plotted (each is named above)."
        )
    return 0
