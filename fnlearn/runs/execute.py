"""The runs a command makes: a config's seeds, a sweep's configurations, one after another.

A ``Plan`` is one run to make: its folder under the command's output directory, its config (one
seed) and its label in the tables. ``build_all`` builds every plan (data, model, head, optimizer)
before anything is written, so a mistake in any run stops the command before the first folder
exists. ``run_all`` then trains them: the seeds of one configuration together as vmapped replicas
where they can, the rest one after another, each in its locked run directory:

    RUN/config.toml    the resolved config, written (atomically) once the run is accepted
    RUN/metrics.jsonl  one JSON object per logging point
    RUN/checkpoints/   what --resume continues from (checksummed; see fnlearn.checkpoint)
    RUN/summary.json   written last, atomically: "status" is "finished" or "diverged"
    RUN/plots/

A run that diverges gets a summary with ``"status": "diverged"`` and the others go on; the command
then exits 1. A run refused before its first record leaves nothing behind: the files it wrote and
the folders this command made are removed, never a folder the user made.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from fnlearn import __version__, checkpoint, replicas, report
from fnlearn import config as fconfig
from fnlearn.atomic import write_text
from fnlearn.callbacks import EarlyStopping, LambdaCallback, NonFiniteError, TensorBoard
from fnlearn.errors import FnlearnError
from fnlearn.loop import evaluate, fit
from fnlearn.runs import build as fbuild
from fnlearn.runs import resume as fresume
from fnlearn.runs.rundir import Claim, check_resumable, output_directory
from fnlearn.train import TrainState
from fnlearn.tree import num_params

__all__ = [
    "Plan",
    "Done",
    "plan_runs",
    "build_all",
    "run_all",
    "run_command",
    "resume_config",
    "exit_status",
    "summary_line",
]

DIVERGED_HINT = (
    " In the config: lower optimizer.learning_rate, set optimizer.clip_norm, or optimizer.skip_nonfinite."
)


class Plan(NamedTuple):
    """One run to make: ``run_dir``, its config (one seed; a ``Built`` once built), its label."""

    run_dir: Path
    config: Any
    label: str


class Done(NamedTuple):
    run_dir: Path
    summary: dict


def seed_config(config, seed: int):
    training = dataclasses.replace(config.training, seeds=(seed,))
    return dataclasses.replace(config, training=training, sweep=fconfig.SweepConfig())


def plan_runs(config, out: Path, label: str) -> list[Plan]:
    """One plan per seed of ``config``: ``out`` itself for one seed, else ``out/seed_S``."""
    seeds = config.training.seeds
    if len(seeds) == 1:
        return [Plan(out, seed_config(config, seeds[0]), label)]
    return [Plan(out / f"seed_{s}", seed_config(config, s), label) for s in seeds]


def build_all(plans: list[Plan]) -> list[Plan]:
    """Every plan with its config built (data cached between them), before anything is written."""
    cache: dict = {}
    return [plan._replace(config=fbuild.build(plan.config, cache=cache)) for plan in plans]


def exit_status(done: list[Done]) -> int:
    """0, or 1 when some run diverged (its summary says so)."""
    return 1 if any(d.summary.get("status") == "diverged" for d in done) else 0


def summary_line(run_dir: Path, summary: dict) -> str:
    if summary.get("status") == "diverged":
        return f"{run_dir}: diverged after {summary['epochs']} epochs ({summary['error'].split(' (')[0]})"
    test = summary.get("test") or {}
    shown = "  ".join(f"test_{k} {v:.4g}" for k, v in test.items())
    return f"{run_dir}: {shown}  ({summary['epochs']} epochs, {summary['train_time_s']:.1f} s training)"


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, flush=True)


def _write_json(path: Path, value: dict) -> None:
    write_text(path, json.dumps(value, indent=2, default=float) + "\n")


def _write_config(run_dir: Path, config) -> None:
    header = f"The resolved config of run {config.name!r}, seed {config.training.seeds[0]}, written by fnlearn train."
    write_text(run_dir / "config.toml", fconfig.dumps(config, header=header))


def untouched(run_dir: Path) -> bool:
    """Nothing trained yet: no metrics record and no checkpoint."""
    checkpoints = run_dir / "checkpoints"
    return not report.read_metrics(run_dir / "metrics.jsonl") and not (
        checkpoints.is_dir() and any(checkpoints.iterdir())
    )


@contextlib.contextmanager
def _cleanup_on_error(claim: Claim, run_dirs: list[Path], resume: bool):
    """A run that fails before its first record removes what it wrote and the folders it made."""
    try:
        yield
    except BaseException:
        if not resume:
            for run_dir in run_dirs:
                if run_dir.is_dir():
                    claim.discard(run_dir, untouched=untouched(run_dir))
        raise


# ------------------------------------------------------------------------------------------------
# one run after another


def _early_stopping(config) -> EarlyStopping | None:
    es = config.training.early_stopping
    if not es.enabled:
        return None
    return EarlyStopping(
        es.monitor, patience=es.patience, min_delta=es.min_delta, mode=es.mode, restore_best=es.restore_best
    )


def _epoch_printer(total_epochs: int):
    """A callback printing about ten lines per run: epoch, train and validation metrics."""
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


def fit_kwargs(built) -> dict:
    """The arguments of ``fl.fit`` and ``fl.replicas.fit`` that a config sets: one translation."""
    t, splits = built.config.training, built.splits
    return {
        "loss": built.head,
        "epochs": t.epochs or None,
        "steps": t.steps or None,
        "batch_size": t.batch_size,
        "eval": (splits.val.x, splits.val.y) if splits.val is not None else None,
        "eval_batch_size": t.eval_batch_size,
        "penalty": built.penalty,
        "augment": built.augment,
        "drop_last": t.drop_last,
        "progress": built.config.logging.progress,
    }


def _fit_run(built, run_dir: Path, *, resume: bool, quiet: bool):
    """``(state, history, early stopping)`` of one run trained (or resumed) in ``run_dir``."""
    config = built.config
    t = config.training
    early = _early_stopping(config)
    printer = None if quiet or config.logging.progress else _epoch_printer(t.epochs)
    board = TensorBoard(run_dir / "tensorboard") if config.logging.tensorboard else None
    splits = built.splits
    state = TrainState.create(built.model, built.optimizer, jax.random.key(t.seeds[0]))
    state, history = fit(
        state,
        (splits.train.x, splits.train.y),
        **fit_kwargs(built),
        callbacks=[cb for cb in (early, printer, board) if cb is not None],
        run_dir=run_dir,
        log_every=config.logging.every or None,
        on_nonfinite="skip" if config.optimizer.skip_nonfinite else "stop",
        log_norms=config.logging.norms,
        devices=fbuild.fit_devices(t),
        driver=t.driver,  # not in fit_kwargs: fl.replicas.fit has no driver (yet)
        checkpoint_every=t.checkpoint.every or None,
        keep_checkpoints=t.checkpoint.keep,
        resume=resume,
        config=fconfig.to_dict(config),
    )
    return state, history, early


def _finish(built, run_dir: Path, label: str, state, history, extra: dict, start: float) -> dict:
    """Evaluate on the test split, write summary.json (atomically) and the plots."""
    config = built.config
    test = None
    if built.splits.test is not None:
        test = evaluate(
            state,
            (built.splits.test.x, built.splits.test.y),
            loss=built.head,
            batch_size=config.training.eval_batch_size,
        )
    summary = _summary(built, label, state, history, test) | extra
    summary["wall_time_s"] = time.perf_counter() - start
    _write_json(run_dir / "summary.json", summary)
    if config.logging.plots:
        with contextlib.suppress(FnlearnError):  # no matplotlib: the run is still complete
            report.plot_run(report.read_run(run_dir))
    return summary


def _train_sequential(claim: Claim, plan: Plan, *, resume: bool, quiet: bool) -> Done:
    """Train (or resume) one run in its locked directory; a divergence is recorded, not raised."""
    run_dir, built, label = plan
    claim.lock(run_dir)
    decision = fresume.decide(run_dir, built) if resume else fresume.Decision("fresh")
    if decision.action == "skip":
        _say(quiet, f"{run_dir}: already finished, skipped")
        return Done(run_dir, decision.summary)
    if resume and decision.action == "fresh":
        _say(quiet, f"{run_dir}: no checkpoint yet, starting from the beginning")
    _write_config(run_dir, built.config)
    _say(quiet, f"{'resuming' if decision.action == 'resume' else 'training'} {run_dir}")
    start = time.perf_counter()
    try:
        state, history, early = _fit_run(built, run_dir, resume=decision.action == "resume", quiet=quiet)
    except NonFiniteError as error:
        summary = _diverged_summary(built.config, run_dir, label, str(error))
    else:
        extra = {
            "stopped_early": bool(early is not None and early.stopped_epoch is not None),
            "best_epoch": None if early is None else early.best_epoch,
        }
        summary = _finish(built, run_dir, label, state, history, extra, start)
    _say(quiet, summary_line(run_dir, summary))
    return Done(run_dir, summary)


def _diverged_summary(config, run_dir: Path, label: str, message: str) -> dict:
    """summary.json of a run that diverged; the message says whether a checkpoint is there."""
    rows = report.read_metrics(run_dir / "metrics.jsonl")
    newest = checkpoint.latest_step(run_dir / "checkpoints" / "last")
    kept = (
        f" Its last checkpoint (step {newest}) is in {run_dir / 'checkpoints' / 'last'}."
        if newest is not None
        else " No checkpoint was written before it."
    )
    summary = {
        "name": config.name,
        "label": label,
        "seed": config.training.seeds[0],
        "status": "diverged",
        "error": message + kept,
        "epochs": rows[-1].get("epoch", 0) if rows else 0,
        "final": report.final_metrics(rows),
        "best": report.best_metrics(rows),
        "test": None,
        "train_time_s": rows[-1].get("time", 0.0) if rows else 0.0,
    }
    _write_json(run_dir / "summary.json", summary)
    return summary


def _summary(built, label: str, state, history, test) -> dict:
    """What summary.json holds for a finished run (see the train command's help)."""
    config, splits = built.config, built.splits
    return {
        "name": config.name,
        "label": label,
        "seed": config.training.seeds[0],
        "status": "finished",
        "epochs": history[-1]["epoch"] if history else 0,
        "steps": int(state.step),
        "stopped_early": False,
        "best_epoch": None,
        "final": report.final_metrics(history),
        "best": report.best_metrics(history),
        "test": test,
        "train_time_s": history[-1]["time"] if history else 0.0,
        "num_params": int(num_params(state.params)),
        "driver": getattr(history, "driver", None),  # fit's choice and measured s/step (docs/speed.md)
        "examples": {
            "train": len(splits.train),
            "val": len(splits.val) if splits.val is not None else 0,
            "test": len(splits.test) if splits.test is not None else 0,
        },
        "standardizer": built.standardizer.to_dict() if built.standardizer is not None else None,
        **environment(),
    }


# ------------------------------------------------------------------------------------------------
# the seeds of one configuration as vmapped replicas


def _replica_groups(plans: list[Plan], resume: bool) -> list[list[Plan]]:
    """Consecutive runs that differ only in their seed (same label, same parent folder) form one
    group to train as vmapped replicas, where ``training.replicas`` allows it and nothing needs the
    sequential path: one device, per-epoch logging, no update skipping, not a resume."""
    groups: list[list[Plan]] = []
    for plan in plans:
        config = plan.config.config
        eligible = (
            not resume
            and config.training.replicas
            and config.training.devices == 1
            and not config.logging.every
            and not config.optimizer.skip_nonfinite
        )
        last = groups[-1] if groups else None
        if (
            eligible
            and last
            and last[0].label == plan.label
            and last[0].run_dir.parent == plan.run_dir.parent
            and last[0].run_dir.name.startswith("seed_")
            and plan.run_dir.name.startswith("seed_")
        ):
            last.append(plan)
        else:
            groups.append([plan])
    return groups


def _train_replicas(claim: Claim, group: list[Plan], *, quiet: bool) -> list[Done]:
    """Train the seeds of one configuration as one vmapped program (``fl.replicas``), then write
    every seed's run directory as a sequential run would: config.toml, metrics.jsonl, a final
    checkpoint (unless ``checkpoint.every = 0``), summary.json, plots. A seed that diverges is
    frozen and recorded as diverged while the others go on."""
    start = time.perf_counter()
    built = group[0].config
    for plan in group:
        claim.lock(plan.run_dir)
        _write_config(plan.run_dir, plan.config.config)
    _say(
        quiet, f"training {len(group)} seeds as vmapped replicas: {', '.join(str(p.run_dir) for p in group)}"
    )
    early = _early_stopping(built.config)
    splits = built.splits
    states, info = replicas.create(
        built.model, built.optimizer, [p.config.config.training.seeds[0] for p in group]
    )
    states, history = replicas.fit(
        states, (splits.train.x, splits.train.y), **fit_kwargs(built), early_stopping=early, info=info
    )
    done = []
    for i, plan in enumerate(group):
        rows = [
            {k: v for k, v in r.items() if k not in ("replica", "seed", "active", "diverged")}
            for r in history
            if r["replica"] == i and r.get("train_loss") is not None
        ]  # epochs it trained
        summary = _write_replica(
            plan,
            replicas.replica(states, i),
            rows,
            early,
            len(group),
            start,
            diverged=any(r["replica"] == i and r["diverged"] for r in history),
        )
        _say(quiet, summary_line(plan.run_dir, summary))
        done.append(Done(plan.run_dir, summary))
    return done


def _write_replica(
    plan: Plan, state, rows: list[dict], early, count: int, start: float, *, diverged: bool
) -> dict:
    run_dir, built, label = plan
    config = built.config
    write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    if config.logging.tensorboard:
        TensorBoard.write_history(run_dir / "tensorboard", rows)
    if diverged:
        return _diverged_summary(
            config,
            run_dir,
            label,
            "training diverged: a loss or gradient turned non-finite; the replica was frozen at its last finite state.",
        )
    if config.training.checkpoint.every:
        checkpoint.save(
            run_dir / "checkpoints" / "last",
            state,
            extra={"history": rows, "config": fconfig.to_dict(config)},
        )
    extra = {}
    if early is not None and rows:
        best = (min if early.mode == "min" else max)(rows, key=lambda r: r.get(early.monitor, float("nan")))
        extra = {
            "best_epoch": best["epoch"],
            "stopped_early": rows[-1]["epoch"] < (config.training.epochs or rows[-1]["epoch"]),
        }
    return _finish(built, run_dir, label, state, rows, extra | {"replicas": count}, start)


# ------------------------------------------------------------------------------------------------


def run_all(claim: Claim, plans: list[Plan], *, resume: bool, quiet: bool) -> list[Done]:
    """Train every (built) plan, each in its locked run directory; see the module docstring."""
    done = []
    for group in _replica_groups(plans, resume):
        with _cleanup_on_error(claim, [plan.run_dir for plan in group], resume):
            if len(group) > 1:
                finished = _train_replicas(claim, group, quiet=quiet)
            else:
                finished = [_train_sequential(claim, group[0], resume=resume, quiet=quiet)]
        for run in finished:
            if run.summary.get("status") == "diverged":
                print(f"fnlearn: {run.run_dir}: {run.summary['error']}{DIVERGED_HINT}", file=sys.stderr)
        done += finished
    return done


def environment() -> dict:
    """Versions, device and host, for summary.json."""
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


def resume_config(out: Path, overrides: Sequence[str]):
    """The config of the run (or multi-seed folder) ``out``, with ``--set`` applied, for
    ``train --resume`` without CONFIG."""
    check_resumable(out)
    paths = (
        [out / "config.toml"] if (out / "config.toml").is_file() else sorted(out.glob("seed_*/config.toml"))
    )
    if not paths:
        raise FnlearnError(
            f"--resume: {str(out)!r} holds no config.toml. Pass the CONFIG the run was started with."
        )
    configs = []
    for path in paths:
        try:
            configs.append(fconfig.load(path, overrides))
        except FnlearnError as error:
            message = str(error)
            raise FnlearnError(message if str(path) in message else f"{path}: {message}") from None
    seeds = tuple(s for c in configs for s in c.training.seeds)
    first = configs[0]
    return dataclasses.replace(first, training=dataclasses.replace(first.training, seeds=seeds))


def run_command(
    out_arg: str | None, default: Path, plans_for, *, resume: bool, quiet: bool, announce=None, claimed=None
) -> list[Done]:
    """Claim the output directory (``--out``, else ``default`` or the first free ``default-N``),
    build every plan ``plans_for(out)``, train them. A command that fails leaves behind only what
    trained: what it made for nothing is removed."""
    with Claim() as claim:
        out = output_directory(claim, out_arg, default, resume)
        if claimed is not None:
            claimed(out)
        try:
            plans = build_all(plans_for(out))
            if not quiet and announce is not None:
                print(announce(out, plans), flush=True)
            return run_all(claim, plans, resume=resume, quiet=quiet)
        except BaseException:
            if not resume:
                claim.discard(out, untouched=untouched(out))
            raise
