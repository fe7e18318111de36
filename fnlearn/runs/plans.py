"""A typed run: ``Plan`` (one run to make) and ``Done`` (one run made); which runs share a program.

A command turns its config into plans (one per seed; a sweep's configurations each into their own
folder), builds them all before anything is written, and gets one ``Done`` per plan back.

``group_key`` is the one rule for which runs train together as one vmapped ``fl.replicas``
program: runs whose configs differ only in per-replica values (``replica_values``: the seed, the
learning rate and a schedule's rate, weight decay, dropout, the optimizer's numeric options) have
equal keys. ``sweep_part`` slices a sweep's plans for ``fnlearn sweep --part i/N`` by the same keys.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, NamedTuple

from fnlearn.config import SweepConfig, to_dict
from fnlearn.runs import build as fbuild


class Plan(NamedTuple):
    """One run to make: ``run_dir``, its config (one seed; a ``Built`` once built), its label."""

    run_dir: Path
    config: Any
    label: str


class Done(NamedTuple):
    """One run made: its directory and what its summary.json holds."""

    run_dir: Path
    summary: dict


def seed_config(config, seed: int):
    """``config`` with the one seed ``seed`` and no sweep left to expand."""
    training = dataclasses.replace(config.training, seeds=(seed,))
    return dataclasses.replace(config, training=training, sweep=SweepConfig())


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


def say(quiet: bool, text: str) -> None:
    """A progress line on stdout, unless ``--quiet``."""
    if not quiet:
        print(text, flush=True)


# ------------------------------------------------------------------------------------------------
# which runs share one compiled program

RATE_OPTIONS = ("peak_value", "init_value", "value")  # a schedule's rate (build.resolve_schedule)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def trains_alone(config) -> bool:
    """What only the sequential path does: several devices, logging between epochs, update
    skipping, accumulation, a moving average, bfloat16 (``fl.replicas.fit`` has none of these),
    or ``training.replicas = false``."""
    t = config.training
    return (
        not t.replicas
        or t.devices != 1
        or bool(config.logging.every)
        or bool(config.optimizer.skip_nonfinite)
        or t.accumulate != 1
        or bool(t.ema)
        or t.precision != "f32"
    )


def replica_values(config) -> dict:
    """The values of ``config`` that one replica of a vmapped program may hold on its own:
    ``learning_rate``, ``weight_decay``, ``dropout``, ``option_NAME`` (numeric optimizer options)
    and ``schedule_NAME`` (the schedule's rate). The seed is the replica's own too."""
    optimizer = config.optimizer
    values = {"learning_rate": optimizer.learning_rate, "weight_decay": optimizer.weight_decay}
    if getattr(config.model, "dropout", None):
        values["dropout"] = config.model.dropout
    values |= {f"option_{k}": v for k, v in optimizer.options.items() if _is_number(v)}
    values |= {
        f"schedule_{k}": v
        for k, v in optimizer.schedule.options.items()
        if k in RATE_OPTIONS and _is_number(v)
    }
    return values


def group_key(config) -> str | None:
    """Runs with equal keys train as one vmapped program; None: this run trains alone.

    The key is the config without its per-replica values (``replica_values`` and the seeds), of
    which it keeps only what changes the program's structure: whether weight decay and dropout are
    on, and which optimizer options are set."""
    if trains_alone(config):
        return None
    raw = to_dict(config)
    del raw["training"]["seeds"]
    optimizer = raw["optimizer"]
    del optimizer["learning_rate"]
    optimizer["weight_decay"] = optimizer["weight_decay"] > 0
    if "dropout" in raw["model"]:
        raw["model"]["dropout"] = raw["model"]["dropout"] > 0
    optimizer["options"] = {k: "number" if _is_number(v) else v for k, v in optimizer["options"].items()}
    schedule = optimizer["schedule"]["options"]
    schedule.update({k: "number" for k, v in schedule.items() if k in RATE_OPTIONS and _is_number(v)})
    return json.dumps(raw, sort_keys=True, default=str)


def keyed_groups(plans: list[Plan], key) -> list[list[Plan]]:
    """``plans`` grouped by ``key(plan)`` (None: a group of one), in order of first appearance."""
    groups: dict = {}
    for number, plan in enumerate(plans):
        k = key(plan)
        groups.setdefault(("alone", number) if k is None else k, []).append(plan)
    return list(groups.values())


def sweep_part(plans: list[Plan], part: int, parts: int) -> list[Plan]:
    """The ``part``-th (1-based) of ``parts`` deterministic slices of ``plans``: every plan is in
    exactly one part. Whole groups (``group_key``) go to the part with the fewest runs so far,
    largest first; with fewer groups than parts, the largest pieces are halved until there are as
    many pieces as parts."""
    pieces = keyed_groups(plans, lambda p: group_key(p.config))
    while len(pieces) < parts and max(len(p) for p in pieces) > 1:
        i = max(range(len(pieces)), key=lambda j: len(pieces[j]))
        half = (len(pieces[i]) + 1) // 2
        pieces[i : i + 1] = [pieces[i][:half], pieces[i][half:]]
    loads, mine = [0] * parts, set()
    for number in sorted(range(len(pieces)), key=lambda j: (-len(pieces[j]), j)):
        target = min(range(parts), key=lambda k: (loads[k], k))
        loads[target] += len(pieces[number])
        if target == part - 1:
            mine.update(id(plan) for plan in pieces[number])
    return [plan for plan in plans if id(plan) in mine]
