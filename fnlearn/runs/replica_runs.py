"""The seeds of one configuration trained together as vmapped replicas (``fl.replicas``).

``replica_groups`` picks the runs that can train this way; ``train_replicas`` trains a group as one
program, then writes every seed's run directory as a sequential run would: config.toml,
metrics.jsonl, a final checkpoint (unless ``checkpoint.every = 0``), and through
``summary.write_run`` summary.json and plots. A seed that diverges is frozen and recorded as
diverged while the others go on.
"""

from __future__ import annotations

import json
import time

from fnlearn import checkpoint, replicas, report
from fnlearn.atomic import write_text
from fnlearn.callbacks import TensorBoard
from fnlearn.config import to_dict
from fnlearn.runs.build import early_stopping, fit_kwargs
from fnlearn.runs.plans import Done, Plan, say
from fnlearn.runs.rundir import Claim, write_config
from fnlearn.runs.summary import summary_line, write_run

__all__ = ["replica_groups", "train_replicas"]

DIVERGED = "training diverged: a loss or gradient turned non-finite; the replica was frozen at its last finite state."
BOOKKEEPING = ("replica", "seed", "active", "diverged")  # fields of replicas.fit's records, not metrics


def _eligible(config, resume: bool) -> bool:
    """Nothing needs the sequential path: one device, per-epoch logging, no update skipping, not a
    resume, and no accumulation, moving average or bfloat16 (``fl.replicas.fit`` has none of these)."""
    return (
        not resume
        and config.training.replicas
        and config.training.devices == 1
        and not config.logging.every
        and not config.optimizer.skip_nonfinite
        and config.training.accumulate == 1
        and not config.training.ema
        and config.training.precision == "f32"
    )


def _same_group(first: Plan, plan: Plan) -> bool:
    """Seeds of one configuration: same label, same parent folder, both ``seed_S`` folders."""
    return (
        first.label == plan.label
        and first.run_dir.parent == plan.run_dir.parent
        and first.run_dir.name.startswith("seed_")
        and plan.run_dir.name.startswith("seed_")
    )


def replica_groups(plans: list[Plan], resume: bool) -> list[list[Plan]]:
    """Consecutive runs that differ only in their seed form one group to train as vmapped replicas,
    where ``training.replicas`` allows it (see ``_eligible``); every other run is a group of one."""
    groups: list[list[Plan]] = []
    for plan in plans:
        if _eligible(plan.config.config, resume) and groups and _same_group(groups[-1][0], plan):
            groups[-1].append(plan)
        else:
            groups.append([plan])
    return groups


def train_replicas(claim: Claim, group: list[Plan], *, quiet: bool) -> list[Done]:
    """Train the seeds of one configuration as one vmapped program, then write each seed's run."""
    start = time.perf_counter()
    built = group[0].config
    for plan in group:
        claim.lock(plan.run_dir)
        write_config(plan.run_dir, plan.config)
    say(quiet, f"training {len(group)} seeds as vmapped replicas: {', '.join(str(p.run_dir) for p in group)}")
    early = early_stopping(built.config)
    splits = built.splits
    states, info = replicas.create(
        built.model, built.optimizer, [p.config.config.training.seeds[0] for p in group]
    )
    printer = (
        None
        if quiet or built.config.logging.progress
        else _replica_printer(built.config.training.epochs, len(group))
    )
    states, history = replicas.fit(
        states,
        (splits.train.x, splits.train.y),
        **fit_kwargs(built),
        early_stopping=early,
        info=info,
        on_epoch=printer,
    )
    done = []
    for i, plan in enumerate(group):
        mine = [r for r in history if r["replica"] == i]
        rows = [
            {k: v for k, v in r.items() if k not in BOOKKEEPING}
            for r in mine
            if r.get("train_loss") is not None
        ]  # the epochs it trained
        diverged = any(r["diverged"] for r in mine)
        summary = _write_replica(plan, replicas.replica(states, i), rows, early, len(group), start, diverged)
        say(quiet, summary_line(plan.run_dir, summary))
        done.append(Done(plan.run_dir, summary))
    return done


def _replica_printer(total_epochs: int, seeds: int):
    """``on_epoch`` of ``replicas.fit`` printing about ten lines: each metric's mean ± sample std
    over the seeds that trained that epoch."""
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
        print(f"  epoch {epoch:>4}  {'  '.join(parts)}  ({len(trained)}/{seeds} seeds)", flush=True)

    return show


def _write_replica(
    plan: Plan, state, rows: list[dict], early, count: int, start: float, diverged: bool
) -> dict:
    """One seed's metrics.jsonl, TensorBoard events and final checkpoint, then ``write_run``."""
    run_dir, built, _ = plan
    config = built.config
    write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    if config.logging.tensorboard:
        TensorBoard.write_history(run_dir / "tensorboard", rows)
    if diverged:
        return write_run(plan, state, rows, start, error=DIVERGED)
    if config.training.checkpoint.every:
        checkpoint.save(
            run_dir / "checkpoints" / "last", state, extra={"history": rows, "config": to_dict(config)}
        )
    return write_run(plan, state, rows, start, extra=_early_result(early, rows, config) | {"replicas": count})


def _early_result(early, rows: list[dict], config) -> dict:
    """``best_epoch`` and ``stopped_early`` of a replica under early stopping, from its history."""
    if early is None or not rows:
        return {}
    best = (min if early.mode == "min" else max)(rows, key=lambda r: r.get(early.monitor, float("nan")))
    return {
        "best_epoch": best["epoch"],
        "stopped_early": rows[-1]["epoch"] < (config.training.epochs or rows[-1]["epoch"]),
    }
