"""The ``fnlearn`` command: train, sweep, compare, plot, predict, sample, summary, lr-find, launch.

::

    fnlearn train configs/digits_mlp.toml [--set optimizer.learning_rate=3e-3] [--out runs/x] [--resume]
    fnlearn sweep configs/optimizers.toml [--grid optimizer.name=sgd,adam] [--seeds 3]
    fnlearn compare runs/a runs/b [--csv table.csv] [--out curves.png]
    fnlearn plot runs/a
    fnlearn launch -n 2 -- train configs/digits_mlp.toml --set training.devices=0   (docs/scaleout.md)

A config mistake is one line on stderr naming the key, and exit status 2; it is found before any
run directory is made. This module is the parser and the one-line error reporting only: each
command is a module of ``fnlearn.commands`` (``add_parser`` and ``run``), listed in ``COMMANDS``,
and imports the training engine, the config package and the report inside its ``run``.
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

from fnlearn.commands import compare, launch, lr_find, plot, predict, sample, summary, sweep, train
from fnlearn.commands.common import add_compile_cache_option
from fnlearn.errors import FnlearnError

__all__ = ["main", "run"]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

EPILOG = """\
`fnlearn COMMAND --help` explains each command. Configs: see configs/*.toml.

exit status: 0 done; 1 a run diverged (its summary.json says so), or the operating system failed
(disk full, permission denied: one line naming the path); 2 a mistake in the config, the command
line, a data file or a checkpoint, or a run directory in use by another process; 130 interrupted."""

COMMANDS = (train, sweep, compare, plot, predict, sample, summary, lr_find, launch)
# the commands that compile programs: they take --no-compile-cache (fnlearn.compile_cache)
COMPILING = ("train", "sweep", "predict", "sample", "lr-find")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is a FnlearnError (one line, exit status 2), not an exit."""

    def error(self, message):
        raise FnlearnError(f"{self.prog}: {message}. See `{self.prog} --help`.")


def _parser() -> argparse.ArgumentParser:
    """``fnlearn [--version] COMMAND ...``, one subparser per module of ``COMMANDS``."""
    from fnlearn import __version__

    parser = _Parser(
        prog="fnlearn",
        description="Train neural networks from TOML configs, and compare the runs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fnlearn {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for command in COMMANDS:
        command.add_parser(subcommands)
    for name in COMPILING:
        add_compile_cache_option(subcommands.choices[name])
    return parser


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
            return _run_command(args)
        except FnlearnError as error:
            _error(error)
            return EXIT_USAGE
        except OSError as error:
            _error(_os_message(error))
            return EXIT_FAILURE
        except SystemExit as done:  # --help, --version
            return done.code if isinstance(done.code, int) else 0
        except KeyboardInterrupt:
            again = getattr(args, "again", None)  # set once a training command claims its --out
            if again is not None:
                _error(f"interrupted; {again} continues from the last checkpoint.")
            else:
                _error("interrupted.")
            return EXIT_INTERRUPTED


def _run_command(args) -> int:
    """The command's ``run(args)``; one that compiles runs with the persistent compilation cache
    (``fnlearn.compile_cache``: jax is imported only for those)."""
    if getattr(args, "compile_cache", None) is None:
        return args.func(args) or 0
    from fnlearn import compile_cache  # noqa: PLC0415 - imports jax

    with compile_cache.configured(enabled=args.compile_cache):
        return args.func(args) or 0


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
