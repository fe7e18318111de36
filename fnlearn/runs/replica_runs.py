"""Runs that differ only in per-replica values, trained together as one vmapped ``fl.replicas`` program.

``replica_groups`` groups the plans by ``plans.group_key`` (seeds, learning rates, weight decays,
dropout rates, numeric optimizer options, a schedule's rate); ``train_replicas`` trains a group as
one program. The values that differ between its runs become per-replica hyperparameters: the whole
optimizer chain (``build.build_optimizer``) is wrapped in ``fl.optim.inject_hyperparams``, so the
same code runs with each replica's own numbers, and dropout rates go into the model state.

Every run still gets the directory the sequential path writes: config.toml, metrics.jsonl (rewritten
after every epoch), checkpoints in the sequential format every ``checkpoint.every`` epochs and at
the end (the optimizer state without the injection wrapper, so ``fnlearn train --resume`` and
``fl.runs.load`` read them), and through ``summary.write_run`` summary.json and plots. ``--resume``
restores every run's newest checkpoint, stacks them and continues the program when they all stopped
at the same step; otherwise (and under early stopping, whose per-replica state is not checkpointed
mid-run) the caller resumes the runs one by one. A replica that diverges is frozen and recorded as
diverged while the others go on.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import time

import jax
import jax.numpy as jnp

from fnlearn import replicas, report
from fnlearn.atomic import write_text
from fnlearn.callbacks import TensorBoard
from fnlearn.checkpoint import RunCheckpoints
from fnlearn.config import to_dict
from fnlearn.optim.hyperparams import InjectHyperparamsState, inject_hyperparams
from fnlearn.runs import resume as fresume
from fnlearn.runs.build import build_optimizer, early_stopping, fit_kwargs
from fnlearn.runs.plans import Done, Plan, group_key, keyed_groups, replica_values, say
from fnlearn.runs.rundir import Claim, write_config
from fnlearn.runs.summary import summary_line, write_run
from fnlearn.session import History

__all__ = ["replica_groups", "train_replicas"]

DIVERGED = "training diverged: a loss or gradient turned non-finite; the replica was frozen at its last finite state."
BOOKKEEPING = ("replica", "seed", "active", "diverged")  # fields of replicas.fit's records, not metrics


def replica_groups(plans: list[Plan]) -> list[list[Plan]]:
    """The (built) plans grouped by ``plans.group_key``, in order of first appearance; a run that
    trains alone is a group of one."""
    return keyed_groups(plans, lambda plan: group_key(plan.config.config))


def group_hyperparams(group: list[Plan]) -> dict[str, list]:
    """``replica_values`` that differ between the group's runs: name -> one value per run."""
    values = [replica_values(plan.config.config) for plan in group]
    return {name: [v[name] for v in values] for name in values[0] if len({v[name] for v in values}) > 1}


def group_optimizer(group: list[Plan], hyperparams: dict):
    """The first run's optimizer, with the optimizer values in ``hyperparams`` injected (one per
    replica, set by ``replicas.create``): the same ``build_optimizer`` chain, rebuilt from the
    values in its state at every update."""
    names = [name for name in hyperparams if name != "dropout"]
    built = group[0].config
    if not names:
        return built.optimizer
    base = built.config.optimizer

    def with_values(**values):
        options = {k.removeprefix("option_"): v for k, v in values.items() if k.startswith("option_")}
        rate = {k.removeprefix("schedule_"): v for k, v in values.items() if k.startswith("schedule_")}
        schedule = dataclasses.replace(base.schedule, options={**base.schedule.options, **rate})
        return build_optimizer(
            dataclasses.replace(
                base,
                learning_rate=values.get("learning_rate", base.learning_rate),
                weight_decay=values.get("weight_decay", base.weight_decay),
                options={**base.options, **options},
                schedule=schedule,
            )
        )

    # inject_hyperparams reads the names from the signature: one keyword per injected value
    with_values.__signature__ = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY) for name in names]
    )
    return inject_hyperparams(with_values)(**{name: hyperparams[name][0] for name in names})


def _unwrapped(state):
    """A replica's state as the sequential path has it: the optimizer state without the injection."""
    opt = state.opt_state
    return state.replace(opt_state=opt.inner_state) if isinstance(opt, InjectHyperparamsState) else state


def _rewrapped(restored, like):
    """``restored`` (a sequential state) with ``like``'s injected hyperparameters around its optimizer state."""
    opt = like.opt_state
    if not isinstance(opt, InjectHyperparamsState):
        return restored
    return restored.replace(opt_state=opt._replace(inner_state=restored.opt_state))


def _resume_step(group: list[Plan]) -> int | None:
    """0: train the group from the start; k: every run has its newest checkpoint at step k (and
    no early stopping): continue the program from there; None: resume the runs one by one."""
    decisions = [fresume.decide(plan.run_dir, plan.config) for plan in group]
    if all(d.action == "fresh" for d in decisions):
        return 0
    steps = {d.step for d in decisions}
    resumable = all(d.action == "resume" for d in decisions) and len(steps) == 1
    return steps.pop() if resumable and early_stopping(group[0].config.config) is None else None


class _GroupRuns:
    """The per-run side of one program: rows, metrics.jsonl and checkpoints of every run."""

    def __init__(self, group: list[Plan], hidden: set):
        self.group, self.hidden = group, hidden  # hidden: record fields that are not metrics
        config = group[0].config.config
        self.every = config.training.checkpoint.every
        self.end_only = early_stopping(config) is not None  # its state is not in a checkpoint
        keep = config.training.checkpoint.keep
        self.checkpoints = [RunCheckpoints(plan.run_dir / "checkpoints", keep=keep) for plan in group]
        self.rows = [History() for _ in group]
        self.diverged = [False] * len(group)
        self.driver = {
            "driver": "replicas",
            "reason": f"one vmapped program for {len(group)} runs (fl.replicas)",
            "loop_s_per_step": None,
            "scan_s_per_step": None,
        }
        self.elapsed = 0.0
        for rows in self.rows:
            rows.driver = self.driver

    def restore(self, states):
        """The stacked states from every run's newest checkpoint; their histories into ``rows``."""
        restored = []
        for i, keeper in enumerate(self.checkpoints):
            like = replicas.replica(states, i)
            state, extra = keeper.restore_latest(_unwrapped(like))
            restored.append(_rewrapped(state, like))
            self.rows[i].extend(extra["history"])
            self.elapsed = max(self.elapsed, float(extra.get("elapsed", 0.0)))
        return jax.tree.map(lambda *leaves: jnp.stack(leaves), *restored)

    def on_epoch(self, records: list[dict]) -> None:
        for i, record in enumerate(records):
            self.diverged[i] |= record["diverged"]
            if record.get("train_loss") is not None:  # the epochs it trained
                self.rows[i].append({k: v for k, v in record.items() if k not in self.hidden})

    def after_epoch(self, states, epoch: int, step: int, last: bool) -> None:
        """Every run's metrics.jsonl so far; its checkpoint every ``checkpoint.every`` epochs and last."""
        for i, plan in enumerate(self.group):
            write_text(plan.run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in self.rows[i]))
        if self.every and not self.end_only and (epoch % self.every == 0 or last):
            for i in range(len(self.group)):
                if not self.diverged[i] and self.rows[i] and self.rows[i][-1]["step"] == step:
                    self.save(i, replicas.replica(states, i))

    def save(self, i: int, state) -> None:
        config = self.group[i].config.config
        extra = {
            "history": self.rows[i],
            "elapsed": self.rows[i][-1]["time"] if self.rows[i] else 0.0,
            "config": to_dict(config),
            "callbacks": {},
            "driver": self.driver,
        }
        self.checkpoints[i].save(_unwrapped(state), int(state.step), extra)

    def close(self) -> None:
        for keeper in self.checkpoints:
            keeper.close()


def train_replicas(claim: Claim, group: list[Plan], *, resume: bool, quiet: bool) -> list[Done] | None:
    """Train the group as one vmapped program, then write each run's directory; None when a
    resume has to go run by run (see ``_resume_step``)."""
    start = time.perf_counter()
    for plan in group:
        claim.lock(plan.run_dir)
    first = _resume_step(group) if resume else 0
    if first is None:
        return None
    for plan in group:
        write_config(plan.run_dir, plan.config)
    built = group[0].config
    hyperparams = group_hyperparams(group)
    states, info = replicas.create(
        built.model,
        group_optimizer(group, hyperparams),
        [p.config.config.training.seeds[0] for p in group],
        hyperparams=hyperparams,
    )
    runs = _GroupRuns(group, set(BOOKKEEPING) | set(hyperparams))
    if first:
        states = runs.restore(states)
    action = f"resuming from step {first}" if first else "training"
    say(
        quiet,
        f"{action} {len(group)} runs as vmapped replicas (one program): {', '.join(str(p.run_dir) for p in group)}",
    )
    printer = (
        None
        if quiet or built.config.logging.progress
        else _replica_printer(built.config.training.epochs, len(group))
    )

    def on_epoch(records):
        runs.on_epoch(records)
        if printer is not None:
            printer(records)

    early = early_stopping(built.config)
    try:
        states, history = replicas.fit(
            states,
            (built.splits.train.x, built.splits.train.y),
            **fit_kwargs(built),
            early_stopping=early,
            info=info,
            on_epoch=on_epoch,
            log_norms=built.config.logging.norms,
            initial_step=first,
            initial_time=runs.elapsed,
            after_epoch=runs.after_epoch,
        )
        steps = history.driver
        runs.driver.update(  # shared by every run's history: their summaries say how the steps ran
            reason=f"{runs.driver['reason']}; its steps: {steps['driver']} ({steps['reason']})",
            loop_s_per_step=steps.get("loop_s_per_step"),
            scan_s_per_step=steps.get("scan_s_per_step"),
        )
        return [_finish(runs, i, states, history, early, start, quiet) for i in range(len(group))]
    finally:
        runs.close()


def _finish(runs: _GroupRuns, i: int, states, history, early, start: float, quiet: bool) -> Done:
    """Run ``i``'s TensorBoard events, its end checkpoint under early stopping, then ``write_run``."""
    plan, rows, state = runs.group[i], runs.rows[i], replicas.replica(states, i)
    config = plan.config.config
    if config.logging.tensorboard:
        TensorBoard.write_history(plan.run_dir / "tensorboard", rows)
    if runs.diverged[i]:
        summary = write_run(plan, state, rows, start, error=DIVERGED)
    else:
        if runs.end_only and runs.every:
            runs.save(i, state)
        extra = {
            "stopped_early": bool(history.stopped_early[i]),
            "best_epoch": history.best_epoch[i],
        }
        summary = write_run(plan, state, rows, start, extra=extra)
    say(quiet, summary_line(plan.run_dir, summary))
    return Done(plan.run_dir, summary)


def _replica_printer(total_epochs: int, seeds: int):
    """``on_epoch`` of ``replicas.fit`` printing about ten lines: each metric's mean ± sample std
    over the runs that trained that epoch."""
    every = max(1, total_epochs // 10)

    def show(records):
        epoch = records[0]["epoch"]
        if epoch % every and epoch != total_epochs:
            return
        trained = [r for r in records if r.get("train_loss") is not None]
        keys = [k for k in trained[0] if k.startswith(("train_", "val_")) and not report.is_bookkeeping(k)]
        parts = []
        for key in keys:
            values = [r[key] for r in trained if isinstance(r.get(key), float)]
            if values:
                mean, std = report.mean_std(values)
                parts.append(f"{key} {mean:.4g}" + (f" ± {std:.2g}" if std is not None else ""))
        print(f"  epoch {epoch:>4}  {'  '.join(parts)}  ({len(trained)}/{seeds} runs)", flush=True)

    return show
