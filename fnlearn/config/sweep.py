"""The runs of a sweep: every variant crossed with every grid combination, each with a safe label."""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Mapping, Sequence

from fnlearn.config.parse import _set_path, from_dict, parse_override
from fnlearn.config.schema import Config, SweepConfig
from fnlearn.config.toml import _deep_copy, to_dict
from fnlearn.config.values import MAX_NAME_BYTES, _error, _show, _slug_text, check_name
from fnlearn.errors import FnlearnError

# ------------------------------------------------------------------------------------------------
# Sweeps


MAX_SWEEP_RUNS = 10_000
"""The most runs (configurations x seeds) one sweep may make: more is a typo in a grid or --seeds."""


def expand_sweep(
    config: Config, grid: Sequence[str] = (), seeds: int | None = None
) -> list[tuple[str, Config]]:
    """The runs of a sweep: ``(label, config)`` for every variant × grid combination.

    ``grid`` adds ``"key=v1,v2"`` axes (TOML literals split at top-level commas) to
    ``config.sweep.grid``; ``seeds`` (or ``sweep.seeds``) > 0 makes every run use seeds 0..N-1.
    Every run's config is validated; their ``sweep`` sections are emptied. Each label is one safe
    folder name (:func:`is_safe_name`): a variant's ``label``, else ``key=value`` parts.
    """
    axes = {**config.sweep.grid, **_grid_axes(grid)}
    n_seeds = seeds if seeds else config.sweep.seeds
    if n_seeds is not None and (type(n_seeds) is not int or n_seeds < 0):
        raise _error("--seeds", n_seeds, "a positive number of seeds")
    variants = list(config.sweep.variants) or [{}]
    _check_sweep_size(len(variants) * math.prod(len(v) for v in axes.values()), n_seeds or 1)
    base = to_dict(config)
    base["sweep"] = to_dict(SweepConfig())
    runs, labels = [], set()
    for variant in variants:
        variant = dict(variant)
        variant_label = variant.pop("label", "") or _parts_label(variant)
        for combo in itertools.product(*axes.values()):
            settings = {**variant, **dict(zip(axes, combo))}
            raw = _deep_copy(base)
            for key, value in settings.items():
                _set_path(raw, key.split("."), value, f"sweep: {_show(key)} = {_show(value)}")
            if n_seeds:
                _set_path(raw, ["training", "seeds"], list(range(n_seeds)), f"sweep: seeds = {n_seeds}")
            run = from_dict(raw, name=config.name)
            label = _fit_label("_".join(filter(None, [variant_label, _parts_label(dict(zip(axes, combo)))])))
            check_name("sweep label", label, "a run label")
            if label in labels:
                raise FnlearnError(
                    f"sweep: two runs would share the directory {label!r}. Give the variants distinct labels."
                )
            labels.add(label)
            runs.append((label, run))
    return runs


def _grid_axes(grid: Sequence[str]) -> dict[str, list]:
    """``{"key": [values]}`` from ``--grid key=v1,v2`` texts (each value a TOML literal)."""
    axes = {}
    for text in grid:
        key, sep, values = text.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise FnlearnError(f"--grid {text!r}: expected KEY=V1,V2,... such as optimizer.name=sgd,adam.")
        axes[key.strip()] = [parse_override(f"{key.strip()}={part}")[1] for part in _split_top_level(values)]
    return axes


def _check_sweep_size(configurations: int, seeds: int) -> None:
    if configurations * seeds > MAX_SWEEP_RUNS:
        raise FnlearnError(
            f"sweep: {configurations} configurations x {seeds} seeds = {configurations * seeds} runs; "
            f"at most {MAX_SWEEP_RUNS} in one sweep. Fix: fewer grid values, variants or --seeds."
        )


def _parts_label(settings: Mapping) -> str:
    """``lr=0.01_sizes=64-32``: the last part of each key and its value, slugged."""
    return "_".join(f"{_slug(_short(k))}={_slug(v)}" for k, v in settings.items())


def _fit_label(label: str) -> str:
    """``label``, or "base" for none; one longer than a folder name may be is cut and given a
    hash of the whole, so distinct long labels stay distinct."""
    if len(label) <= MAX_NAME_BYTES:
        return label or "base"
    digest = hashlib.sha256(label.encode()).hexdigest()[:12]
    return f"{label[: MAX_NAME_BYTES - 13]}-{digest}"


def _split_top_level(text: str) -> list[str]:
    """Split at commas that are not inside [...], {...} or quotes (a backslash escapes the next
    character inside "double quotes", as in TOML)."""
    parts, depth, quote, current = [], 0, "", []
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif quote == '"' and ch == "\\":
            escaped = True
        elif quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return parts


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _slug(value) -> str:
    """``value`` as a piece of a folder name: runs of other characters become '-', and a leading
    or trailing '-' or '.' is dropped (so ".." becomes "x")."""
    text = _show(value, limit=10 * MAX_NAME_BYTES) if not isinstance(value, str) else value
    return _slug_text(text) or "x"
