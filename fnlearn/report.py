"""Reports from run directories: comparison tables and learning-curve plots.

A run directory is read without fnlearn's model code, from three plain files:
``config.toml`` (the resolved config), ``metrics.jsonl`` (one JSON object per logging point, keys
such as ``step``, ``epoch``, ``train_loss``, ``val_accuracy``, ``learning_rate``) and
``summary.json`` (written when the run finished; absent for an interrupted run).

A damaged run directory (a file that cannot be read, is not UTF-8, not valid TOML/JSON, or not the
JSON object it should be; a ``metrics.jsonl`` line that is not a JSON object, bar a torn last line)
raises one :class:`~fnlearn.errors.FnlearnError` naming the file, or, for runs ``find_runs`` finds
below a folder, is reported through its ``on_damaged`` and left out. NaN, infinite and out-of-range
numbers are not metric values (they are ignored), and tables never overflow.

Runs whose configs agree on everything but ``training.seeds`` form a *group*; tables show each
metric of a group as mean ± sample standard deviation (ddof = 1) over its seeds:
m̄ = (1/n) Σ mᵢ, s = √(Σ (mᵢ − m̄)² / (n − 1)), and just m̄ for n = 1.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from fnlearn.errors import FnlearnError
from fnlearn.rules import flat_config, higher_is_better

__all__ = [
    "Run",
    "best_metrics",
    "check_figure_path",
    "check_output",
    "compare_table",
    "final_metrics",
    "find_runs",
    "group_runs",
    "markdown_table",
    "plot_compare",
    "plot_run",
    "read_metrics",
    "read_run",
    "show_path",
    "write_csv",
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


def _is_number(value) -> bool:
    """A finite int or float (not a bool, not an int beyond the float range)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _metric_keys(rows: Sequence[Mapping]) -> list[str]:
    keys = []
    for row in rows:
        keys += [k for k, v in row.items() if k not in keys and not is_bookkeeping(k) and _is_number(v)]
    return keys


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


_IGNORED = ("training.seeds", "sweep.grid", "sweep.variants", "sweep.seeds")


def group_runs(runs: Sequence[Run]) -> list[tuple[str, list[Run]]]:
    """Group runs whose configs differ only in their seeds. Label each group by the label its runs
    were given (a sweep's variant label, in summary.json) when those tell the groups apart, else by
    the config keys that differ between groups (``optimizer.name=adam``), or by its name."""
    groups: dict[str, list[Run]] = {}
    flats = {}
    for run in runs:
        flat = {k: v for k, v in flat_config(run.config).items() if k not in _IGNORED}
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
        parts = [f"{k}={_label_value(flat[k]) if k in flat else '-'}" for k in differing if k != "name"]
        if "name" in differing or not parts:
            parts.insert(0, str(members[0].config.get("name") or members[0].path.name))
        labelled.append((" ".join(parts), members))
    return labelled


def _label_value(encoded: str) -> str:
    """A config value for a label: strings bare, everything else as JSON (true, [64, 32])."""
    value = json.loads(encoded)
    return value if isinstance(value, str) else json.dumps(value)


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """m̄ and s (None for one value) of finite numbers, never overflowing in between: with
    uᵢ = vᵢ·2⁻ᵉ (exact; max |vᵢ| < 2ᵉ), m = Σuᵢ/n and dᵢ = uᵢ − m, the corrected two-pass
    s² = 2²ᵉ (Σdᵢ² − (Σdᵢ)²/n)/(n − 1) (exact to rounding even for nearly equal values; s = inf only
    when it is beyond the float range)."""
    values = [float(v) for v in values]
    n = len(values)
    e = math.frexp(max(abs(v) for v in values))[1]
    u = [math.ldexp(v, -e) for v in values]
    m = math.fsum(u) / n
    mean = math.ldexp(m, e)  # |m| <= max |u|, so |mean| <= max |v|
    if n < 2:
        return mean, None
    d = [x - m for x in u]
    variance = (math.fsum(x * x for x in d) - math.fsum(d) ** 2 / n) / (n - 1)
    try:
        return mean, math.ldexp(math.sqrt(max(variance, 0.0)), e)
    except OverflowError:
        return mean, math.inf


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
    """A table cell on one line: numbers as mean ± std, text with '|' escaped, whitespace and
    control characters as single spaces."""
    if isinstance(value, tuple):
        mean, std = value
        return f"{mean:.4g}" if std is None else f"{mean:.4g} ± {std:.2g}"
    text = "" if value is None else str(value)
    return " ".join("".join(c if c.isprintable() else " " for c in text).split()).replace("|", "\\|")


def markdown_table(columns: Sequence[str], rows: Sequence[Mapping]) -> str:
    """A GitHub-style markdown table; mean ± std cells, empty where a group lacks a metric."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines)


_TEXT_COLUMNS = ("run", "seeds", "diverged")


def check_output(path: str | Path, what: str) -> Path:
    """``path`` as a file to write: its folder must exist (it is not created) and it must not be a
    directory; otherwise a FnlearnError naming ``what`` (e.g. "--csv")."""
    path = Path(path)
    shown = show_path(path)
    if path.is_dir():
        raise FnlearnError(f"{what} {shown}: is a directory. Name a file, e.g. {show_path(path / 'out')}.")
    if not path.parent.is_dir():
        raise FnlearnError(
            f"{what} {shown}: the folder {show_path(path.parent)} does not exist. Create it, or "
            "choose a path in an existing folder."
        )
    return path


def _write_atomically(path: Path, what: str, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` for a temporary file next to ``path``, then rename it to ``path``, so a
    failure leaves neither half a file nor the temporary one; an OSError is a FnlearnError."""
    path = check_output(path, what)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise FnlearnError(f"{what} {show_path(path)}: cannot write it: {err.strerror or err}.") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_csv(path: str | Path, columns: Sequence[str], rows: Sequence[Mapping]) -> Path:
    """The table as CSV: each metric as two columns, ``NAME`` (mean) and ``NAME std``. Written
    whole or not at all; a missing folder or a directory at ``path`` is a FnlearnError."""
    header = []
    for column in columns:
        header += [column, f"{column} std"] if column not in _TEXT_COLUMNS else [column]
    lines = [header]
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
        lines.append(cells)

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(lines)

    return _write_atomically(Path(path), "CSV file", write)


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


PLOT_LIMIT = 1e100
"""Figures leave out values beyond ±1e100 (a diverged run): larger ones overflow matplotlib's axes."""


def _plottable(value) -> bool:
    return _is_number(value) and abs(value) <= PLOT_LIMIT


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
        if len(keys) > 1 and ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle(_plain_text(run.config.get("name") or run.path.name))
    return _save_figure(plt, fig, out)


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
    panels = [f"{split}loss"] + ([f"{split}{metric}"] if metric and f"{split}{metric}" in keys else [])
    x = "epoch" if any("epoch" in row for row in all_rows) else "step"
    out = check_figure_path(out, "figure")
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.2 * len(panels), 3.8), constrained_layout=True, squeeze=False
    )
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key in zip(axes[0], panels):
        for i, (label, members) in enumerate(groups):
            diverged = sum((run.summary or {}).get("status") == "diverged" for run in members)
            label = _plain_text(f"{label} ({diverged}/{len(members)} diverged)" if diverged else label)
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
    if axes[0][0].get_legend_handles_labels()[0]:
        axes[0][0].legend(fontsize=8)
    return _save_figure(plt, fig, out)


def _plain_text(text) -> str:
    """Text matplotlib shows as it is: '$' escaped (no mathtext), one line."""
    return " ".join(str(text).split()).replace("$", r"\$")


def check_figure_path(path: str | Path, what: str) -> Path:
    """``path`` as a figure to write (:func:`check_output`), in a format matplotlib writes (by
    its suffix; none means PNG)."""
    path = check_output(path, what)
    fmt = path.suffix[1:].lower()
    if fmt:
        from matplotlib.backend_bases import FigureCanvasBase

        known = FigureCanvasBase.get_supported_filetypes()
        if fmt not in known:
            raise FnlearnError(
                f"{what} {show_path(path)}: matplotlib cannot write .{fmt} figures. Use .png, .pdf or "
                f".svg (or one of {', '.join(sorted(known))})."
            )
    return path


def _save_figure(plt, fig, out: Path) -> Path:
    """Save ``fig`` to ``out`` whole or not at all, and close it; a figure matplotlib cannot draw
    is a FnlearnError."""

    def draw(tmp: Path) -> None:
        try:
            fig.savefig(tmp, dpi=110, format=out.suffix[1:].lower() or "png")
        except (ValueError, OverflowError) as err:
            reason = (str(err).splitlines() or [type(err).__name__])[0]
            raise FnlearnError(f"figure {show_path(out)}: matplotlib could not draw it ({reason}).") from None

    try:
        return _write_atomically(out, "figure", draw)
    finally:
        plt.close(fig)


def _epoch_rows(rows: Sequence[Mapping], key: str, x: str) -> list[Mapping]:
    """One point per x value (the last), so step-level logging does not zig-zag an epoch plot."""
    last = {}
    for row in rows:
        if _plottable(row.get(key)) and _plottable(row.get(x)):
            last[row[x]] = row
    return [last[k] for k in sorted(last)]
