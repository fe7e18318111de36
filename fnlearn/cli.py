"""The ``fnlearn`` command: train, sweep, compare, plot.

::

    fnlearn train configs/digits_mlp.toml [--set optimizer.learning_rate=3e-3] [--out runs/x] [--resume]
    fnlearn sweep configs/optimizers.toml [--grid optimizer.name=sgd,adam] [--seeds 3]
    fnlearn compare runs/a runs/b [--csv table.csv] [--out curves.png]
    fnlearn plot runs/a

A config mistake is one line on stderr naming the key, and exit status 2; it is found before any
run directory is made. Training code (jax, the engine) is imported inside the commands that train.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from fnlearn.errors import FnlearnError

__all__ = ["main"]

EXIT_USAGE = 2

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
        "exit status: 0 done; 1 some run of a sweep or multi-seed run diverged (its summary.json says so);\n"
        "2 a mistake in the config or the command line (one line on stderr, nothing written); 130 interrupted.",
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
    sweep.add_argument(
        "--seeds", type=int, metavar="N", help="train every combination with seeds 0..N-1"
    )
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
    compare.add_argument(
        "--csv", metavar="FILE", help="also write the table as CSV (mean and std columns)"
    )
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
    plot.add_argument(
        "run", metavar="RUN_DIR", help="a run directory (or a folder of them: one plot each)"
    )
    plot.add_argument(
        "--out", metavar="PNG", help="where to write (default RUN_DIR/plots/training.png)"
    )
    plot.set_defaults(handler=cmd_plot)
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
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    try:
        args = _parser().parse_args(argv)
        if args.command is None:
            _parser().print_help()
            return EXIT_USAGE
        return args.handler(args) or 0
    except FnlearnError as error:
        print(f"fnlearn: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as done:  # --help, --version
        return done.code if isinstance(done.code, int) else 0
    except KeyboardInterrupt:
        print(
            "fnlearn: interrupted; `fnlearn train --resume --out DIR` continues from the last checkpoint.",
            file=sys.stderr,
        )
        return 130


# ------------------------------------------------------------------------------------------------
# run directories


def _free_directory(base: Path) -> Path:
    """``base`` if it is free, else ``base-2``, ``base-3``, ..."""
    if not _is_taken(base):
        return base
    n = 2
    while _is_taken(base.with_name(f"{base.name}-{n}")):
        n += 1
    return base.with_name(f"{base.name}-{n}")


def _is_taken(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def _output_directory(given: str | None, default: Path, resume: bool) -> Path:
    if resume:
        out = Path(given) if given else default
        if not out.is_dir():
            raise FnlearnError(
                f"--resume: {str(out)!r} does not exist. Pass the run directory to continue with --out DIR."
            )
        return out
    if given is None:
        return _free_directory(default)
    out = Path(given)
    if _is_taken(out):
        raise FnlearnError(
            f"--out {given}: the directory is not empty. Pass --resume to continue the run in it, or choose another --out."
        )
    return out


def _write_text(path: Path, text: str) -> None:
    """Write through a temporary file and rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _seed_config(config, seed: int):
    from fnlearn import config as fconfig

    training = dataclasses.replace(config.training, seeds=(seed,))
    return dataclasses.replace(config, training=training, sweep=fconfig.SweepConfig())


RESUMABLE_CHANGES = ("training.epochs", "training.steps", "logging.")
"""Keys a resumed run may change: train longer (also a finished run), log differently."""


def _check_same_config(run_dir: Path, config) -> list[str]:
    """--resume continues the run only with the config it started with, bar its length and
    logging; returns the keys that changed (all of them in ``RESUMABLE_CHANGES``)."""
    from fnlearn import config as fconfig

    saved_path = run_dir / "config.toml"
    if not saved_path.is_file():
        return []
    saved = _flat(tomllib.loads(saved_path.read_text(encoding="utf-8")))
    given = _flat(fconfig.to_dict(config))
    changed = [key for key in sorted(set(saved) | set(given)) if saved.get(key) != given.get(key)]
    for key in changed:
        if not key.startswith(RESUMABLE_CHANGES):
            raise FnlearnError(
                f"--resume: {key} = {given.get(key, '(unset)')} differs from the run's {saved_path} "
                f"({saved.get(key, '(unset)')}). Resume with the config the run started with, or train into a new --out."
            )
    return changed


def _flat(table: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in table.items():
        if isinstance(value, dict) and not key.endswith(("options", "grid")):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value, sort_keys=True)
    return out


# ------------------------------------------------------------------------------------------------
# training


def _environment() -> dict:
    import jax
    import numpy as np

    from fnlearn import __version__

    device = jax.devices()[0]
    return {
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "numpy": np.__version__,
            "fnlearn": __version__,
        },
        "device": {
            "platform": device.platform,
            "kind": getattr(device, "device_kind", str(device)),
            "count": jax.device_count(),
        },
        "host": platform.node(),
    }


def _epoch_printer(total_epochs: int):
    """A callback printing about ten lines per run: epoch, train and validation metrics."""
    from fnlearn import report
    from fnlearn.callbacks import LambdaCallback

    every = max(1, total_epochs // 10)

    def show(ctx):
        if ctx.epoch % every and ctx.epoch != total_epochs:
            return
        shown = {
            k: v
            for k, v in ctx.record.items()
            if k.startswith(("train_", "val_")) and not report.is_bookkeeping(k)
        }
        metrics = "  ".join(f"{k} {v:.4g}" for k, v in shown.items())
        print(f"  epoch {ctx.epoch:>4}  {metrics}", flush=True)

    return LambdaCallback(on_epoch_end=show)


def _has_checkpoint(run_dir: Path) -> bool:
    from fnlearn import checkpoint

    return checkpoint.latest_step(run_dir / "checkpoints" / "last") is not None


def _callbacks(config, quiet: bool, run_dir: Path):
    """``(callbacks for fit, the EarlyStopping among them or None)``."""
    from fnlearn import callbacks as fcallbacks

    es = config.training.early_stopping
    early = None
    if es.enabled:
        early = fcallbacks.EarlyStopping(
            es.monitor,
            patience=es.patience,
            min_delta=es.min_delta,
            mode=es.mode,
            restore_best=es.restore_best,
        )
    printer = None if quiet or config.logging.progress else _epoch_printer(config.training.epochs)
    board = fcallbacks.TensorBoard(run_dir / "tensorboard") if config.logging.tensorboard else None
    return [cb for cb in (early, printer, board) if cb is not None], early


def _train_one(built, config, run_dir: Path, label: str, *, resume: bool, quiet: bool) -> dict:
    """Train one seed into ``run_dir`` (config.toml already there); write summary.json and plots."""
    import jax

    from fnlearn import config as fconfig
    from fnlearn import report
    from fnlearn.loop import evaluate, fit
    from fnlearn.train import TrainState

    start = time.perf_counter()
    t = config.training
    if resume and not _has_checkpoint(run_dir):
        # killed before its first checkpoint: start over (fit rewrites metrics.jsonl)
        resume = False
        if not quiet:
            print(f"{run_dir}: no checkpoint yet, starting from the beginning", flush=True)
    state = TrainState.create(built.model, built.optimizer, jax.random.key(t.seeds[0]))
    callbacks, early = _callbacks(config, quiet, run_dir)
    splits = built.splits
    state, history = fit(
        state,
        (splits.train.x, splits.train.y),
        loss=built.head,
        epochs=t.epochs or None,
        steps=t.steps or None,
        batch_size=t.batch_size,
        eval=(splits.val.x, splits.val.y) if splits.val is not None else None,
        eval_batch_size=t.eval_batch_size,
        penalty=built.penalty,
        augment=built.augment,
        callbacks=callbacks,
        run_dir=run_dir,
        log_every=config.logging.every or None,
        drop_last=t.drop_last,
        on_nonfinite="skip" if config.optimizer.skip_nonfinite else "stop",
        log_norms=config.logging.norms,
        progress=config.logging.progress,
        devices=fconfig.fit_devices(t),
        checkpoint_every=t.checkpoint.every or None,
        keep_checkpoints=t.checkpoint.keep,
        resume=resume,
        config=fconfig.to_dict(config),
    )
    test = None
    if splits.test is not None:
        test = evaluate(
            state, (splits.test.x, splits.test.y), loss=built.head, batch_size=t.eval_batch_size
        )
    summary = _summary(built, config, label, state, history, early, test)
    summary["wall_time_s"] = time.perf_counter() - start
    _write_text(run_dir / "summary.json", json.dumps(summary, indent=2, default=float) + "\n")
    if config.logging.plots:
        with contextlib.suppress(FnlearnError):  # no matplotlib: the run is still complete
            report.plot_run(report.read_run(run_dir))
    return summary


def _summary(built, config, label: str, state, history, early, test) -> dict:
    """What summary.json holds for a finished run (see the train command's help)."""
    from fnlearn import report
    from fnlearn.tree import num_params

    splits = built.splits
    return {
        "name": config.name,
        "label": label,
        "seed": config.training.seeds[0],
        "status": "finished",
        "epochs": history[-1]["epoch"] if history else 0,
        "steps": int(state.step),
        "stopped_early": bool(early is not None and early.stopped_epoch is not None),
        "best_epoch": None if early is None else early.best_epoch,
        "final": report.final_metrics(history),
        "best": report.best_metrics(history),
        "test": test,
        "train_time_s": history[-1]["time"] if history else 0.0,
        "num_params": int(num_params(state.params)),
        "examples": {
            "train": len(splits.train),
            "val": len(splits.val) if splits.val is not None else 0,
            "test": len(splits.test) if splits.test is not None else 0,
        },
        "standardizer": built.standardizer.to_dict() if built.standardizer is not None else None,
        **_environment(),
    }


def _summary_line(run_dir: Path, summary: dict) -> str:
    if summary.get("status") == "diverged":
        return f"{run_dir}: diverged after {summary['epochs']} epochs ({summary['error'].split(' (')[0]})"
    test = summary.get("test") or {}
    shown = "  ".join(f"test_{k} {v:.4g}" for k, v in test.items())
    return f"{run_dir}: {shown}  ({summary['epochs']} epochs, {summary['train_time_s']:.1f} s training)"


class _Plan(NamedTuple):
    """One run to make: where, with which config (one seed), under which label in the tables."""

    run_dir: Path
    config: object
    label: str


def _plan_runs(config, out: Path, label: str) -> list[_Plan]:
    """One plan per seed of ``config``: ``out`` itself for one seed, else ``out/seed_S``."""
    seeds = config.training.seeds
    if len(seeds) == 1:
        return [_Plan(out, _seed_config(config, seeds[0]), label)]
    return [_Plan(out / f"seed_{s}", _seed_config(config, s), label) for s in seeds]


def _build_all(plans: list[_Plan]) -> list[_Plan]:
    """Every plan with its config built (``Built``; data cached between them) before anything is
    written, so a mistake in any run stops the command before the first directory exists."""
    from fnlearn import config as fconfig

    cache: dict = {}
    return [plan._replace(config=fconfig.build(plan.config, cache=cache)) for plan in plans]


def _replica_groups(built_runs, resume: bool) -> list[list]:
    """Consecutive runs that differ only in their seed (same label, same parent folder) form one
    group to train as vmapped replicas, where ``training.replicas`` allows it and nothing needs the
    sequential path: one device, per-epoch logging, no update skipping, not a resume."""
    groups: list[list] = []
    for run in built_runs:
        config = run[1].config
        eligible = (not resume and config.training.replicas and config.training.devices == 1
                    and not config.logging.every and not config.optimizer.skip_nonfinite)
        last = groups[-1] if groups else None
        if (eligible and last and last[0][2] == run[2] and last[0][0].parent == run[0].parent
                and last[0][0].name.startswith("seed_") and run[0].name.startswith("seed_")):
            last.append(run)
        else:
            groups.append([run])
    return groups


def _train_replicas(group, *, quiet: bool) -> list[tuple[Path, dict]]:
    """Train the seeds of one configuration as one vmapped program (``fl.replicas``), then write
    every seed's run directory as a sequential run would: config.toml, metrics.jsonl, a final
    checkpoint, summary.json, plots. A seed that diverges is frozen and recorded as diverged while
    the others go on."""
    from fnlearn import checkpoint, replicas, report
    from fnlearn import config as fconfig
    from fnlearn.callbacks import EarlyStopping, TensorBoard
    from fnlearn.loop import evaluate

    start = time.perf_counter()
    built = group[0][1]
    t = built.config.training
    seeds = [run[1].config.training.seeds[0] for run in group]
    for run_dir, run_built, _ in group:
        header = f"The resolved config of run {run_built.config.name!r}, seed {run_built.config.training.seeds[0]}, written by fnlearn train."
        _write_text(run_dir / "config.toml", fconfig.dumps(run_built.config, header=header))
    if not quiet:
        print(f"training {len(group)} seeds as vmapped replicas: {', '.join(str(r[0]) for r in group)}", flush=True)
    es = t.early_stopping
    early = EarlyStopping(es.monitor, patience=es.patience, min_delta=es.min_delta, mode=es.mode,
                          restore_best=es.restore_best) if es.enabled else None
    splits = built.splits
    try:
        states, info = replicas.create(built.model, built.optimizer, seeds)
        states, history = replicas.fit(
            states, (splits.train.x, splits.train.y), loss=built.head, epochs=t.epochs or None,
            steps=t.steps or None, batch_size=t.batch_size,
            eval=(splits.val.x, splits.val.y) if splits.val is not None else None,
            eval_batch_size=t.eval_batch_size, penalty=built.penalty, augment=built.augment,
            early_stopping=early, info=info, drop_last=t.drop_last, progress=built.config.logging.progress,
        )
    except FnlearnError:  # refused before training: leave no half-made directories
        for run_dir, _, _ in group:
            _discard_if_untouched(run_dir)
        raise
    done = []
    for i, (run_dir, run_built, label) in enumerate(group):
        config = run_built.config
        rows = [{k: v for k, v in r.items() if k not in ("replica", "seed", "active", "diverged")}
                for r in history if r["replica"] == i and r.get("train_loss") is not None]  # epochs it trained
        _write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        if config.logging.tensorboard:
            TensorBoard.write_history(run_dir / "tensorboard", rows)
        if any(r["replica"] == i and r["diverged"] for r in history):
            summary = _diverged_summary(config, run_dir, label, "a loss or gradient turned non-finite; the replica was frozen at its last finite state")
        else:
            state = replicas.replica(states, i)
            checkpoint.save(run_dir / "checkpoints" / "last", state, extra={"history": rows, "config": fconfig.to_dict(config)})
            test = None
            if splits.test is not None:
                test = evaluate(state, (splits.test.x, splits.test.y), loss=built.head, batch_size=t.eval_batch_size)
            summary = _summary(run_built, config, label, state, rows, None, test)
            if early is not None and rows:
                best = (min if early.mode == "min" else max)(rows, key=lambda r: r.get(early.monitor, float("nan")))
                summary["best_epoch"] = best["epoch"]
                summary["stopped_early"] = rows[-1]["epoch"] < (t.epochs or rows[-1]["epoch"])
            summary["replicas"] = len(group)
            summary["wall_time_s"] = time.perf_counter() - start
            _write_text(run_dir / "summary.json", json.dumps(summary, indent=2, default=float) + "\n")
            if config.logging.plots:
                with contextlib.suppress(FnlearnError):
                    report.plot_run(report.read_run(run_dir))
        if not quiet:
            print(_summary_line(run_dir, summary), flush=True)
        done.append((run_dir, summary))
    return done


def _run_all(built_runs, *, resume: bool, quiet: bool) -> list[tuple[Path, dict]]:
    """Train every run: the seeds of one configuration together as vmapped replicas where they can
    (see ``_replica_groups``), the rest one after another. A run that diverges gets a summary with
    status "diverged" and the others go on; with a single run, divergence is an error (exit 2)."""
    done = []
    for group in _replica_groups(built_runs, resume):
        if len(group) > 1:
            done += _train_replicas(group, quiet=quiet)
        else:
            done += _run_sequential(group, resume=resume, quiet=quiet, single=len(built_runs) == 1)
    return done


def _run_sequential(built_runs, *, resume: bool, quiet: bool, single: bool) -> list[tuple[Path, dict]]:
    """Train each run in turn, each checkpointed and exactly resumable."""
    from fnlearn import config as fconfig
    from fnlearn.callbacks import NonFiniteError

    done = []
    for run_dir, built, label in built_runs:
        config = built.config
        changed = _check_same_config(run_dir, config) if resume else []
        longer = any(key in ("training.epochs", "training.steps") for key in changed)
        if resume and (run_dir / "summary.json").is_file():
            if not longer:
                summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
                if not quiet:
                    print(f"{run_dir}: already finished, skipped")
                done.append((run_dir, summary))
                continue
            (run_dir / "summary.json").unlink()  # a finished run trained for longer
        header = f"The resolved config of run {config.name!r}, seed {config.training.seeds[0]}, written by fnlearn train."
        _write_text(run_dir / "config.toml", fconfig.dumps(config, header=header))
        if not quiet:
            print(f"{'resuming' if resume else 'training'} {run_dir}", flush=True)
        try:
            summary = _train_one(built, config, run_dir, label, resume=resume, quiet=quiet)
        except NonFiniteError as error:
            hint = " In the config: lower optimizer.learning_rate, set optimizer.clip_norm, or optimizer.skip_nonfinite."
            if single:
                raise FnlearnError(f"{run_dir}: {error}{hint}") from None
            summary = _diverged_summary(config, run_dir, label, str(error))
        except FnlearnError:
            if not resume:
                _discard_if_untouched(run_dir)
            raise
        if not quiet:
            print(_summary_line(run_dir, summary), flush=True)
        done.append((run_dir, summary))
    return done


def _discard_if_untouched(run_dir: Path) -> None:
    """Remove a run directory that training rejected before its first record (and the one or two
    folders above it if that leaves them empty), so a refused run leaves no half-made directory."""
    from fnlearn import report

    names = {p.name for p in run_dir.iterdir()}
    checkpoints = run_dir / "checkpoints"
    if not names <= {"config.toml", "metrics.jsonl", "checkpoints"}:
        return
    if report.read_metrics(run_dir / "metrics.jsonl") or (
        checkpoints.is_dir() and any(checkpoints.iterdir())
    ):
        return
    for name in ("config.toml", "metrics.jsonl"):
        (run_dir / name).unlink(missing_ok=True)
    for folder in (checkpoints, run_dir, *list(run_dir.parents)[:2]):
        with contextlib.suppress(OSError):  # not empty, or not there: keep it
            folder.rmdir()


def _diverged_summary(config, run_dir: Path, label: str, message: str) -> dict:
    from fnlearn import report

    rows = report.read_metrics(run_dir / "metrics.jsonl")
    summary = {
        "name": config.name,
        "label": label,
        "seed": config.training.seeds[0],
        "status": "diverged",
        "error": message,
        "epochs": rows[-1].get("epoch", 0) if rows else 0,
        "final": report.final_metrics(rows),
        "best": report.best_metrics(rows),
        "test": None,
        "train_time_s": rows[-1].get("time", 0.0) if rows else 0.0,
    }
    _write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _exit_status(done) -> int:
    """0, or 1 when some run diverged (its summary says so)."""
    return 1 if any(summary.get("status") == "diverged" for _, summary in done) else 0


def _resume_config(out: Path):
    """The config of the run (or multi-seed folder) ``out``, for ``train --resume`` without CONFIG."""
    from fnlearn import config as fconfig

    paths = (
        [out / "config.toml"]
        if (out / "config.toml").is_file()
        else sorted(out.glob("seed_*/config.toml"))
    )
    if not paths:
        raise FnlearnError(
            f"--resume: {str(out)!r} holds no config.toml. Pass the CONFIG the run was started with."
        )
    configs = [fconfig.loads(p.read_text(encoding="utf-8"), source=str(p)) for p in paths]
    seeds = tuple(s for c in configs for s in c.training.seeds)
    return dataclasses.replace(
        configs[0], training=dataclasses.replace(configs[0].training, seeds=seeds)
    )


def cmd_train(args) -> int:
    from fnlearn import config as fconfig

    if args.config is None:
        if not (args.resume and args.out):
            raise FnlearnError(
                "fnlearn train: give a CONFIG file (or --resume --out DIR to continue a run)."
            )
        if args.overrides:
            raise FnlearnError("fnlearn train: --set needs the CONFIG file it changes.")
        config = _resume_config(Path(args.out))
    else:
        config = fconfig.load(args.config, args.overrides)
    out = _output_directory(args.out, Path("runs") / config.name, args.resume)
    built_runs = _build_all(_plan_runs(config, out, config.name))
    done = _run_all(built_runs, resume=args.resume, quiet=args.quiet)
    if args.quiet:
        print("\n".join(_summary_line(run_dir, summary) for run_dir, summary in done))
    if len(done) > 1 and not args.quiet:
        _print_table([d for d, _ in done])
    return _exit_status(done)


def cmd_sweep(args) -> int:
    from fnlearn import config as fconfig

    config = fconfig.load(args.config, args.overrides)
    runs = fconfig.expand_sweep(config, args.grid, args.seeds)
    out = _output_directory(args.out, Path("runs") / f"{config.name}-sweep", args.resume)
    plans = [plan for label, run in runs for plan in _plan_runs(run, out / label, label)]
    built_runs = _build_all(plans)
    if not args.quiet:
        print(f"sweep: {len(runs)} configurations, {len(plans)} runs into {out}", flush=True)
    done = _run_all(built_runs, resume=args.resume, quiet=args.quiet)
    _print_table([out])
    return _exit_status(done)


def _print_table(paths) -> None:
    from fnlearn import report

    columns, rows = report.compare_table(report.find_runs(paths))
    print(report.markdown_table(columns, rows))


def cmd_compare(args) -> int:
    """Damaged runs below a folder: one warning line each, left out; outputs checked first."""
    from fnlearn import report

    def warn(message: str) -> None:
        print(f"fnlearn: warning: {message}", file=sys.stderr)

    if args.csv is not None:
        report.check_output(args.csv, "--csv")
    if not args.no_plot:
        report.check_figure_path(args.out, "--out")
    runs = report.find_runs(args.runs, on_damaged=warn)
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

    def warn(message: str) -> None:
        print(f"fnlearn: warning: {message}", file=sys.stderr)

    if args.out:
        report.check_figure_path(args.out, "--out")
    runs = report.find_runs([args.run], on_damaged=warn)
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
            warn(f"skipped {report.show_path(run.path)}: {error}")
    if not plotted:
        raise FnlearnError(
            f"none of the {len(runs)} runs in {report.show_path(args.run)} could be plotted (each is named above)."
        )
    return 0
