"""Tables of run groups: metrics as mean ± sample standard deviation, as markdown and as CSV.

Each metric of a group (runs that differ only in their seeds, see :mod:`fnlearn.report.labels`) is
shown as mean ± sample standard deviation (ddof = 1) over its seeds:
m̄ = (1/n) Σ mᵢ, s = √(Σ (mᵢ − m̄)² / (n − 1)), and just m̄ for n = 1. The markdown table fits a
width (120 characters by default) by leaving out the least telling columns and naming long labels
by number; the CSV has every column and the full settings that differ between the groups.
"""

from __future__ import annotations

import csv
import json
import math
import os
import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from fnlearn.errors import FnlearnError
from fnlearn.report.labels import group_list
from fnlearn.report.runs import Run, best_metrics, final_metrics, is_number, metric_keys, show_path


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
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
        if is_number(value):
            values[f"test_{key}"] = value
    rows = run.metrics
    keys = metric_keys(rows)
    split = "val_" if any(k.startswith("val_") for k in keys) else "train_"
    final = final_metrics(rows)
    for key, item in best_metrics(rows).items():
        if key.startswith(split):
            values[f"final {key}"] = final[key]
            values[f"best {key}"] = item["value"]
    epochs = [row["epoch"] for row in rows if is_number(row.get("epoch"))]
    if epochs:
        values["epochs"] = max(epochs)
    if is_number(summary.get("wall_time_s")):
        values["wall time (s)"] = summary["wall_time_s"]
    return values


def compare_table(runs: Sequence[Run]) -> tuple[list[str], list[dict]]:
    """``(columns, rows)``: one row per group, each metric as ``(mean, std or None)``.

    Columns are "run", "seeds", then every metric any group has (test metrics first). Each row
    also holds ``"settings"``: the config keys that differ between the groups, with JSON values.
    """
    rows, columns = [], []
    any_diverged = False
    for label, members, settings in group_list(runs):
        per_run = [_run_values(run) for run in members]
        row = {"run": label, "seeds": len(members), "settings": settings}
        diverged = sum((run.summary or {}).get("status") == "diverged" for run in members)
        if diverged:
            row["diverged"] = f"{diverged}/{len(members)}"
            any_diverged = True
        for key in [k for values in per_run for k in values]:
            if key in row:
                continue
            present = [values[key] for values in per_run if key in values]
            row[key] = mean_std(present)
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


def markdown_table(columns: Sequence[str], rows: Sequence[Mapping], width: int | None = 120) -> str:
    """A GitHub-style markdown table, columns padded; mean ± std cells, empty where a group lacks a
    metric. With ``width``, no line is longer: labels longer than 48 characters are shown as
    ``#1``, ``#2``, … with a key below, and the least telling columns (final values, then times,
    then the rightmost) are left out and named below."""
    rows = [dict(row) for row in rows]
    notes = []
    if width is not None and any(len(_cell(row.get("run"))) > _LABEL_WIDTH for row in rows):
        for number, row in enumerate(rows, 1):
            notes.append(f"#{number}: {_cell(row['run'])}")
            row["run"] = f"#{number}"
    shown = list(columns)
    while width is not None and _width(shown, rows) > width and len(shown) > 3:
        shown.remove(_least_telling(shown))
    left_out = [c for c in columns if c not in shown]
    if left_out:
        notes.append(f"not shown (all are in compare --csv FILE and sweep.csv): {', '.join(left_out)}")
    lines = _padded(shown, rows)
    return "\n".join(lines + [_wrap(note, width) for note in notes])


_LABEL_WIDTH = 48


def _least_telling(columns: Sequence[str]) -> str:
    """The column to leave out first: a final value, then times and epochs, then the rightmost."""
    for pick in (
        lambda c: c.startswith("final "),
        lambda c: c in ("wall time (s)", "epochs"),
        lambda c: c.startswith("best train_"),
    ):
        found = [c for c in columns if pick(c)]
        if found:
            return found[-1]
    return columns[-1]


def _padded(columns: Sequence[str], rows: Sequence[Mapping]) -> list[str]:
    cells = [list(columns)] + [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |" for line in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return lines


def _width(columns: Sequence[str], rows: Sequence[Mapping]) -> int:
    return max(len(line) for line in _padded(columns, rows))


def _wrap(text: str, width: int | None) -> str:
    return text if width is None else "\n".join(textwrap.wrap(text, width, subsequent_indent="    "))


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


def write_atomically(path: Path, what: str, write: Callable[[Path], None]) -> Path:
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


_TEXT_COLUMNS = ("run", "seeds", "diverged")


def _text_count(columns: Sequence[str]) -> int:
    return sum(c in _TEXT_COLUMNS for c in columns)


def _setting(encoded: str) -> str:
    """A setting's JSON value for the CSV: strings bare, the rest as JSON."""
    if not encoded:
        return ""
    value = json.loads(encoded)
    return value if isinstance(value, str) else encoded


def write_csv(path: str | Path, columns: Sequence[str], rows: Sequence[Mapping]) -> Path:
    """The table as CSV: the settings that differ between the groups (full keys, JSON values,
    strings bare), then each metric as two columns, ``NAME`` (mean) and ``NAME std``. Written
    whole or not at all; a missing folder or a directory at ``path`` is a FnlearnError."""
    keys = []
    for row in rows:
        keys += [k for k in row.get("settings", {}) if k not in keys]
    header = []
    for column in columns:
        header += [column, f"{column} std"] if column not in _TEXT_COLUMNS else [column]
    lines = [[*header[: _text_count(columns)], *keys, *header[_text_count(columns) :]]]
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
        settings = [_setting(row.get("settings", {}).get(k, "")) for k in keys]
        lines.append([*cells[: _text_count(columns)], *settings, *cells[_text_count(columns) :]])

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(lines)

    return write_atomically(Path(path), "CSV file", write)
