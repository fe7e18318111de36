"""What every sweep leaves in its folder: ``sweep.png``, ``sweep.md`` and ``sweep.csv``.

``sweep.png`` has the learning curves (as :func:`~fnlearn.report.plot_compare` draws them) above
the headline metric (test accuracy, else the best validation accuracy, else the test or best
validation loss) of every group against each swept setting, mean ± sample std over the seeds as
error bars. A numeric setting whose positive values span a factor of 10 or more (learning rates,
penalties) gets a log axis; with several swept settings each panel draws one line per combination
of the others. A sweep of labelled variants shows the metric of each variant, best first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from fnlearn.errors import FnlearnError
from fnlearn.report.figures import (
    _plain_text,
    check_figure_path,
    curve_panels,
    curves_size,
    draw_curves,
    pyplot,
    save_figure,
)
from fnlearn.report.labels import format_value, grouping
from fnlearn.report.runs import Run, find_runs, show_path
from fnlearn.report.tables import compare_table, markdown_table, write_atomically, write_csv

HEADLINES = (
    "test_accuracy",
    "best val_accuracy",
    "best train_accuracy",
    "test_loss",
    "best val_loss",
    "best train_loss",
)
"""The metric a sweep's summary panel shows: the first of these the table has."""


def headline(columns: Sequence[str]) -> str | None:
    """The summary panel's metric: the first of :data:`HEADLINES` in ``columns``, else the first
    metric column."""
    metrics = [c for c in columns if c not in ("run", "seeds", "diverged", "epochs", "wall time (s)")]
    return next((c for c in HEADLINES if c in columns), metrics[0] if metrics else None)


def _points(rows: Sequence[Mapping], metric: str) -> list[tuple[Mapping, float, float]]:
    """``(row, mean, std)`` of the rows that have ``metric`` (std 0 for one seed)."""
    return [(row, row[metric][0], row[metric][1] or 0.0) for row in rows if row.get(metric) is not None]


def _draw_by_label(ax, rows: Sequence[Mapping], metric: str) -> None:
    """The metric of each labelled variant as a horizontal error bar, best at the top."""
    points = sorted(_points(rows, metric), key=lambda p: p[1], reverse="loss" not in metric)
    labels = [_plain_text(p[0]["run"]) for p in points][::-1]
    means = [p[1] for p in points][::-1]
    stds = [p[2] for p in points][::-1]
    ax.errorbar(means, range(len(points)), xerr=stds, fmt="o", color="C0", capsize=3)
    ax.set_yticks(range(len(points)), labels, fontsize=8)
    ax.set_xlabel(f"{metric} (mean ± std over seeds)")
    ax.grid(alpha=0.3, axis="x")


def _numbers(values: Sequence[str]) -> list[float] | None:
    decoded = [json.loads(v) if v else None for v in values]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in decoded):
        return [float(v) for v in decoded]
    return None


def _draw_by_setting(ax, rows: Sequence[Mapping], metric: str, key: str, names: Mapping) -> None:
    """The metric against the swept setting ``key``: one line per combination of the others."""
    points = _points(rows, metric)
    numbers = _numbers([p[0]["settings"].get(key, "") for p in points])
    texts = [format_value(p[0]["settings"][key]) if p[0]["settings"].get(key) else "-" for p in points]
    order = list(dict.fromkeys(texts))
    xs = numbers if numbers is not None else [order.index(t) for t in texts]
    others = [k for k in names if k != key]
    series: dict[str, list] = {}
    for (row, mean, std), x in zip(points, xs):
        name = " · ".join(
            f"{names[k]}={format_value(row['settings'][k])}" for k in others if row["settings"].get(k)
        )
        series.setdefault(name, []).append((x, mean, std))
    for i, (name, values) in enumerate(series.items()):
        values.sort()
        ax.errorbar(
            [v[0] for v in values],
            [v[1] for v in values],
            yerr=[v[2] for v in values],
            fmt="o-",
            color=f"C{i % 10}",
            capsize=3,
            markersize=4,
            label=_plain_text(name) or None,
        )
    if numbers is not None and min(numbers) > 0 and max(numbers) / min(numbers) >= 10:
        ax.set_xscale("log")
    if numbers is None:
        ax.set_xticks(range(len(order)), [_plain_text(t) for t in order], fontsize=8, rotation=30, ha="right")
    ax.set_xlabel(names[key])
    ax.set_ylabel(metric, fontsize=8)
    ax.grid(alpha=0.3)
    if 1 < len(series) <= 8:
        ax.legend(fontsize=6.5, frameon=False)


def plot_sweep(runs: Sequence[Run], out: str | Path) -> Path:
    """The sweep figure (see the module docstring) of ``runs`` as one file."""
    curve_panels(runs)  # no metrics: an error before anything is drawn
    out = check_figure_path(out, "figure")
    columns, rows = compare_table(runs)
    metric = headline(columns)
    found = grouping(runs)
    swept = list(found.names)[:4] if found.names else []
    plt = pyplot()
    width, height = curves_size(runs)
    panels = max(1, len(swept))
    bottom = 3.0 if swept else 0.9 + 0.22 * len(rows)
    fig = plt.figure(figsize=(max(width, 4.2 * panels), height + bottom), layout="constrained")
    top, low = fig.subfigures(2, 1, height_ratios=[height, bottom])
    draw_curves(top, runs)
    if metric is None:
        low.text(0.5, 0.5, "no metric to compare", ha="center")
    elif swept:
        for ax, key in zip(low.subplots(1, panels, squeeze=False)[0], swept):
            _draw_by_setting(ax, rows, metric, key, found.names)
    else:
        _draw_by_label(low.subplots(), rows, metric)
    return save_figure(plt, fig, out)


def write_sweep_report(folder: str | Path) -> list[Path]:
    """Write ``sweep.png``, ``sweep.md`` (the table, fitted to 120 characters, and the figure)
    and ``sweep.csv`` (every column and the full settings) into the sweep's ``folder``; returns
    their paths (no figure without matplotlib)."""
    folder = Path(folder)
    runs = find_runs([folder])
    columns, rows = compare_table(runs)
    written = [write_csv(folder / "sweep.csv", columns, rows)]
    figure = None
    try:
        figure = plot_sweep(runs, folder / "sweep.png")
    except FnlearnError:  # no matplotlib, or no metrics: the table still stands
        pass
    key = grouping(runs).key
    text = [f"# Sweep {show_path(folder.name)}", "", markdown_table(columns, rows)]
    text += ["", *[f"- {line}" for line in key]] if key else []
    text += ["", "![learning curves and the metric against each swept setting](sweep.png)"] if figure else []
    text += ["", "Every column, with the full settings of each run, is in sweep.csv."]
    path = folder / "sweep.md"
    written.append(write_atomically(path, "sweep.md", lambda tmp: tmp.write_text("\n".join(text) + "\n")))
    return written + ([figure] if figure else [])
