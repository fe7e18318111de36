"""Any table or array file the user brings: CSV with named columns, and ``.npz`` archives.

* ``csv(path=..., target=..., task=...)``: the first row names the columns; ``features`` picks the
  input columns (default: every column but the targets). Classification targets that are whole
  numbers are used as class ids as they are; text labels become ids in sorted order
  (``feature_names`` keeps the inputs' names). Several target columns make a regression y [n, d].
* ``npz(path=...)``: arrays under the keys ``x`` and ``y`` (``x_key``/``y_key`` to rename), loaded
  with ``allow_pickle=False``; the task follows y's dtype unless given.
"""

from __future__ import annotations

import csv as _csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fnlearn.data.dataset import TASKS, Dataset, from_arrays
from fnlearn.errors import FnlearnError, did_you_mean

__all__ = ["csv", "npz"]


def csv(
    *,
    path: str | None = None,
    target: str | Sequence[str] | None = None,
    task: str | None = None,
    features: Sequence[str] | None = None,
    delimiter: str = ",",
    num_classes: int | None = None,
) -> Dataset:
    """A dataset from a CSV file with a header row; ``path``, ``target`` and ``task`` are required."""
    file = _required_file(path, "csv", "path='data/table.csv'")
    if target is None:
        raise FnlearnError("csv: option 'target' is required: the name of the target column (or a list of names).")
    _check_task(task, "csv")
    header, rows = _read_csv(file, delimiter)
    targets = [target] if isinstance(target, str) else list(target)
    if task == "classification" and len(targets) != 1:
        raise FnlearnError(f"csv: classification needs exactly one target column, got {targets}.")
    inputs = [c for c in header if c not in targets] if features is None else list(features)
    columns = {c: i for i, c in enumerate(header)}
    for column in targets + inputs:
        if column not in columns:
            hint = f" Is the delimiter not {delimiter!r}? Set delimiter=..." if len(header) == 1 else ""
            raise FnlearnError(
                f"csv: {file} has no column {column!r}.{did_you_mean(column, header)} "
                f"Columns: {', '.join(header)}.{hint}"
            )
    if not inputs:
        raise FnlearnError(
            f"csv: no feature columns left in {file} besides the target(s); name them with features=[...]."
        )
    x = _numeric_columns(file, rows, [columns[c] for c in inputs], inputs)
    if task == "classification":
        y = _class_column(file, rows, columns[targets[0]], targets[0])
    else:
        y = _numeric_columns(file, rows, [columns[c] for c in targets], targets)
    return from_arrays(x, y, task=task, num_classes=num_classes, name=file.stem, feature_names=inputs)


def npz(
    *,
    path: str | None = None,
    x_key: str = "x",
    y_key: str = "y",
    task: str | None = None,
    num_classes: int | None = None,
    image_shape: Sequence[int] | None = None,
) -> Dataset:
    """A dataset from a ``.npz`` archive (``np.savez``), read without pickle.

    ``task`` defaults to classification for integer y and regression for floating y.
    """
    file = _required_file(path, "npz", "path='data/arrays.npz'")
    if task is not None:
        _check_task(task, "npz")
    try:
        with np.load(file, allow_pickle=False) as archive:
            keys = list(archive.files)
            for key in (x_key, y_key):
                if key not in keys:
                    raise FnlearnError(
                        f"npz: {file} has no array {key!r}.{did_you_mean(key, keys)} Arrays: {', '.join(keys)}. "
                        f"Name them with x_key=... and y_key=..."
                    )
            x, y = archive[x_key], archive[y_key]
    except ValueError as error:
        if isinstance(error, FnlearnError):
            raise
        raise FnlearnError(
            f"npz: cannot read {file} without pickle ({error}). Save plain numeric arrays with np.savez."
        ) from error
    except (OSError, EOFError) as error:
        raise FnlearnError(f"npz: {file} is not a readable .npz archive ({error}).") from error
    if task is None:
        task = "classification" if np.issubdtype(y.dtype, np.integer) else "regression"
    return from_arrays(x, y, task=task, num_classes=num_classes, name=file.stem, image_shape=image_shape)


def _required_file(path, loader: str, example: str) -> Path:
    if path is None:
        raise FnlearnError(f"{loader}: option 'path' is required, e.g. {example}.")
    file = Path(path)
    if not file.is_file():
        raise FnlearnError(f"{loader}: file {str(file)!r} not found (working directory {Path.cwd()}). Check the path.")
    return file


def _check_task(task, loader: str) -> None:
    if task not in TASKS:
        raise FnlearnError(
            f"{loader}: option 'task' is {task!r}, expected one of {', '.join(TASKS)}: "
            f"say whether the target holds class labels or real values."
        )


def _read_csv(file: Path, delimiter: str) -> tuple[list[str], list[list[str]]]:
    with file.open(newline="") as stream:
        reader = _csv.reader(stream, delimiter=delimiter)
        header = next(reader, None)
        rows = [row for row in reader if row]
    if not header:
        raise FnlearnError(f"csv: {file} is empty; it needs a header row naming the columns.")
    header = [h.strip() for h in header]
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise FnlearnError(
                f"csv: line {number} of {file} has {len(row)} fields, the header has {len(header)}. "
                f"Fix that line (a stray delimiter? then set delimiter=...)."
            )
    return header, rows


def _numeric_columns(file: Path, rows, indices: list[int], names: list[str]) -> np.ndarray:
    out = np.empty((len(rows), len(indices)), np.float64)
    for r, row in enumerate(rows):
        for c, i in enumerate(indices):
            try:
                out[r, c] = float(row[i])
            except ValueError:
                raise FnlearnError(
                    f"csv: line {r + 2} of {file}, column {names[c]!r}: {row[i]!r} is not a number. "
                    f"Fill or drop missing values, or leave the column out with features=[...]."
                ) from None
    return out


def _class_column(file: Path, rows, index: int, name: str) -> np.ndarray:
    values = [row[index].strip() for row in rows]
    if "" in values:
        first = values.index("")
        raise FnlearnError(
            f"csv: line {first + 2} of {file}: the class label in column {name!r} is missing; drop that row."
        )
    try:
        numbers = np.array([float(v) for v in values])
    except ValueError:
        _, ids = np.unique(np.array(values), return_inverse=True)
        return ids
    if not np.all(numbers == np.round(numbers)):
        first = int(np.argmax(numbers != np.round(numbers)))
        raise FnlearnError(
            f"csv: line {first + 2} of {file}, column {name!r}: class label {values[first]!r} is not a whole "
            f"number; use task='regression' for real-valued targets."
        )
    return numbers.astype(np.int64)
