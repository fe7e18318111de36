"""A typed run: ``Plan`` (one run to make) and ``Done`` (one run made).

A command turns its config into plans (one per seed; a sweep's configurations each into their own
folder), builds them all before anything is written, and gets one ``Done`` per plan back.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, NamedTuple

from fnlearn.config import SweepConfig
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
