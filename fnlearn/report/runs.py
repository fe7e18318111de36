"""Run directories read back: their config, metrics and summary; final and best metric values.

A run directory is read without fnlearn's model code, from three plain files:
``config.toml`` (the resolved config), ``metrics.jsonl`` (one JSON object per logging point, keys
such as ``step``, ``epoch``, ``train_loss``, ``val_accuracy``, ``learning_rate``) and
``summary.json`` (written when the run finished; absent for an interrupted run).

A damaged run directory (a file that cannot be read, is not UTF-8, not valid TOML/JSON, or not the
JSON object it should be; a ``metrics.jsonl`` line that is not a JSON object, bar a torn last line)
raises one :class:`~fnlearn.errors.FnlearnError` naming the file, or, for runs ``find_runs`` finds
below a folder, is reported through its ``on_damaged`` and left out. NaN, infinite and out-of-range
numbers are not metric values (they are ignored).
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from fnlearn.errors import FnlearnError
from fnlearn.rules import higher_is_better

BOOKKEEPING = (
    "step",
    "epoch",
    "time",
    "replica",
    "learning_rate",
    "grad_norm",
    "update_norm",
    "skipped_steps",
    "examples_per_second",
)
"""metrics.jsonl keys that are not model metrics (no 'best' value, not in the tables), also with a
``train_``/``val_`` prefix (``train_learning_rate``)."""


def is_bookkeeping(key: str) -> bool:
    """True for step counters, times, learning rates and norms: logged, but not a model metric."""
    base = key.split("_", 1)[1] if key.startswith(("train_", "val_")) else key
    return key in BOOKKEEPING or base in BOOKKEEPING


class Run(NamedTuple):
    """One run directory's files, parsed."""

    path: Path
    config: dict
    metrics: list[dict]
    summary: dict | None


def show_path(path: str | Path) -> str:
    """A path for a one-line message: as it is, or quoted with escapes when it holds control
    characters."""
    text = str(path)
    return text if text.isprintable() else repr(text)


def _read_text(path: Path) -> str:
    """The UTF-8 text of ``path``; unreadable or undecodable: a FnlearnError naming it."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise FnlearnError(f"{show_path(path)} cannot be read: {err.strerror or err}.") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise FnlearnError(f"{show_path(path)} is not UTF-8 text (byte {err.start}).") from None


def _json(text: str):
    """``json.loads(text)``; ValueError with a short reason when it is not JSON (also for nesting
    too deep to parse and integers with thousands of digits)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except ValueError:
        raise ValueError("a number too long to read") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None


def read_metrics(path: str | Path) -> list[dict]:
    """The objects of a ``metrics.jsonl`` file ([] when there is none); a torn last line (an
    interrupted write) is skipped, any other line that is not a JSON object is a FnlearnError."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return []
    rows = []
    lines = _read_text(path).split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = _json(line)
        except ValueError:
            if number == len(lines):
                continue
            row = None
        if not isinstance(row, dict):
            raise FnlearnError(f"{show_path(path)}: line {number} is not a JSON object: {line[:80]!r}.")
        rows.append(row)
    return rows


def _read_summary(path: Path) -> dict | None:
    """summary.json as a dict (None when there is none), its fields the report reads checked."""
    if not path.exists() and not path.is_symlink():
        return None
    text = _read_text(path)
    try:
        summary = _json(text)
    except ValueError as err:
        raise FnlearnError(f"{show_path(path)} is not valid JSON ({err}).") from None
    if not isinstance(summary, dict):
        raise FnlearnError(f"{show_path(path)} is not a JSON object (it holds {type(summary).__name__}).")
    for key, types in (("test", dict), ("label", str), ("status", str)):
        if summary.get(key) is not None and not isinstance(summary[key], types):
            raise FnlearnError(
                f"{show_path(path)}: {key!r} is {type(summary[key]).__name__}, expected "
                f"{'an object' if types is dict else 'a string'} or null."
            )
    return summary


def read_run(path: str | Path) -> Run:
    """Read the run directory ``path``: it must hold ``config.toml``."""
    path = Path(path)
    config_path = path / "config.toml"
    if not config_path.is_file():
        raise FnlearnError(
            f"{str(path)!r} is not a run directory: it has no config.toml. Expected a directory made by "
            "`fnlearn train` or `fnlearn sweep`."
        )
    text = _read_text(config_path)
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise FnlearnError(f"{show_path(config_path)}: not valid TOML ({err}).") from None
    except (ValueError, RecursionError):  # int() of a huge literal; arrays nested thousands deep
        raise FnlearnError(
            f"{show_path(config_path)}: not readable TOML (a number too long or arrays nested too deeply)."
        ) from None
    summary = _read_summary(path / "summary.json")
    return Run(path, config, read_metrics(path / "metrics.jsonl"), summary)


def find_runs(paths: Iterable[str | Path], on_damaged: Callable[[str], None] | None = None) -> list[Run]:
    """The runs at ``paths``; a directory without config.toml stands for the run directories
    below it (a sweep's or a multi-seed run's output), each read once.

    A damaged run directory named in ``paths`` raises its FnlearnError. One found below a folder
    does too, unless ``on_damaged`` is given: then it is called with one line naming the run and the
    problem, and the run is left out (an error when that leaves none).
    """
    paths = list(paths)
    runs, seen = [], set()
    for given in paths:
        path = Path(given)
        if (path / "config.toml").is_file():
            found, named = [path], True
        else:
            found, named = _runs_below(path), False
        for run_dir in found:
            if os.path.realpath(run_dir) in seen:
                continue
            seen.add(os.path.realpath(run_dir))
            try:
                runs.append(read_run(run_dir))
            except FnlearnError as err:
                if named or on_damaged is None:
                    raise
                on_damaged(f"skipped {show_path(run_dir)}: {err}")
    if not runs:
        raise FnlearnError(
            f"no readable run directory in {', '.join(show_path(p) for p in paths)}: every one found "
            "is damaged (each is named above)."
        )
    return runs


def _runs_below(path: Path) -> list[Path]:
    """The run directories below the folder ``path`` (those holding a config.toml file)."""
    if not path.is_dir():
        problem = "is not a directory" if path.exists() else "does not exist"
        raise FnlearnError(f"{str(path)!r} {problem}. Expected a run directory (or a folder of them).")
    found = sorted(p.parent for p in path.rglob("config.toml") if p.is_file())
    if not found:
        raise FnlearnError(f"{str(path)!r} holds no run directories (no config.toml below it).")
    return found


# ------------------------------------------------------------------------------------------------
# Final and best values


def is_number(value) -> bool:
    """A finite int or float (not a bool, not an int beyond the float range)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def metric_keys(rows: Sequence[Mapping]) -> list[str]:
    keys = []
    for row in rows:
        keys += [k for k, v in row.items() if k not in keys and not is_bookkeeping(k) and is_number(v)]
    return keys


def final_metrics(rows: Sequence[Mapping]) -> dict[str, float]:
    """The last logged value of every metric."""
    final = {}
    for row in rows:
        final.update({k: v for k, v in row.items() if not is_bookkeeping(k) and is_number(v)})
    return final


def best_metrics(rows: Sequence[Mapping]) -> dict[str, dict]:
    """For every metric, its best value and where: ``{"val_loss": {"value", "epoch", "step"}}``."""
    best = {}
    for key in metric_keys(rows):
        points = [row for row in rows if is_number(row.get(key))]
        pick = max if higher_is_better(key) else min
        row = pick(points, key=lambda r: r[key])
        best[key] = {"value": row[key], "epoch": row.get("epoch"), "step": row.get("step")}
    return best
