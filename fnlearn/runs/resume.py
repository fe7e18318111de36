"""What ``--resume`` checks before it continues a run: it trusts nothing it has not checked.

1. The config to resume with (the CONFIG given, or ``OUT/config.toml``, with ``--set`` applied)
   equals both the run's ``config.toml`` and the config its newest checkpoint was trained with,
   except for the run's length and its logging (``RESUMABLE``). A hand-edited ``config.toml`` is
   refused with the key named; ``training.ema`` turned on or off against the checkpoint has a
   line of its own (the checkpoint holds the moving average, or does not).
2. A length below what the run has already trained is refused.
3. A schedule that ends exactly where the old run ended (its length was filled in from the old
   run length) cannot be lengthened: the extra steps would train at its final rate.
4. A run whose ``summary.json`` says it finished at (or past) the length asked for is skipped.

Nothing is written here: the caller rewrites ``config.toml`` only after the resume is accepted.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import NamedTuple

from fnlearn import checkpoint
from fnlearn.config import to_dict
from fnlearn.errors import FnlearnError
from fnlearn.rules import flat_config

__all__ = ["RESUMABLE", "Decision", "decide", "read_summary"]

RESUMABLE = ("training.epochs", "training.steps", "logging.")
"""Keys a resumed run may change: train longer (also a finished run), log differently."""

LENGTH_OPTIONS = ("decay_steps", "transition_steps")


class Decision(NamedTuple):
    """``action``: "skip" (finished), "resume" (from checkpoint ``step``) or "fresh" (no checkpoint)."""

    action: str
    step: int = 0
    summary: dict | None = None


def read_summary(run_dir: Path) -> dict | None:
    """The run's summary.json, or None when it is missing or not a JSON object."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def _check_same(saved: dict, given: dict, source: str) -> None:
    saved_flat, given_flat = flat_config(saved), flat_config(given)
    for key in sorted(set(saved_flat) | set(given_flat)):
        if saved_flat.get(key) != given_flat.get(key) and not key.startswith(RESUMABLE):
            raise FnlearnError(
                f"--resume: {key} = {given_flat.get(key, '(unset)')} differs from {source} "
                f"({saved_flat.get(key, '(unset)')}). Resume with the config the run started with, or train into a new --out."
            )


def _check_ema(saved: dict, given: dict, step: int) -> None:
    """``training.ema`` turned on or off against the checkpoint: one line saying so (the moving
    average is part of the state a checkpoint holds, so it cannot start or stop mid-run)."""
    before = float(saved.get("training", {}).get("ema") or 0.0)
    now = float(given["training"]["ema"] or 0.0)
    if now and not before:
        raise FnlearnError(
            f"--resume: training.ema = {now:g}, but the checkpoint (step {step}) was written without "
            "training.ema; resume without it, or start a new run with --out."
        )
    if before and not now:
        raise FnlearnError(
            f"--resume: the checkpoint (step {step}) keeps a moving average, training.ema = {before:g}; "
            "resume with it, or start a new run with --out."
        )


def _config_toml(run_dir: Path) -> dict | None:
    path = run_dir / "config.toml"
    if not path.is_file():
        return None
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise FnlearnError(
            f"--resume: {path} is damaged ({error}). Restore it, or resume with the CONFIG the run started with."
        ) from None


def _total_steps(training: dict, steps_per_epoch: int) -> int:
    return int(training.get("steps") or 0) or int(training.get("epochs") or 0) * steps_per_epoch


def _check_length(saved: dict, built, trained_step: int) -> None:
    """Refuse a length below what is trained, or past a schedule fitted to the old length."""
    old_total = _total_steps(saved.get("training", {}), built.steps_per_epoch)
    new_total = built.total_steps
    t = built.config.training
    length = f"training.{'steps' if t.steps else 'epochs'} = {t.steps or t.epochs}"
    if new_total < trained_step:
        trained = f"{trained_step} steps" if t.steps else f"{trained_step // built.steps_per_epoch} epochs"
        raise FnlearnError(
            f"--resume: {length} is below the {trained} this run has already trained. "
            "Ask for at least that length, or train into a new --out."
        )
    schedule = saved.get("optimizer", {}).get("schedule", {})
    options = schedule.get("options", {})
    warmup = int(schedule.get("warmup_steps", 0) or 0)
    for option in LENGTH_OPTIONS:
        if new_total != old_total and options.get(option) == max(1, old_total - warmup):
            raise FnlearnError(
                f"--resume with {length}: optimizer.schedule {schedule.get('name')!r} has {option} = {options[option]}, "
                f"fitted to the run's old length ({old_total} steps), so the extra steps would train at its final rate. "
                "Train a new run with the new length (another --out; its schedule then spans the whole run)."
            )


def decide(run_dir: Path, built) -> Decision:
    """Check a resume of ``run_dir`` with ``built`` (``fnlearn.runs.build.build``'s result); raise
    ``FnlearnError`` naming the key for anything that does not fit, else say what to do."""
    given = to_dict(built.config)
    on_disk = _config_toml(run_dir)
    meta = checkpoint.read_meta(run_dir / "checkpoints" / "last")
    step, extra = meta if meta is not None else (0, {})
    _check_length(extra.get("config") or on_disk or given, built, step)
    if extra.get("config"):
        _check_ema(extra["config"], given, step)
    if on_disk is not None:
        _check_same(on_disk, given, f"the run's {run_dir / 'config.toml'}")
    if extra.get("config"):
        _check_same(extra["config"], given, f"the value its checkpoint (step {step}) was trained with")
    summary = read_summary(run_dir)
    finished = summary is not None and summary.get("status") in ("finished", "diverged")
    if finished and (
        summary.get("status") == "diverged"
        or summary.get("stopped_early")
        or int(summary.get("steps") or 0) >= built.total_steps
    ):
        return Decision("skip", step, summary)
    return Decision("resume" if meta is not None else "fresh", step)
