"""Reports from run directories: comparison tables and learning-curve plots.

A run directory is read without fnlearn's model code, from three plain files:
``config.toml`` (the resolved config), ``metrics.jsonl`` (one JSON object per logging point, keys
such as ``step``, ``epoch``, ``train_loss``, ``val_accuracy``, ``learning_rate``) and
``summary.json`` (written when the run finished; absent for an interrupted run).

Runs whose configs agree on everything but ``training.seeds`` form a *group*; tables show each
metric of a group as mean ± sample standard deviation (ddof = 1) over its seeds:
m̄ = (1/n) Σ mᵢ, s = √(Σ (mᵢ − m̄)² / (n − 1)), and just m̄ for n = 1.
"""

from __future__ import annotations

import csv
import json
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from fnlearn.errors import FnlearnError

__all__ = [
    "Run",
    "read_run",
    "find_runs",
    "read_metrics",
    "final_metrics",
    "best_metrics",
    "group_runs",
    "compare_table",
    "markdown_table",
    "write_csv",
    "plot_compare",
    "plot_run",
]

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


def read_metrics(path: str | Path) -> list[dict]:
    """The objects of a ``metrics.jsonl`` file; a torn last line (an interrupted write) is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                continue
            raise FnlearnError(
                f"{path}: line {number} is not a JSON object: {line[:80]!r}."
            ) from None
        if isinstance(row, dict):
            rows.append(row)
    return rows


def read_run(path: str | Path) -> Run:
    """Read the run directory ``path``: it must hold ``config.toml``."""
    path = Path(path)
    config_path = path / "config.toml"
    if not config_path.is_file():
        raise FnlearnError(
            f"{str(path)!r} is not a run directory: it has no config.toml. Expected a directory made by "
            "`fnlearn train` or `fnlearn sweep`."
        )
    try:
        config = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise FnlearnError(f"{config_path}: not valid TOML ({err}).") from None
    summary_path = path / "summary.json"
    summary = (
        json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else None
    )
    return Run(path, config, read_metrics(path / "metrics.jsonl"), summary)


def find_runs(paths: Iterable[str | Path]) -> list[Run]:
    """The runs at ``paths``; a directory without config.toml stands for the run directories
    below it (a sweep's or a multi-seed run's output)."""
    runs = []
    for given in paths:
        path = Path(given)
        if (path / "config.toml").is_file():
            runs.append(read_run(path))
            continue
        if not path.is_dir():
            raise FnlearnError(
                f"{str(path)!r} does not exist. Expected a run directory (or a folder of them)."
            )
        found = sorted(p.parent for p in path.rglob("config.toml"))
        if not found:
            raise FnlearnError(f"{str(path)!r} holds no run directories (no config.toml below it).")
        runs.extend(read_run(p) for p in found)
    return runs


# ------------------------------------------------------------------------------------------------
# Final and best values


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _metric_keys(rows: Sequence[Mapping]) -> list[str]:
    keys = []
    for row in rows:
        keys += [
            k for k, v in row.items() if k not in keys and not is_bookkeeping(k) and _is_number(v)
        ]
    return keys


def higher_is_better(key: str) -> bool:
    """Accuracies are maximised; losses and errors (loss, nll, mse, mae, ece) are minimised."""
    return "accuracy" in key


def final_metrics(rows: Sequence[Mapping]) -> dict[str, float]:
    """The last logged value of every metric."""
    final = {}
    for row in rows:
        final.update({k: v for k, v in row.items() if not is_bookkeeping(k) and _is_number(v)})
    return final


def best_metrics(rows: Sequence[Mapping]) -> dict[str, dict]:
    """For every metric, its best value and where: ``{"val_loss": {"value", "epoch", "step"}}``."""
    best = {}
    for key in _metric_keys(rows):
        points = [row for row in rows if _is_number(row.get(key))]
        pick = max if higher_is_better(key) else min
        row = pick(points, key=lambda r: r[key])
        best[key] = {"value": row[key], "epoch": row.get("epoch"), "step": row.get("step")}
    return best


# ------------------------------------------------------------------------------------------------
# Groups and tables


def _flatten(table: Mapping, prefix: str = "") -> dict:
    flat = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and not key.endswith("options"):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = json.dumps(value, sort_keys=True)
    return flat


_IGNORED = ("training.seeds", "sweep.grid", "sweep.variants", "sweep.seeds")


def group_runs(runs: Sequence[Run]) -> list[tuple[str, list[Run]]]:
    """Group runs whose configs differ only in their seeds. Label each group by the label its runs
    were given (a sweep's variant label, in summary.json) when those tell the groups apart, else by
    the config keys that differ between groups (``optimizer.name=adam``), or by its name."""
    groups: dict[str, list[Run]] = {}
    flats = {}
    for run in runs:
        flat = {k: v for k, v in _flatten(run.config).items() if k not in _IGNORED}
        key = json.dumps(flat, sort_keys=True)
        groups.setdefault(key, []).append(run)
        flats[key] = flat
    all_keys = sorted({k for flat in flats.values() for k in flat})
    differing = [k for k in all_keys if len({flat.get(k) for flat in flats.values()}) > 1]
    given = [{(run.summary or {}).get("label") for run in members} for members in groups.values()]
    if (
        all(len(g) == 1 and None not in g for g in given)
        and len({next(iter(g)) for g in given}) == len(given) > 1
    ):
        return [(next(iter(g)), members) for g, members in zip(given, groups.values())]
    labelled = []
    for key, members in groups.items():
        flat = flats[key]
        parts = [
            f"{k}={_label_value(flat[k]) if k in flat else '-'}" for k in differing if k != "name"
        ]
        if "name" in differing or not parts:
            parts.insert(0, str(members[0].config.get("name") or members[0].path.name))
        labelled.append((" ".join(parts), members))
    return labelled


def _label_value(encoded: str) -> str:
    """A config value for a label: strings bare, everything else as JSON (true, [64, 32])."""
    value = json.loads(encoded)
    return value if isinstance(value, str) else json.dumps(value)


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def _run_values(run: Run) -> dict[str, float]:
    """One run's table entries: test metrics, final and best of the monitored split, wall time."""
    values = {}
    summary = run.summary or {}
    for key, value in (summary.get("test") or {}).items():
        if _is_number(value):
            values[f"test_{key}"] = value
    rows = run.metrics
    keys = _metric_keys(rows)
    split = "val_" if any(k.startswith("val_") for k in keys) else "train_"
    final = final_metrics(rows)
    for key, item in best_metrics(rows).items():
        if key.startswith(split):
            values[f"final {key}"] = final[key]
            values[f"best {key}"] = item["value"]
    epochs = [row["epoch"] for row in rows if _is_number(row.get("epoch"))]
    if epochs:
        values["epochs"] = max(epochs)
    if _is_number(summary.get("wall_time_s")):
        values["wall time (s)"] = summary["wall_time_s"]
    return values


def compare_table(runs: Sequence[Run]) -> tuple[list[str], list[dict]]:
    """``(columns, rows)``: one row per group, each metric as ``(mean, std or None)``.

    Columns are "run", "seeds", then every metric any group has (test metrics first).
    """
    rows, columns = [], []
    any_diverged = False
    for label, members in group_runs(runs):
        per_run = [_run_values(run) for run in members]
        row = {"run": label, "seeds": len(members)}
        diverged = sum((run.summary or {}).get("status") == "diverged" for run in members)
        if diverged:
            row["diverged"] = f"{diverged}/{len(members)}"
            any_diverged = True
        for key in [k for values in per_run for k in values]:
            if key in row:
                continue
            present = [values[key] for values in per_run if key in values]
            row[key] = _mean_std(present)
            if key not in columns:
                columns.append(key)
        rows.append(row)
    order = sorted(
        columns,
        key=lambda c: (
            not c.startswith("test_"),
            c in ("epochs", "wall time (s)"),
            columns.index(c),
        ),
    )
    return ["run", "seeds", *(["diverged"] if any_diverged else []), *order], rows


def _cell(value) -> str:
    if isinstance(value, tuple):
        mean, std = value
        return f"{mean:.4g}" if std is None else f"{mean:.4g} ± {std:.2g}"
    return "" if value is None else str(value)


def markdown_table(columns: Sequence[str], rows: Sequence[Mapping]) -> str:
    """A GitHub-style markdown table; mean ± std cells, empty where a group lacks a metric."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


_TEXT_COLUMNS = ("run", "seeds", "diverged")


def write_csv(path: str | Path, columns: Sequence[str], rows: Sequence[Mapping]) -> None:
    """The table as CSV: each metric as two columns, ``NAME`` (mean) and ``NAME std``."""
    header = []
    for column in columns:
        header += [column, f"{column} std"] if column not in _TEXT_COLUMNS else [column]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            cells = []
            for column in columns:
                value = row.get(column)
                if column in _TEXT_COLUMNS:
                    cells.append(value)
                elif value is None:
                    cells += ["", ""]
                else:
                    cells += [repr(value[0]), "" if value[1] is None else repr(value[1])]
            writer.writerow(cells)


# ------------------------------------------------------------------------------------------------
# Plots (matplotlib, imported when a plot is drawn)


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise FnlearnError("plots need matplotlib: pip install 'fnlearn[plots]'.") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _curve(rows: Sequence[Mapping], key: str, x: str) -> tuple[list, list]:
    points = [
        (row[x], row[key]) for row in rows if _is_number(row.get(key)) and _is_number(row.get(x))
    ]
    return [p[0] for p in points], [p[1] for p in points]


def _other_metric(keys: Sequence[str]) -> str | None:
    """The metric shown next to the loss: accuracy if logged, else the first non-loss metric."""
    names = [
        k.split("_", 1)[1]
        for k in keys
        if k.startswith(("train_", "val_")) and not k.endswith("_loss")
    ]
    return "accuracy" if "accuracy" in names else (names[0] if names else None)


def plot_run(run: Run, out: str | Path | None = None) -> Path:
    """Loss, metric and learning rate against the step, as one PNG (default RUN/plots/training.png)."""
    rows = run.metrics
    if not rows:
        raise FnlearnError(
            f"{run.path}: metrics.jsonl is empty or missing, so there is nothing to plot."
        )
    out = Path(out) if out else run.path / "plots" / "training.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    plt = _pyplot()
    metric = _other_metric(_metric_keys(rows))
    panels = [("loss", ["train_loss", "val_loss"])]
    if metric:
        panels.append((metric, [f"train_{metric}", f"val_{metric}"]))
    rate = next(
        (k for k in ("learning_rate", "train_learning_rate") if any(k in row for row in rows)),
        "learning_rate",
    )
    panels.append(("learning rate", [rate]))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.2 * len(panels), 3.4), constrained_layout=True, squeeze=False
    )
    for ax, (title, keys) in zip(axes[0], panels):
        for key in keys:
            xs, ys = _curve(rows, key, "step")
            if xs:
                ax.plot(xs, ys, label=key, marker="o" if len(xs) < 30 else None, markersize=3)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if title == "loss" and all(v > 0 for k in keys for v in _curve(rows, k, "step")[1]):
            ax.set_yscale("log")
        if len(keys) > 1:
            ax.legend()
    fig.suptitle(str(run.config.get("name") or run.path.name))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_compare(runs: Sequence[Run], out: str | Path) -> Path:
    """Validation (else training) loss and metric curves of every run, one colour per group,
    against the epoch (the step when no epochs are logged)."""
    groups = group_runs(runs)
    all_rows = [row for run in runs for row in run.metrics]
    if not all_rows:
        raise FnlearnError("the runs have no metrics.jsonl lines, so there are no curves to plot.")
    keys = _metric_keys(all_rows)
    split = "val_" if any(k.startswith("val_") for k in keys) else "train_"
    metric = _other_metric(keys)
    panels = [f"{split}loss"] + (
        [f"{split}{metric}"] if metric and f"{split}{metric}" in keys else []
    )
    x = "epoch" if any("epoch" in row for row in all_rows) else "step"
    plt = _pyplot()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.2 * len(panels), 3.8), constrained_layout=True, squeeze=False
    )
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key in zip(axes[0], panels):
        for i, (label, members) in enumerate(groups):
            diverged = sum((run.summary or {}).get("status") == "diverged" for run in members)
            label = f"{label} ({diverged}/{len(members)} diverged)" if diverged else label
            for j, run in enumerate(members):
                xs, ys = _curve(_epoch_rows(run.metrics, key, x), key, x)
                ax.plot(
                    xs,
                    ys,
                    color=colours[i % len(colours)],
                    alpha=0.9 if len(members) == 1 else 0.6,
                    linewidth=1.4,
                    label=label if j == 0 else None,
                )
        ax.set_title(key)
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _epoch_rows(rows: Sequence[Mapping], key: str, x: str) -> list[Mapping]:
    """One point per x value (the last), so step-level logging does not zig-zag an epoch plot."""
    last = {}
    for row in rows:
        if _is_number(row.get(key)) and _is_number(row.get(x)):
            last[row[x]] = row
    return [last[k] for k in sorted(last)]
