"""Groups of runs and their labels: each group is named by the settings that set it apart.

Runs whose configs agree on everything but ``training.seeds`` form a *group*. A group's label is
the user's sweep label (summary.json's ``label``) when those name the groups apart and are not
``key=value`` labels a grid made; otherwise it is built from the settings that differ between the
groups, each as a short name from the key's last part and a compact value
(``lr=3e-3 · sizes=[256,128]``). Settings that only say how a run is logged or checkpointed, and
schedule options filled in from the run (a rate equal to ``optimizer.learning_rate``, a length
equal to the run's planned steps), are left out of labels; :func:`label_key` spells out every short
name.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from fnlearn.report.runs import Run

IGNORED = ("training.seeds", "sweep.")
"""Keys that never set groups apart (prefixes end with a dot)."""

UNLABELLED = ("logging.", "training.checkpoint.", "name")
"""Keys that set groups apart but say nothing about the model's results: in the CSV, not labels
(``name`` leads a label instead)."""

SHORT = {
    "optimizer.name": "optimizer",
    "optimizer.schedule.name": "schedule",
    "model.name": "model",
    "data.name": "data",
    "learning_rate": "lr",
    "weight_decay": "wd",
    "batch_size": "batch",
    "eval_batch_size": "eval_batch",
    "activation": "act",
    "distribution": "head",
    "warmup_steps": "warmup",
    "early_stopping.enabled": "early_stopping",
}
"""Short names of whole keys, else of a key's last part (or last two parts), in labels."""

_RATE_OPTIONS = ("peak_value", "init_value", "value")
_LENGTH_OPTIONS = ("decay_steps", "transition_steps")
SEPARATOR = " · "


class Group(NamedTuple):
    """Runs that differ only in their seeds: a label, the runs, and the settings that differ
    between the groups compared (full key → JSON value; keys a group lacks are left out)."""

    label: str
    runs: list[Run]
    settings: dict[str, str]


def _ignored(key: str, prefixes: Sequence[str]) -> bool:
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in prefixes)


def settings(config: Mapping, prefix: str = "") -> dict[str, str]:
    """The config as ``{"optimizer.learning_rate": "0.001", "optimizer.options.momentum": "0.9"}``:
    tables flattened with dotted keys (``*.options`` dicts too), values as JSON."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and not key.endswith("grid"):
            flat.update(settings(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value, sort_keys=True)
    return {k: v for k, v in flat.items() if not _ignored(k, IGNORED)}


def planned_steps(run: Run) -> int | None:
    """The steps a run was set to take: ``training.steps``, else epochs × ⌈n/B⌉ (⌊n/B⌋ with
    ``drop_last``) with n the training examples summary.json counts; None when unknown."""
    training = run.config.get("training", {})
    if isinstance(training.get("steps"), int) and training["steps"] > 0:
        return training["steps"]
    examples = ((run.summary or {}).get("examples") or {}).get("train")
    epochs, batch = training.get("epochs"), training.get("batch_size")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (examples, epochs, batch)):
        return None
    per_epoch = examples // batch if training.get("drop_last") else math.ceil(examples / batch)
    return epochs * max(per_epoch, 1)


def derived_keys(run: Run) -> set[str]:
    """Schedule options a run filled in itself: a rate equal to ``optimizer.learning_rate``, a
    length equal to its planned steps less the warmup."""
    optimizer = run.config.get("optimizer", {})
    schedule = optimizer.get("schedule", {}) if isinstance(optimizer, Mapping) else {}
    options = schedule.get("options", {}) if isinstance(schedule, Mapping) else {}
    if not isinstance(options, Mapping):
        return set()
    derived = set()
    for name in _RATE_OPTIONS:
        if name in options and options[name] == optimizer.get("learning_rate"):
            derived.add(f"optimizer.schedule.options.{name}")
    steps = planned_steps(run)
    warmup = schedule.get("warmup_steps", 0) if isinstance(schedule.get("warmup_steps", 0), int) else 0
    for name in _LENGTH_OPTIONS:
        if steps is not None and options.get(name) == max(1, steps - warmup):
            derived.add(f"optimizer.schedule.options.{name}")
    return derived


def format_value(encoded: str) -> str:
    """A setting's JSON value, compact: strings bare, 0.003 → 3e-3, [256, 128] → [256,128]."""
    value = json.loads(encoded)
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, list):
        return "[" + ",".join(format_value(json.dumps(v)) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}={format_value(json.dumps(v))}" for k, v in value.items()) + "}"
    return json.dumps(value)


def _number(value: float) -> str:
    """0.003 → 3e-3, 1.5e-05 → 1.5e-5, 0.25 → 0.25, 2.0 → 2."""
    if value != 0 and math.isfinite(value) and (abs(value) < 0.01 or abs(value) >= 1e5):
        mantissa, exponent = f"{value:.2e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{value:.4g}"


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """Each key's short name: its last part (abbreviated, ``learning_rate`` → ``lr``), or as many
    last parts as it takes to tell it from the other keys."""
    names = {}
    for key in keys:
        if key in SHORT:
            names[key] = SHORT[key]
            continue
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            tail = ".".join(parts[-n:])
            clashes = [k for k in keys if k != key and ".".join(k.split(".")[-n:]) == tail]
            if not clashes:
                break
        names[key] = SHORT.get(tail, SHORT.get(parts[-1], tail) if n == 1 else tail)
    return names


class Grouping(NamedTuple):
    """The groups; the keys their labels show (full key → short name; empty when the user's
    labels are used); ``key``: one ``"lr = optimizer.learning_rate"`` line per abbreviation."""

    groups: list[Group]
    names: dict[str, str]
    key: list[str]


def group_list(runs: Sequence[Run]) -> list[Group]:
    """The runs in groups (first-seen order), each labelled (see the module docstring)."""
    return grouping(runs).groups


def label_key(runs: Sequence[Run]) -> list[str]:
    """``["lr = optimizer.learning_rate", ...]``: every short name the groups' labels use."""
    return grouping(runs).key


def key_text(runs: Sequence[Run], width: int = 120) -> str:
    """The label key as lines of at most ``width`` characters, never breaking an entry
    ("" when the labels need none)."""
    lines: list[str] = []
    for entry in label_key(runs):
        if lines and len(lines[-1]) + 2 + len(entry) <= width:
            lines[-1] += "; " + entry
        else:
            lines.append(entry)
    return "\n".join(lines)


def grouping(runs: Sequence[Run]) -> Grouping:
    """The runs grouped and labelled, with the keys the labels show."""
    members: dict[str, list[Run]] = {}
    flats: dict[str, dict] = {}
    for run in runs:
        flat = settings(run.config)
        key = json.dumps(flat, sort_keys=True)
        members.setdefault(key, []).append(run)
        flats[key] = flat
    if not members:
        return Grouping([], {}, [])
    derived = set.intersection(*(derived_keys(m[0]) for m in members.values()))
    keys = sorted({k for flat in flats.values() for k in flat})
    differing = [k for k in keys if len({flat.get(k) for flat in flats.values()}) > 1]
    labelled = [k for k in differing if k not in derived and not _ignored(k, UNLABELLED)]
    names = short_names(labelled)
    given = _given_labels(members.values())
    groups = []
    for i, (key, runs_of) in enumerate(members.items()):
        flat = flats[key]
        parts = [f"{names[k]}={format_value(flat[k])}" for k in labelled if k in flat]
        if "name" in differing or not parts:
            parts.insert(0, str(runs_of[0].config.get("name") or runs_of[0].path.name))
        label = given[i] if given else SEPARATOR.join(parts)
        groups.append(Group(label, runs_of, {k: flat.get(k, "") for k in differing}))
    if given:
        return Grouping(_distinct(groups), {}, [])
    return Grouping(_distinct(groups), names, [f"{names[k]} = {k}" for k in labelled if names[k] != k])


def _given_labels(members) -> list[str] | None:
    """The user's sweep labels of the groups, when each group has one, they differ, and none is
    a grid's ``key=value`` label."""
    given = [{(run.summary or {}).get("label") for run in runs} for runs in members]
    if not all(len(g) == 1 and None not in g for g in given):
        return None
    labels = [next(iter(g)) for g in given]
    if len(set(labels)) != len(labels) or len(labels) < 2 or any("=" in label for label in labels):
        return None
    return labels


def _distinct(groups: list[Group]) -> list[Group]:
    """Groups whose labels coincide (settings left out of labels differ) get ``#2``, ``#3``."""
    seen: dict[str, int] = {}
    out = []
    for group in groups:
        seen[group.label] = seen.get(group.label, 0) + 1
        out.append(
            group if seen[group.label] == 1 else group._replace(label=f"{group.label} #{seen[group.label]}")
        )
    return out


def group_runs(runs: Sequence[Run]) -> list[tuple[str, list[Run]]]:
    """``[(label, runs)]``: the runs grouped by config without seeds, each group labelled by what
    sets it apart (see the module docstring)."""
    return [(group.label, group.runs) for group in group_list(runs)]
