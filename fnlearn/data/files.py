"""Any table or array file the user brings: CSV with named columns, and ``.npz`` archives.

* ``csv(path=..., target=..., task=...)``: the first row names the columns; ``features`` picks the
  input columns (default: every column but the targets). Without ``task``, a target column of
  text, or of whole numbers with few distinct values, is classification; anything else
  regression (:func:`infer_task`). Classification targets that are whole
  numbers are used as class ids as they are; text labels become ids in sorted order
  (``feature_names`` keeps the inputs' names). Several target columns make a regression y [n, d].
  The file must be UTF-8 (a byte-order mark is skipped); column names must be unique and non-empty.
* ``npz(path=...)``: arrays under the keys ``x`` and ``y`` (``x_key``/``y_key`` to rename), read
  without pickle; the task follows y's dtype unless given; ``image_shape`` and ``layout`` make
  its rows images (``fnlearn.data.layout``).

Whatever is wrong with a file (missing, a directory, unreadable, not UTF-8, not a zip archive,
truncated, holding objects or complex numbers, an array header promising more data than the
archive holds) is one ``FnlearnError`` naming the file. Reading never writes anything.
"""

from __future__ import annotations

import contextlib
import csv as _csv
import math
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fnlearn import checks
from fnlearn.data.dataset import TASKS, Dataset, check_unique, from_arrays
from fnlearn.data.layout import check_layout, to_layout
from fnlearn.errors import FnlearnError, did_you_mean

__all__ = ["csv", "npz"]

NPY_MAGIC = b"\x93NUMPY"


def csv(
    *,
    path: str | None = None,
    target: str | Sequence[str] | None = None,
    task: str | None = None,
    features: Sequence[str] | None = None,
    delimiter: str = ",",
    num_classes: int | None = None,
) -> Dataset:
    """A dataset from a CSV file with a header row; ``path`` and ``target`` are required. ``task``
    defaults to what the target column holds (:func:`infer_task`)."""
    file = _required_file(path, "csv", "path='data/table.csv'")
    targets = _names(target, "target", "the name of the target column (or a list of names)", required=True)
    if task is not None:
        _check_task(task, "csv")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise FnlearnError(
            f"csv: delimiter must be one character such as ',' or ';', got {checks.show(delimiter)}."
        )
    header, rows = _read_csv(file, delimiter)
    if features is None:
        inputs = [c for c in header if c not in targets]
    else:
        inputs = _names(features, "features", "a list of column names")
    both = [c for c in inputs if c in targets]
    if both:
        raise FnlearnError(
            f"csv: column {both[0]!r} is both a target and a feature; the model would see the answer. "
            f"Leave it out of features=[...]."
        )
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
    if task is None:
        task = infer_task([[row[columns[c]] for c in targets] for row in rows])
    if task == "classification" and len(targets) != 1:
        raise FnlearnError(f"csv: classification needs exactly one target column, got {targets}.")
    x = _numeric_columns(file, rows, [columns[c] for c in inputs], inputs)
    names = None
    if task == "classification":
        y, names = _class_column(file, rows, columns[targets[0]], targets[0])
        if names is not None and num_classes not in (None, len(names)):
            names = None  # more classes than the file's labels name: the ids alone
    else:
        y = _numeric_columns(file, rows, [columns[c] for c in targets], targets)
    return from_arrays(
        x, y, task=task, num_classes=num_classes, name=file.stem, feature_names=inputs, class_names=names
    )


FEW_CLASSES = 20
"""Whole-number targets with at most this many distinct values (and at most half as many as
rows) are class labels when ``task`` is not given."""


def infer_task(targets: Sequence[Sequence[str]]) -> str:
    """The task of CSV target cells (one list per row): classification for one column holding
    text, or whole numbers with few distinct values (≤ :data:`FEW_CLASSES` and ≤ half the rows);
    regression otherwise."""
    if not targets or len(targets[0]) != 1:
        return "regression"
    values = [row[0].strip() for row in targets if row[0].strip()]
    numbers = []
    for value in values:
        try:
            numbers.append(float(value))
        except ValueError:
            return "classification"  # text labels
    whole = all(math.isfinite(v) and v == round(v) for v in numbers)
    distinct = len(set(numbers))
    return "classification" if whole and distinct <= min(FEW_CLASSES, len(numbers) // 2) else "regression"


def npz(
    *,
    path: str | None = None,
    x_key: str = "x",
    y_key: str = "y",
    task: str | None = None,
    num_classes: int | None = None,
    image_shape: Sequence[int] | None = None,
    layout: str | None = None,
) -> Dataset:
    """A dataset from a ``.npz`` archive (``np.savez``), read without pickle.

    ``task`` defaults to classification for integer y and regression for floating y. ``layout``
    None keeps x as stored; ``"flat"`` or ``"image"`` reshapes it (``fnlearn.data.layout``), the
    image shape being ``image_shape`` or, when x is stored as images [n, H, W(, C)], x's own.
    """
    file = _required_file(path, "npz", "path='data/arrays.npz'")
    if task is not None:
        _check_task(task, "npz")
    if layout is not None:
        check_layout("npz", layout)
    for name, key in (("x_key", x_key), ("y_key", y_key)):
        if not isinstance(key, str) or not key:
            raise FnlearnError(
                f"npz: {name} must be the name of an array in the archive, got {checks.show(key)}."
            )
    if x_key == y_key:
        raise FnlearnError(
            f"npz: x_key and y_key are both {x_key!r}; the features and the targets must be different arrays "
            f"of {file}."
        )
    x, y = _read_npz(file, (x_key, y_key))
    if task is None:
        task = "classification" if np.issubdtype(y.dtype, np.integer) else "regression"
    if layout is None:
        return from_arrays(x, y, task=task, num_classes=num_classes, name=file.stem, image_shape=image_shape)
    if image_shape is None and x.ndim in (3, 4):
        image_shape = x.shape[1:]
    if image_shape is None and layout == "image":
        raise FnlearnError(
            f"npz: layout='image' needs the shape of one image, but {file} stores x as {list(x.shape)}. "
            f"Pass image_shape=(H, W) or (H, W, C), or store x as images [n, H, W(, C)]."
        )
    x = x.reshape(x.shape[0], -1) if x.ndim > 2 and x.shape[0] else x  # empty: from_arrays says so
    dataset = from_arrays(x, y, task=task, num_classes=num_classes, name=file.stem, image_shape=image_shape)
    return to_layout(dataset, layout)


def _names(value, option: str, expected: str, required: bool = False) -> list[str]:
    """A column name or a list of them, none repeated."""
    if value is None and required:
        raise FnlearnError(f"csv: option {option!r} is required: {expected}.")
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
        raise FnlearnError(f"csv: {option} must be {expected}, got {checks.show(value)}.")
    check_unique(names, "csv", option)
    return list(names)


def _required_file(path, loader: str, example: str) -> Path:
    """The path as a ``Path`` to an existing regular file, or the error saying what it is instead."""
    if path is None:
        raise FnlearnError(f"{loader}: option 'path' is required, e.g. {example}.")
    if not isinstance(path, (str, Path)) or not str(path):
        raise FnlearnError(f"{loader}: path must be a file name, e.g. {example}, got {checks.show(path)}.")
    file = Path(path)
    if file.is_dir():
        raise FnlearnError(f"{loader}: {file} is a directory; path must name a file in it, e.g. {example}.")
    if not file.exists():
        raise FnlearnError(
            f"{loader}: file {str(file)!r} not found (working directory {Path.cwd()}). Check the path."
        )
    if not file.is_file():
        raise FnlearnError(
            f"{loader}: {file} is not a regular file (a device, socket or pipe?); save the data to a file."
        )
    return file


@contextlib.contextmanager
def _reading(file: Path, loader: str):
    """Turn an operating-system failure while reading ``file`` into one line naming it."""
    try:
        yield
    except OSError as error:
        raise FnlearnError(
            f"{loader}: cannot read {file}: {error.strerror or error}. Check that it exists and that you may read it."
        ) from None


def _check_task(task, loader: str) -> None:
    if task not in TASKS:
        raise FnlearnError(
            f"{loader}: option 'task' is {task!r}, expected one of {', '.join(TASKS)}: "
            f"say whether the target holds class labels or real values."
        )


def _read_csv(file: Path, delimiter: str) -> tuple[list[str], list[list[str]]]:
    """The header and the non-empty rows, read as UTF-8 (``utf-8-sig``: a byte-order mark is skipped)."""
    reader = None
    try:
        with _reading(file, "csv"), file.open(encoding="utf-8-sig", newline="") as stream:
            reader = _csv.reader(stream, delimiter=delimiter)
            header = next(reader, None)
            rows = [row for row in reader if row]
    except UnicodeDecodeError:
        raise FnlearnError(
            f"csv: {file} is not UTF-8 text: {_first_undecodable(file)}. Save it as UTF-8 "
            f"(e.g. 'CSV UTF-8' in a spreadsheet, or iconv -f latin1 -t utf-8)."
        ) from None
    except _csv.Error as error:
        line = f" line {reader.line_num} of" if reader is not None else ""
        raise FnlearnError(
            f"csv:{line} {file} is not a readable CSV table ({error}). Is it a text table?"
        ) from None
    if not header:
        raise FnlearnError(f"csv: {file} is empty; it needs a header row naming the columns.")
    header = [h.strip() for h in header]
    if "" in header:
        raise FnlearnError(
            f"csv: column {header.index('') + 1} of {file} has no name in the header row; name every column "
            f"(a trailing {delimiter!r} at the end of the lines also makes an empty column)."
        )
    check_unique(header, f"csv: {file}", "the header row")
    for number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise FnlearnError(
                f"csv: line {number} of {file} has {len(row)} fields, the header has {len(header)}. "
                f"Fix that line (a stray delimiter? then set delimiter=...)."
            )
    return header, rows


def _first_undecodable(file: Path) -> str:
    """Where UTF-8 decoding of ``file`` first fails, e.g. "byte 0xe9 on line 3" (the stream
    decoder only knows its offset within a chunk, so the bytes are decoded again)."""
    raw = file.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        return f"byte 0x{raw[error.start]:02x} on line {line}"
    return "it could not be decoded"


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


def _class_column(file: Path, rows, index: int, name: str) -> tuple[np.ndarray, list[str] | None]:
    """The class ids of a target column, and the labels' text when they are text (id i is the i-th
    label in sorted order), else None."""
    values = [row[index].strip() for row in rows]
    if "" in values:
        first = values.index("")
        raise FnlearnError(
            f"csv: line {first + 2} of {file}: the class label in column {name!r} is missing; drop that row."
        )
    try:
        numbers = np.array([float(v) for v in values])
    except ValueError:
        names, ids = np.unique(np.array(values), return_inverse=True)
        return ids, [str(n) for n in names]
    if not np.all(numbers == np.round(numbers)):
        first = int(np.argmax(numbers != np.round(numbers)))
        raise FnlearnError(
            f"csv: line {first + 2} of {file}, column {name!r}: class label {values[first]!r} is not a whole "
            f"number; use task='regression' for real-valued targets."
        )
    return numbers.astype(np.int64), None


# --------------------------------------------------------------------------------------------
# .npz archives, read member by member without np.load: every header is checked before any
# array is allocated, so a corrupt or hostile archive cannot make numpy allocate what it claims.


def _read_npz(file: Path, keys: Sequence[str]) -> list[np.ndarray]:
    """The arrays ``keys`` of the archive ``file``, in that order."""
    with _reading(file, "npz"), file.open("rb") as stream:
        if stream.read(len(NPY_MAGIC)) == NPY_MAGIC:
            raise FnlearnError(
                f"npz: {file} is a .npy file (one array), but an .npz archive holding x and y is expected. "
                f"Save both with np.savez(path, x=x, y=y)."
            )
        stream.seek(0)
        try:
            with zipfile.ZipFile(stream) as archive:
                members = {n[: -len(".npy")]: n for n in archive.namelist() if n.endswith(".npy")}
                for key in keys:
                    if key not in members:
                        raise FnlearnError(
                            f"npz: {file} has no array {key!r}.{did_you_mean(key, members)} "
                            f"Arrays: {', '.join(members) or 'none'}. Name them with x_key=... and y_key=..."
                        )
                return [_read_member(archive, members[key], file, key) for key in keys]
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise FnlearnError(
                f"npz: {file} is not a complete .npz (zip) archive ({error}); it is empty, truncated or corrupt. "
                f"Save it again with np.savez(path, x=x, y=y)."
            ) from None


def _read_member(archive: zipfile.ZipFile, member: str, file: Path, key: str) -> np.ndarray:
    """One array: its header checked (no objects, no complex numbers, a size the archive can
    hold and memory can take), then read without pickle."""
    stored = archive.getinfo(member).file_size
    with archive.open(member) as stream:
        shape, dtype, offset = _npy_header(stream, file, key)
    where = f"npz: array {key!r} in {file}"
    if dtype.hasobject:
        raise FnlearnError(
            f"{where} holds Python objects; fnlearn reads arrays without pickle, so it cannot load them. "
            "Save plain numeric arrays with np.savez."
        )
    if np.issubdtype(dtype, np.complexfloating):
        raise FnlearnError(
            f"{where} holds complex numbers ({dtype}); fnlearn trains on real values and would drop the imaginary "
            f"parts. Save the real and imaginary parts as separate features."
        )
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > stored - offset:
        raise FnlearnError(
            f"{where}: its header promises shape {shape} of {dtype} ({checks.format_bytes(nbytes)}), but the archive "
            f"stores only {checks.format_bytes(max(stored - offset, 0))} for it; the file is corrupt. Save it again."
        )
    checks.check_bytes(where, f"shape {shape} of {dtype}", nbytes, "Load a smaller part of the data.")
    with archive.open(member) as stream:
        try:
            return np.lib.format.read_array(stream, allow_pickle=False)
        except ValueError as error:
            raise FnlearnError(
                f"{where} cannot be read ({error}); the file is corrupt. Save it again."
            ) from None


def _npy_header(stream, file: Path, key: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header length) of the .npy member ``stream``."""
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, SyntaxError, TypeError) as error:
        raise FnlearnError(
            f"npz: array {key!r} in {file} has no valid .npy header ({error}); the file is corrupt. Save it again."
        ) from None
    return tuple(int(s) for s in shape), np.dtype(dtype), stream.tell()
