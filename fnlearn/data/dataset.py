"""The ``Dataset`` record every loader returns, and the checks that guard it.

A dataset is a pair of host numpy arrays plus the little metadata the rest of fnlearn needs:

* ``x``: float32, shape ``[n, *feature_shape]``: flat rows ``[n, features]`` (what the MLPs take;
  ``image_shape`` then tells augmentation how a row is an image) or, in the image layout of
  ``fnlearn.data.layout``, images ``[n, H, W, C]`` with ``image_shape == x.shape[1:]``,
* ``y``: int32 class ids ``[n]`` for classification, float32 ``[n, d]`` for regression; for token
  sequences x ``[n, T]`` (ids stored as float32) the targets are class ids ``[n, T]``, one per
  position (e.g. the next token), and ``vocab`` lists the tokens' text,
* ``task``: ``"classification"`` or ``"regression"``; ``num_classes`` is K for classification.

``check_dataset`` is the one validation the loaders, the splits and the training engine share, so
that an empty dataset, mismatched lengths, NaN/Inf, complex values or labels outside [0, K) are
reported once, the same way, before anything is compiled. ``check_inputs`` is its part that does
not depend on what the targets mean (x, and one target row per example), for callers whose
distribution head validates the targets itself.

Size rule: K classes are refused when the one-hot targets they imply, n·K float32 values (what a
categorical head's probabilities for the whole set take), would exceed
``fnlearn.checks.memory_limit()``: a label like 4500123 (an id, not a class) then fails at once
with the estimate, instead of a model with millions of outputs failing to allocate later.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from fnlearn import checks
from fnlearn.errors import FnlearnError

__all__ = ["Dataset", "TASKS", "check_dataset", "check_inputs", "from_arrays"]

TASKS = ("classification", "regression")


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Host arrays ``x`` [n, ...] float32 and ``y`` (int32 [n] or float32 [n, d]) with metadata.

    Made directly, the arrays must already have the contract's dtypes; ``from_arrays`` casts
    ordinary numpy input (float64 features, int64 labels) for you. Validation runs on creation.
    """

    x: np.ndarray
    y: np.ndarray
    task: str
    num_classes: int | None = None
    name: str = "dataset"
    feature_names: tuple[str, ...] | None = None
    image_shape: tuple[int, ...] | None = None
    vocab: tuple[str, ...] | None = None  # token i's text, for sequence datasets (decoding samples)
    class_names: tuple[str, ...] | None = None  # class i's name: a CSV's text labels, a dataset's targets

    def __post_init__(self):
        _check_metadata(self)
        check_dataset(self.x, self.y, num_classes=self.num_classes, task=self.task, name=self.name)
        _check_exact_dtypes(self)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def num_features(self) -> int:
        """Width of a flat input row, prod(feature_shape)."""
        return int(np.prod(self.x.shape[1:], dtype=np.int64))

    @property
    def target_dim(self) -> int:
        """Number of target columns d for regression; 1 (one class id) for classification."""
        return 1 if self.task == "classification" else int(self.y.shape[1])

    def take(self, indices) -> Dataset:
        """The examples at ``indices`` (an int array), with the same metadata."""
        indices = np.asarray(indices, dtype=np.int64)
        return dataclasses.replace(self, x=self.x[indices], y=self.y[indices])

    def with_arrays(self, x: np.ndarray, y: np.ndarray) -> Dataset:
        """The same metadata over new arrays (e.g. standardised ones); validated again."""
        return dataclasses.replace(self, x=x, y=y)


def from_arrays(
    x,
    y,
    *,
    task: str,
    num_classes: int | None = None,
    name: str = "dataset",
    feature_names: Sequence[str] | None = None,
    image_shape: Sequence[int] | None = None,
    vocab: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
) -> Dataset:
    """A ``Dataset`` from ordinary arrays: x cast to float32; y to int32 [n] or float32 [n, d].

    For classification K defaults to max(y) + 1. A 1-d regression target becomes [n, 1].
    Casting never hides a mistake: non-integral class ids and non-numeric arrays are reported.
    """
    if not isinstance(task, str) or task not in TASKS:
        raise FnlearnError(
            f"{name}: task {task!r} is not one of {', '.join(TASKS)}; pass task='classification' or task='regression'."
        )
    if num_classes is not None:
        num_classes = checks.positive_int(name, "num_classes", num_classes, "It is the number of classes K.")
    x = _as_numeric(x, "x", name)
    y = _as_numeric(y, "y", name)
    if task == "classification":
        y = _as_class_ids(y, name, x)
        if num_classes is None and y.size:
            _check_class_count(y, None, name)  # before K is taken from the largest label
            num_classes = int(y.max()) + 1 if y.max() >= 0 else 1
    elif y.ndim == 1:
        y = y[:, None]
    return Dataset(
        x=np.ascontiguousarray(x, dtype=np.float32),
        y=np.ascontiguousarray(y, dtype=np.int32 if task == "classification" else np.float32),
        task=task,
        num_classes=num_classes,
        name=name,
        feature_names=None if feature_names is None else tuple(str(f) for f in feature_names),
        image_shape=None if image_shape is None else _image_shape(image_shape, name),
        vocab=None if vocab is None else tuple(vocab),
        class_names=None if class_names is None else tuple(str(c) for c in class_names),
    )


def check_dataset(
    x, y, *, num_classes: int | None = None, task: str | None = None, name: str = "dataset"
) -> tuple[np.ndarray, np.ndarray]:
    """Raise ``FnlearnError`` naming the first problem with ``(x, y)``; return them as numpy arrays.

    Checks, in order: ``check_inputs`` (real, non-complex numbers; x floating [n, ...]; at least one
    example; len(x) == len(y); no NaN/Inf in x), then y's dtype and shape (class ids integer and
    1-d; regression targets floating and 2-d [n, d]), no NaN/Inf in y, and for classification every
    label in [0, K) with K within the size rule. ``task`` defaults to classification when
    ``num_classes`` is given or y is integer, regression otherwise.
    """
    x, y = check_inputs(x, y, name=name)
    if task is None:
        task = (
            "classification"
            if num_classes is not None or np.issubdtype(y.dtype, np.integer)
            else "regression"
        )
    _check_targets(y, task, name, x)
    _check_finite(y, "y", name)
    if task == "classification":
        _check_labels(y, num_classes, name)
    return x, y


def check_inputs(x, y, *, name: str = "dataset") -> tuple[np.ndarray, np.ndarray]:
    """The checks of ``check_dataset`` that do not depend on what y means: x floating [n, ...] and
    finite, y numeric (not complex) with one row per example. Returns both as numpy arrays."""
    x, y = _as_numeric(x, "x", name), _as_numeric(y, "y", name)
    _check_x(x, name)
    if y.ndim == 0:
        raise FnlearnError(f"{name}: y is a scalar, expected one target per example (shape [n] or [n, d]).")
    _check_lengths(x, y, name)
    _check_finite(x, "x", name)
    return x, y


def _check_x(x: np.ndarray, name: str) -> None:
    if not np.issubdtype(x.dtype, np.floating):
        raise FnlearnError(
            f"{name}: x has dtype {x.dtype}, expected a floating dtype (float32). "
            f"Cast it first, e.g. x = x.astype(np.float32) (and divide raw 0-255 pixels by 255)."
        )
    if x.ndim < 2:
        raise FnlearnError(
            f"{name}: x has shape {x.shape}, expected [n, features]. For a single feature use x[:, None]."
        )


def _is_sequence(x: np.ndarray | None, y: np.ndarray) -> bool:
    """Class ids [n, T] for token sequences x [n, T]: one target (the next token) per position."""
    return x is not None and y.ndim == 2 and x.ndim == 2 and y.shape == x.shape


def _check_targets(y: np.ndarray, task: str, name: str, x: np.ndarray | None = None) -> None:
    if task == "classification":
        if not np.issubdtype(y.dtype, np.integer):
            raise FnlearnError(
                f"{name}: class labels y have dtype {y.dtype}, expected integer class ids 0..K-1. "
                f"Cast them with y = y.astype(np.int32), or use task='regression' for real-valued targets."
            )
        if y.ndim != 1 and not _is_sequence(x, y):
            raise FnlearnError(
                f"{name}: class labels y have shape {y.shape}, expected [n] class ids. "
                f"Convert one-hot rows with y = y.argmax(axis=1)."
            )
    else:
        if not np.issubdtype(y.dtype, np.floating):
            raise FnlearnError(
                f"{name}: regression targets y have dtype {y.dtype}, expected floating (float32). "
                f"Cast them with y = y.astype(np.float32), or pass num_classes for class labels."
            )
        if y.ndim != 2:
            raise FnlearnError(
                f"{name}: regression targets y have shape {y.shape}, expected [n, d]. "
                f"For one target column use y[:, None]."
            )


def _check_lengths(x: np.ndarray, y: np.ndarray, name: str) -> None:
    if x.shape[0] == 0:
        raise FnlearnError(
            f"{name}: the dataset is empty (x has shape {x.shape}). "
            f"Check the file or the filter that produced it; training needs at least one example."
        )
    if x.shape[0] != y.shape[0]:
        raise FnlearnError(
            f"{name}: x has {x.shape[0]} examples but y has {y.shape[0]}; they must match row for row. "
            f"Check that features and targets come from the same rows."
        )


def _check_finite(a: np.ndarray, which: str, name: str) -> None:
    if not np.issubdtype(a.dtype, np.floating):
        return
    bad = ~np.isfinite(a)
    count = int(bad.sum())
    if count:
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f"row {first[0]}" + (f", column {first[1]}" if len(first) == 2 else "")
        where += f", position {first[1:]}" if len(first) > 2 else ""
        raise FnlearnError(
            f"{name}: {which} contains {count} NaN/Inf value(s), the first at {where}. "
            f"Drop or impute those rows before training, e.g. keep = np.isfinite({which}).all(axis=1)."
        )


def _check_labels(y: np.ndarray, num_classes: int | None, name: str) -> None:
    if num_classes is not None:
        checks.positive_int(name, "num_classes", num_classes, "It is the number of classes K.")
    upper = np.inf if num_classes is None else num_classes
    bad = (y < 0) | (y >= upper)
    count = int(bad.sum())
    if count:
        first = int(np.argmax(bad))
        k = "K" if num_classes is None else str(num_classes)
        raise FnlearnError(
            f"{name}: {count} label(s) lie outside [0, {k}), the first is y[{first}] = {int(y[first])}. "
            f"Class ids must be 0..K-1: remap them (e.g. np.unique(y, return_inverse=True)) "
            f"or raise num_classes."
        )
    _check_class_count(y, num_classes, name)


def _check_class_count(y: np.ndarray, num_classes: int | None, name: str) -> None:
    """K classes for n examples: their one-hot targets, n·K float32 values, must fit (the size rule)."""
    if not y.size:
        return
    k = int(num_classes) if num_classes is not None else int(y.max()) + 1
    source = (
        f"num_classes={k}:"
        if num_classes is not None
        else f"the largest label, {k - 1}, implies K = {k} classes:"
    )
    checks.check_bytes(
        name,
        f"{source} one-hot targets for its {y.size} labels",
        4 * y.size * k,
        "Class ids must be 0..K-1: remap them with np.unique(y, return_inverse=True), or use task='regression' "
        "if the column holds numbers rather than classes.",
    )


def _check_metadata(d: Dataset) -> None:
    if not isinstance(d.name, str):
        raise FnlearnError(f"Dataset: name must be a string, got {checks.show(d.name)}.")
    if not isinstance(d.task, str) or d.task not in TASKS:
        raise FnlearnError(f"{d.name}: task {d.task!r} is not one of {', '.join(TASKS)}.")
    if d.task == "classification" and d.num_classes is None:
        raise FnlearnError(f"{d.name}: a classification dataset needs num_classes (K); pass num_classes=K.")
    if d.task == "regression" and d.num_classes is not None:
        raise FnlearnError(f"{d.name}: a regression dataset has num_classes=None, got {d.num_classes!r}.")
    if d.image_shape is not None:
        for s in d.image_shape:
            checks.positive_int(
                d.name, "every entry of image_shape", s, "Pass the shape of one image, e.g. (28, 28)."
            )
        width = int(np.prod(d.x.shape[1:], dtype=np.int64))
        if int(np.prod(d.image_shape, dtype=np.int64)) != width:
            raise FnlearnError(
                f"{d.name}: image_shape {d.image_shape} holds {int(np.prod(d.image_shape))} values "
                f"but a row of x has {width}; pass the shape of one image, e.g. (28, 28)."
            )
        if d.x.ndim > 2 and tuple(d.image_shape) != d.x.shape[1:]:
            raise FnlearnError(
                f"{d.name}: image_shape {d.image_shape} differs from the shape of an example of x, "
                f"{d.x.shape[1:]}; for image-shaped x pass image_shape=x.shape[1:] (or flat rows [n, H·W·C])."
            )
    if d.feature_names is not None and len(d.feature_names) != int(np.prod(d.x.shape[1:], dtype=np.int64)):
        raise FnlearnError(
            f"{d.name}: {len(d.feature_names)} feature_names for {d.x.shape[1:]} features; give one name per column."
        )
    if d.feature_names is not None:
        check_unique(d.feature_names, d.name, "feature_names")
    if d.vocab is not None:
        _check_id_names(d, "vocab", d.vocab, "token id")
    if d.class_names is not None:
        _check_id_names(d, "class_names", d.class_names, "class id")


def _check_id_names(d: Dataset, field: str, names, what: str) -> None:
    """A vocabulary (or the class names) lists each of the K ids' text once: K distinct strings."""
    if not all(isinstance(t, str) for t in names) or d.num_classes != len(names):
        raise FnlearnError(
            f"{d.name}: {field} must hold one string per {what} 0..K-1 (K = num_classes = {d.num_classes}), "
            f"got {len(names)} entries."
        )
    check_unique(names, d.name, field)


def _image_shape(image_shape, name: str) -> tuple[int, ...]:
    if not isinstance(image_shape, (tuple, list)) or not image_shape:
        raise FnlearnError(
            f"{name}: image_shape must be the shape of one image such as (28, 28), got "
            f"{checks.show(image_shape)}."
        )
    hint = "For example (28, 28)."
    return tuple(checks.positive_int(name, "every entry of image_shape", s, hint) for s in image_shape)


def check_unique(names, owner: str, what: str) -> None:
    """No name twice in ``names`` (feature or column names): a repeat would shadow a column."""
    seen: dict = {}
    for i, name in enumerate(names):
        if name in seen:
            raise FnlearnError(
                f"{owner}: {name!r} appears twice in {what} (entries {seen[name] + 1} and {i + 1}); each column "
                f"needs its own name, or one of the two is silently lost. Rename one."
            )
        seen[name] = i


def _check_exact_dtypes(d: Dataset) -> None:
    want_y = np.int32 if d.task == "classification" else np.float32
    if d.x.dtype != np.float32 or d.y.dtype != want_y:
        raise FnlearnError(
            f"{d.name}: Dataset holds x as float32 and y as {np.dtype(want_y).name}, got x {d.x.dtype} "
            f"and y {d.y.dtype}. Build it with fnlearn.data.from_arrays(x, y, task=...), which casts."
        )


def _as_numeric(a, which: str, name: str) -> np.ndarray:
    """``a`` as a numpy array of real numbers (or bools): ragged nesting, text, objects and complex
    values are errors naming ``which`` (casting would drop the imaginary part silently)."""
    try:
        a = np.asarray(a)
    except (ValueError, TypeError) as error:
        raise FnlearnError(
            f"{name}: {which} is not a rectangular array ({str(error).splitlines()[0]}). "
            f"Give every row the same length, e.g. np.stack(rows)."
        ) from None
    if np.issubdtype(a.dtype, np.complexfloating):
        raise FnlearnError(
            f"{name}: {which} holds complex numbers (dtype {a.dtype}); fnlearn trains on real values and would "
            f"drop the imaginary parts. Split them into real {'features' if which == 'x' else 'columns'}, "
            f"e.g. np.concatenate([{which}.real, {which}.imag], axis=1)."
        )
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise FnlearnError(
            f"{name}: {which} has dtype {a.dtype}, expected numbers. Convert text columns first "
            f"(class names: np.unique(y, return_inverse=True))."
        )
    return a


def _as_class_ids(y: np.ndarray, name: str, x: np.ndarray | None = None) -> np.ndarray:
    if np.issubdtype(y.dtype, np.floating):
        finite = np.isfinite(y)
        fractional = finite & (y != np.round(np.where(finite, y, 0)))
        if fractional.any():
            first = int(np.argmax(fractional))
            raise FnlearnError(
                f"{name}: class ids must be integers 0..K-1, got {y[first]} at index {first}; "
                f"use task='regression' for real-valued targets."
            )
        if not finite.all():
            first = int(np.argmax(~finite))
            raise FnlearnError(
                f"{name}: y contains {int((~finite).sum())} NaN/Inf label(s), the first at row {first}; drop "
                "those rows."
            )
    if y.ndim != 1 and not _is_sequence(x, y):
        raise FnlearnError(
            f"{name}: class labels y have shape {y.shape}, expected [n] (or [n, T] for token sequences x [n, T]); "
            "convert one-hot rows with y.argmax(axis=1)."
        )
    if y.size and (y.min() < np.iinfo(np.int32).min or y.max() > np.iinfo(np.int32).max):
        raise FnlearnError(
            f"{name}: class labels do not fit in int32; remap them with np.unique(y, return_inverse=True)."
        )
    return y.astype(np.int32)
