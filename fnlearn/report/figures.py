"""Figures from run directories (matplotlib, imported when a figure is drawn).

``plot_run``: one run's loss, metric and learning rate against the step. ``plot_compare``: the
validation (else training) loss and metric of every group of runs against the epoch, each group's
seeds drawn as their mean with a ±1 sample-standard-deviation band (s over the seeds that logged
that epoch). Up to ten groups share one axes with the legend outside it; more are drawn as small
multiples, one panel per group over the others in grey. A group whose mean curve equals an earlier
group's is dashed and says so in its label.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

from fnlearn.errors import FnlearnError
from fnlearn.report.labels import Group, grouping
from fnlearn.report.runs import Run, is_number, metric_keys, show_path
from fnlearn.report.tables import check_output, mean_std, write_atomically

SAME = 1e-4
"""Curves that agree to this relative difference at every point look the same: the later one is
dashed and named "same curve as" the earlier (equivalent optimizers do this)."""

OVERLAY_LIMIT = 10
"""Most groups drawn on one axes; more are drawn as small multiples."""


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only); without matplotlib, one line saying how to
    install it."""
    try:
        import matplotlib
    except ImportError:
        raise FnlearnError("plots need matplotlib: pip install 'fnlearn[plots]'.") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


PLOT_LIMIT = 1e100
"""Figures leave out values beyond ±1e100 (a diverged run): larger ones overflow matplotlib's axes."""


def _plottable(value) -> bool:
    return is_number(value) and abs(value) <= PLOT_LIMIT


def _curve(rows: Sequence[Mapping], key: str, x: str) -> tuple[list, list]:
    points = [
        (float(row[x]), float(row[key]))
        for row in rows
        if _plottable(row.get(key)) and _plottable(row.get(x))
    ]
    return [p[0] for p in points], [p[1] for p in points]


def _other_metric(keys: Sequence[str]) -> str | None:
    """The metric shown next to the loss: accuracy if logged, else the first non-loss metric."""
    names = [k.split("_", 1)[1] for k in keys if k.startswith(("train_", "val_")) and not k.endswith("_loss")]
    return "accuracy" if "accuracy" in names else (names[0] if names else None)


def plot_run(run: Run, out: str | Path | None = None) -> Path:
    """Loss, metric and learning rate against the step, as one PNG (default RUN/plots/training.png)."""
    rows = run.metrics
    if not rows:
        raise FnlearnError(
            f"{show_path(run.path)}: metrics.jsonl is empty or missing, so there is nothing to plot."
        )
    if out:
        out = check_figure_path(out, "figure")
    else:
        out = run.path / "plots" / "training.png"
        try:
            out.parent.mkdir(exist_ok=True)  # inside the run directory
        except OSError as err:
            raise FnlearnError(f"{show_path(out.parent)}: cannot make it: {err.strerror or err}.") from None
    plt = pyplot()
    metric = _other_metric(metric_keys(rows))
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
        if len(keys) > 1 and ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(_plain_text(run.config.get("name") or run.path.name))
    return save_figure(plt, fig, out)


def _plain_text(text) -> str:
    """Text matplotlib shows as it is: '$' escaped (no mathtext), one line."""
    return " ".join(str(text).split()).replace("$", r"\$")


def check_figure_path(path: str | Path, what: str) -> Path:
    """``path`` as a figure to write (:func:`check_output`), in a format matplotlib writes (by
    its suffix; none means PNG)."""
    path = check_output(path, what)
    fmt = path.suffix[1:].lower()
    if fmt:
        pyplot()  # no matplotlib: one line saying how to install it
        from matplotlib.backend_bases import FigureCanvasBase

        known = FigureCanvasBase.get_supported_filetypes()
        if fmt not in known:
            raise FnlearnError(
                f"{what} {show_path(path)}: matplotlib cannot write .{fmt} figures. Use .png, .pdf or "
                f".svg (or one of {', '.join(sorted(known))})."
            )
    return path


def save_figure(plt, fig, out: Path) -> Path:
    """Save ``fig`` to ``out`` whole or not at all, and close it; a figure matplotlib cannot draw
    is a FnlearnError."""

    def draw(tmp: Path) -> None:
        try:
            fig.savefig(tmp, dpi=110, format=out.suffix[1:].lower() or "png")
        except (ValueError, OverflowError) as err:
            reason = (str(err).splitlines() or [type(err).__name__])[0]
            raise FnlearnError(f"figure {show_path(out)}: matplotlib could not draw it ({reason}).") from None

    try:
        return write_atomically(out, "figure", draw)
    finally:
        plt.close(fig)


def _epoch_rows(rows: Sequence[Mapping], key: str, x: str) -> list[Mapping]:
    """One point per x value (the last), so step-level logging does not zig-zag an epoch plot."""
    last = {}
    for row in rows:
        if _plottable(row.get(key)) and _plottable(row.get(x)):
            last[row[x]] = row
    return [last[k] for k in sorted(last)]


# ------------------------------------------------------------------------------------------------
# Comparison figures


def curve_panels(runs: Sequence[Run]) -> tuple[list[str], str]:
    """The metrics to draw (validation, else training, loss and metric) and the x axis (the
    epoch, else the step)."""
    all_rows = [row for run in runs for row in run.metrics]
    if not all_rows:
        raise FnlearnError("the runs have no metrics.jsonl lines, so there are no curves to plot.")
    keys = metric_keys(all_rows)
    split = "val_" if any(k.startswith("val_") for k in keys) else "train_"
    metric = _other_metric(keys)
    panels = [f"{split}loss"] + ([f"{split}{metric}"] if metric and f"{split}{metric}" in keys else [])
    return panels, "epoch" if any("epoch" in row for row in all_rows) else "step"


def group_curve(runs: Sequence[Run], key: str, x: str) -> tuple[list, list, list]:
    """``(xs, means, stds)`` of ``key`` over the runs at every x any of them logged: the mean m̄
    and sample std s of the runs that logged it (s is NaN where only one did)."""
    per_x: dict[float, list[float]] = {}
    for run in runs:
        for a, b in zip(*_curve(_epoch_rows(run.metrics, key, x), key, x)):
            per_x.setdefault(a, []).append(b)
    xs = sorted(per_x)
    stats = [mean_std(per_x[a]) for a in xs]
    return xs, [m for m, _ in stats], [math.nan if s is None else s for _, s in stats]


def same_curves(curves: Sequence[tuple]) -> dict[int, int]:
    """``{j: i}`` for every curve j equal (to :data:`SAME`, relative) to an earlier curve i."""
    same = {}
    for j, (xs, ys, _) in enumerate(curves):
        for i in range(j):
            other_xs, other_ys = curves[i][0], curves[i][1]
            if xs and xs == other_xs and all(math.isclose(a, b, rel_tol=SAME) for a, b in zip(ys, other_ys)):
                same[j] = same.get(i, i)
                break
    return same


def _legend_label(group: Group, twin: Group | None) -> str:
    diverged = sum((run.summary or {}).get("status") == "diverged" for run in group.runs)
    text = group.label + (f" ({diverged}/{len(group.runs)} diverged)" if diverged else "")
    text += f" (same curve as {twin.label})" if twin is not None else ""
    return "\n".join(textwrap.wrap(_plain_text(text), 32, subsequent_indent="  ")) or " "


def _band(ax, xs, means, stds, colour) -> None:
    low = [m - s for m, s in zip(means, stds)]
    high = [m + s for m, s in zip(means, stds)]
    if any(not math.isnan(s) for s in stds):
        ax.fill_between(xs, low, high, color=colour, alpha=0.18, linewidth=0)


def _two_and_five(value: float, _position) -> str:
    """Minor log-axis labels at 2·10ᵏ and 5·10ᵏ only (0.2, 0.5, 2, 5, 20, ...)."""
    if value <= 0:
        return ""
    mantissa = value / 10 ** math.floor(math.log10(value))
    return f"{value:g}" if any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (2, 5)) else ""


def _style_axes(ax, key: str, x: str, curves: Sequence[tuple]) -> None:
    from matplotlib import ticker

    ax.set_title(key, fontsize=10)
    ax.set_xlabel(x)
    ax.grid(alpha=0.3)
    values = [v for _, ys, _ in curves for v in ys]
    if key.endswith("loss") and values and min(values) > 0 and max(values) / min(values) > 10:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(ticker.FuncFormatter(_two_and_five))
    if x == "epoch":
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))


def draw_overlay(fig, groups: Sequence[Group], panels: Sequence[str], x: str, key: Sequence[str]) -> None:
    """Every group on one axes per panel, in its own colour; the legend outside, right."""
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        curves = [group_curve(group.runs, panel, x) for group in groups]
        same = same_curves(curves)
        for i, (group, (xs, means, stds)) in enumerate(zip(groups, curves)):
            colour = f"C{i % 10}"
            twin = groups[same[i]] if i in same else None
            ax.plot(
                xs,
                means,
                color=colour,
                linestyle=(0, (4, 3)) if twin is not None else "-",
                linewidth=1.6,
                marker="o" if len(xs) < 12 else None,
                markersize=3,
                label=_legend_label(group, twin) if ax is axes[0] else None,
            )
            _band(ax, xs, means, stds, colour)
        _style_axes(ax, panel, x, curves)
    seeds = max(len(group.runs) for group in groups)
    notes = [*key, *(["line: mean over seeds, band: ± std"] if seeds > 1 else [])]
    fig.legend(
        loc="outside right upper",
        fontsize=8,
        title="\n".join(_plain_text(note) for note in notes) or None,
        title_fontsize=7,
        alignment="left",
        frameon=False,
    )


def draw_multiples(fig, groups: Sequence[Group], panel: str, x: str, key: Sequence[str]) -> None:
    """One small panel per group: its curve (mean ± std band) over every other group in grey."""
    n = len(groups)
    columns = min(8, math.ceil(math.sqrt(n * 1.5)))
    axes = fig.subplots(math.ceil(n / columns), columns, sharex=True, sharey=True, squeeze=False)
    curves = [group_curve(group.runs, panel, x) for group in groups]
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        for xs, means, _ in curves:
            ax.plot(xs, means, color="0.82", linewidth=0.7)
        xs, means, stds = curves[i]
        ax.plot(xs, means, color="C0", linewidth=1.5)
        _band(ax, xs, means, stds, "C0")
        ax.set_title(_legend_label(groups[i], None), fontsize=6.5)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
    _style_axes(axes[0][0], panel, x, curves)
    axes[0][0].set_title(_legend_label(groups[0], None), fontsize=6.5)
    axes[0][0].set_xlabel("")
    fig.suptitle(f"{panel} against the {x}, one panel per setting (grey: the others)", fontsize=10)
    fig.supxlabel("\n".join(_plain_text(note) for note in key) or x, fontsize=7)


def draw_curves(fig, runs: Sequence[Run]) -> None:
    """The learning curves of ``runs`` into the figure (or subfigure) ``fig``."""
    panels, x = curve_panels(runs)
    found = grouping(runs)
    if len(found.groups) <= OVERLAY_LIMIT:
        draw_overlay(fig, found.groups, panels, x, found.key)
    else:
        draw_multiples(fig, found.groups, panels[0], x, found.key)


def curves_size(runs: Sequence[Run]) -> tuple[float, float]:
    """The figure size (inches) :func:`draw_curves` needs."""
    groups = len(grouping(runs).groups)
    if groups <= OVERLAY_LIMIT:
        return 4.4 * len(curve_panels(runs)[0]) + 3.0, 3.6 + 0.12 * max(0, groups - 6)
    columns = min(8, math.ceil(math.sqrt(groups * 1.5)))
    return 1.9 * columns + 0.4, 1.75 * math.ceil(groups / columns) + 0.9


def plot_compare(runs: Sequence[Run], out: str | Path) -> Path:
    """The learning curves of every group of ``runs`` (see the module docstring) as one figure."""
    curve_panels(runs)  # no metrics: an error before anything is drawn
    out = check_figure_path(out, "figure")
    plt = pyplot()
    fig = plt.figure(figsize=curves_size(runs), layout="constrained")
    draw_curves(fig, runs)
    return save_figure(plt, fig, out)
