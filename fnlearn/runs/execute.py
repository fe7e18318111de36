"""The runs a command makes: a config's seeds, a sweep's configurations, one after another.

A ``Plan`` (``runs.plans``) is one run to make: its folder under the command's output directory,
its config (one seed) and its label in the tables. ``build_all`` builds every plan (data, model,
head, optimizer) before anything is written, so a mistake in any run stops the command before the
first folder exists. ``run_all`` then trains them: the runs that differ only in per-replica
values (``plans.group_key``: seeds, learning rates, ...) together as one vmapped program
(``runs.replica_runs``), the rest one after another (here), each in its locked run directory;
both paths end in ``runs.summary.write_run``:

    RUN/config.toml    the resolved config, written (atomically) once the run is accepted
    RUN/vocab.json     sequence data only: the tokens' text and T, for ``fnlearn sample``
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
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import jax

from fnlearn import config as fconfig
from fnlearn import distributed, report
from fnlearn.callbacks import LambdaCallback, NonFiniteError, TensorBoard
from fnlearn.errors import FnlearnError
from fnlearn.loop import fit
from fnlearn.runs import build as fbuild
from fnlearn.runs import resume as fresume
from fnlearn.runs.plans import Done, Plan, build_all, plan_runs, say
from fnlearn.runs.replica_runs import replica_groups, train_replicas
from fnlearn.runs.rundir import Claim, check_resumable, output_directory, write_config
from fnlearn.runs.summary import exit_status, summary_line, write_run
from fnlearn.train import TrainState

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


def _fit_run(built, run_dir: Path, *, resume: bool, quiet: bool):
    """``(state, history, early stopping)`` of one run trained (or resumed) in ``run_dir``."""
    config = built.config
    t = config.training
    early = fbuild.early_stopping(config)
    printer = None if quiet or config.logging.progress else _epoch_printer(t.epochs)
    writes = config.logging.tensorboard and distributed.is_leader()  # process 0 writes the run directory
    board = TensorBoard(run_dir / "tensorboard") if writes else None
    splits = built.splits
    state = TrainState.create(built.model, built.optimizer, jax.random.key(t.seeds[0]))
    state, history = fit(
        state,
        (splits.train.x, splits.train.y),
        **fbuild.fit_kwargs(built),
        callbacks=[cb for cb in (early, printer, board) if cb is not None],
        run_dir=run_dir,
        log_every=config.logging.every or None,
        on_nonfinite="skip" if config.optimizer.skip_nonfinite else "stop",
        log_norms=config.logging.norms,
        devices=fbuild.fit_devices(t),
        checkpoint_every=t.checkpoint.every or None,
        keep_checkpoints=t.checkpoint.keep,
        resume=resume,
        config=fconfig.to_dict(config),
    )
    return state, history, early


def _train_sequential(claim: Claim, plan: Plan, *, resume: bool, quiet: bool) -> Done:
    """Train (or resume) one run in its locked directory; a divergence is recorded, not raised."""
    run_dir, built, _ = plan
    claim.lock(run_dir)
    decision = fresume.decide(run_dir, built) if resume else fresume.Decision("fresh")
    if decision.action == "skip":
        say(quiet, f"{run_dir}: already finished, skipped")
        return Done(run_dir, decision.summary)
    if resume and decision.action == "fresh":
        say(quiet, f"{run_dir}: no checkpoint yet, starting from the beginning")
    if claim.writer:
        write_config(run_dir, built)
    say(quiet, f"{'resuming' if decision.action == 'resume' else 'training'} {run_dir}")
    start = time.perf_counter()
    try:
        state, history, early = _fit_run(built, run_dir, resume=decision.action == "resume", quiet=quiet)
    except NonFiniteError as error:
        summary = write_run(plan, None, None, start, error=str(error))
    else:
        extra = {
            "stopped_early": bool(early is not None and early.stopped_epoch is not None),
            "best_epoch": None if early is None else early.best_epoch,
        }
        summary = write_run(plan, state, history, start, extra=extra)
    say(quiet, summary_line(run_dir, summary))
    return Done(run_dir, summary)


# ------------------------------------------------------------------------------------------------


def run_all(claim: Claim, plans: list[Plan], *, resume: bool, quiet: bool) -> list[Done]:
    """Train every (built) plan, each in its locked run directory; see the module docstring."""
    done = []
    groups = replica_groups(plans)
    if distributed.several() and any(len(group) > 1 for group in groups):
        raise FnlearnError(
            "several processes train one run at a time, over all their devices: set training.replicas = false."
        )
    for number, group in enumerate(groups, 1):
        if len(groups) > 1:  # where a sweep or a multi-seed run is
            say(quiet, f"[{number}/{len(groups)}] {', '.join(dict.fromkeys(plan.label for plan in group))}")
        with _cleanup_on_error(claim, [plan.run_dir for plan in group], resume):
            finished = train_replicas(claim, group, resume=resume, quiet=quiet) if len(group) > 1 else None
            if finished is None:  # one run, or a resume that goes run by run
                finished = [_train_sequential(claim, plan, resume=resume, quiet=quiet) for plan in group]
        for run in finished:
            if run.summary.get("status") == "diverged" and claim.writer:
                print(f"fnlearn: {run.run_dir}: {run.summary['error']}{DIVERGED_HINT}", file=sys.stderr)
        done += finished
    return done


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
            configs.append(fconfig.load(path, overrides, paths_from=Path.cwd()))  # as it was made
        except fconfig.ConfigFileError:
            raise  # its message names the file already
        except FnlearnError as error:
            raise FnlearnError(f"{path}: {error}") from None
    seeds = tuple(s for c in configs for s in c.training.seeds)
    first = configs[0]
    return dataclasses.replace(first, training=dataclasses.replace(first.training, seeds=seeds))


def _claimed_output(claim: Claim, out_arg: str | None, default: Path, resume: bool) -> Path:
    """``output_directory``, chosen and locked by process 0 alone when several processes train
    together (``fnlearn.distributed``); the others are told which it is."""
    if not distributed.several():
        return output_directory(claim, out_arg, default, resume)
    chosen = None
    try:
        if claim.writer:
            chosen = output_directory(claim, out_arg, default, resume)
    finally:
        shared = distributed.broadcast_text(None if chosen is None else str(chosen))
    if shared is None:
        raise FnlearnError("process 0 could not claim the run directory; its error says why.")
    claim.lock(Path(shared))
    return Path(shared)


def run_command(
    out_arg: str | None, default: Path, plans_for, *, resume: bool, quiet: bool, announce=None, claimed=None
) -> list[Done]:
    """Claim the output directory (``--out``, else ``default`` or the first free ``default-N``),
    build every plan ``plans_for(out)``, train them. A command that fails leaves behind only what
    trained: what it made for nothing is removed."""
    with Claim(writer=distributed.is_leader() if distributed.several() else True) as claim:
        out = _claimed_output(claim, out_arg, default, resume)
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
