"""Seeded train/validation/test splits, and standardisation fitted on the training split only.

``split`` draws one permutation from ``numpy.random.default_rng(seed)``, so the same seed always
gives the same three disjoint splits that together cover the dataset. With stratification (the
default for classification) every class is spread over the splits in proportion to its size.

``Standardizer`` learns per-feature μ_j and σ_j on the training split and maps every split by

    x̂_ij = (x_ij − μ_j) / s_j,   s_j = σ_j if σ_j ≥ min_std else 1,

so constant features (the blank border pixels of digits) are centred, never divided by ~0. The
feature index j runs over an example's whole shape (``per="feature"``: per pixel and channel of an
image, the same numbers in the flat and the image layout); ``per="channel"`` pools image-shaped x
[n, H, W, C] over the examples and positions, one μ_c and σ_c per channel (what CNN recipes use).
For regression the targets can be standardised the same way, with the inverse y = ŷ·s_y + μ_y (and
σ_y = σ̂·s_y for a predicted standard deviation) for reporting in the original units.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from fnlearn import checks
from fnlearn.data.dataset import Dataset
from fnlearn.errors import FnlearnError

__all__ = ["STANDARDIZE_PER", "Splits", "split", "Standardizer", "standardize"]

STANDARDIZE_PER = ("feature", "channel")


class Splits(NamedTuple):
    """The three splits; ``val`` (or ``test``) is None when its fraction is 0."""

    train: Dataset
    val: Dataset | None
    test: Dataset | None


def split(
    dataset: Dataset,
    *,
    val: float = 0.1,
    test: float | Dataset = 0.2,
    seed: int = 0,
    stratify: bool | None = None,
) -> Splits:
    """Split ``dataset`` into train/val/test with round(val·n) and round(test·n) examples.

    ``test`` may instead be a ``Dataset`` (e.g. MNIST's official test set): it is used as the
    test split as is, and only ``val`` is carved from ``dataset``. ``stratify`` defaults to True
    for classification with one label per example (not for sequences) and must stay off for regression. Indices within each split are sorted,
    so each split keeps the dataset's order.
    """
    if not isinstance(dataset, Dataset):
        raise FnlearnError(
            f"split: dataset must be a fnlearn.data.Dataset, got {checks.show(dataset)}; "
            f"build one with fnlearn.data.from_arrays(x, y, task=...)."
        )
    given_test = test if isinstance(test, Dataset) else None
    if given_test is not None:
        _check_compatible(dataset, given_test)
    test_fraction = 0.0 if given_test is not None else test
    _check_fraction(val, "val")
    _check_fraction(test_fraction, "test")
    if val + test_fraction >= 1.0:
        raise FnlearnError(
            f"split: val={val} + test={test_fraction} leaves no training data; keep their sum below 1."
        )
    checks.nonneg_int("split", "seed", seed)
    if stratify is not None:
        checks.boolean("split", "stratify", stratify, "None picks True for classification.")
    if stratify is None:
        stratify = dataset.task == "classification" and dataset.y.ndim == 1
    if stratify and dataset.task == "classification" and dataset.y.ndim != 1:
        raise FnlearnError(
            f"split: stratify=True needs one class label per example, but {dataset.name} holds sequences "
            f"(y of shape {list(dataset.y.shape)}). Pass stratify=False (or None)."
        )
    if stratify and dataset.task != "classification":
        raise FnlearnError(
            f"split: stratify=True needs class labels, but {dataset.name} is a regression dataset."
        )
    n = len(dataset)
    n_test, n_val = round(test_fraction * n), round(val * n)
    for count, fraction, which in ((n_test, test_fraction, "test"), (n_val, val, "val")):
        if fraction > 0 and count == 0:
            raise FnlearnError(
                f"split: {which}={fraction} of {n} examples rounds to an empty {which} split; "
                f"raise the fraction or set it to 0."
            )
    if n - n_test - n_val < 1:
        raise FnlearnError(
            f"split: {n} examples leave nothing to train on after val and test; lower val/test."
        )
    order = _ordering(dataset, seed, stratify)
    test_idx, val_idx, train_idx = np.split(order, [n_test, n_test + n_val])
    return Splits(
        train=dataset.take(np.sort(train_idx)),
        val=dataset.take(np.sort(val_idx)) if n_val else None,
        test=given_test if given_test is not None else (dataset.take(np.sort(test_idx)) if n_test else None),
    )


def _ordering(dataset: Dataset, seed: int, stratify: bool) -> np.ndarray:
    """A seeded permutation; stratified, it interleaves classes so every prefix is proportional.

    Example i of class c, ranked r_i among its class in the permutation, gets the key
    (r_i + ½) / n_c; sorting by the key (stably) puts ≈ k·n_c/n examples of class c in the first k.
    """
    perm = np.random.default_rng(seed).permutation(len(dataset))
    if not stratify:
        return perm
    labels = dataset.y[perm]
    key = np.empty(len(perm))
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        key[members] = (np.arange(members.size) + 0.5) / members.size
    return perm[np.argsort(key, kind="stable")]


def _check_compatible(dataset: Dataset, test: Dataset) -> None:
    same = (test.task, test.num_classes, test.x.shape[1:], test.y.shape[1:]) == (
        dataset.task,
        dataset.num_classes,
        dataset.x.shape[1:],
        dataset.y.shape[1:],
    )
    if not same:
        raise FnlearnError(
            f"split: the given test set {test.name} ({test.task}, K={test.num_classes}, features {test.x.shape[1:]}) "
            f"does not match {dataset.name} ({dataset.task}, K={dataset.num_classes}, features {dataset.x.shape[1:]}); "
            f"pass the test part of the same dataset."
        )


def _check_fraction(value, name: str) -> None:
    checks.fraction("split", name, value, f"For example {name}=0.1.")


@dataclasses.dataclass(frozen=True, eq=False)
class Standardizer:
    """Per-feature (and optionally per-target) mean and scale, learned from a training split."""

    x_mean: np.ndarray
    x_scale: np.ndarray
    y_mean: np.ndarray | None = None
    y_scale: np.ndarray | None = None

    @classmethod
    def fit(
        cls, train: Dataset, *, targets: bool = False, min_std: float = 1e-6, per: str = "feature"
    ) -> Standardizer:
        """μ and s from ``train`` only: s = σ (population std) where σ ≥ min_std, else 1; one pair per
        feature (``per="feature"``) or per channel of image-shaped x (``per="channel"``, stored
        with shape (1, …, 1, C) so that it broadcasts over an example)."""
        checks.boolean("standardize", "targets", targets)
        if targets and train.task != "regression":
            raise FnlearnError(
                f"standardize: targets=True rescales real-valued targets, but {train.name} holds class labels; "
                f"leave targets=False."
            )
        checks.positive("standardize", "min_std", min_std, "A small number such as 1e-6.")
        x_mean, x_scale = _moments(train.x, min_std, _pooled_axes(train, per))
        y_mean, y_scale = _moments(train.y, min_std) if targets else (None, None)
        return cls(x_mean, x_scale, y_mean, y_scale)

    def apply(self, dataset: Dataset) -> Dataset:
        """The dataset with x̂ = (x − μ)/s (and ŷ likewise when targets were fitted)."""
        fitted, given = self.x_mean.shape, dataset.x.shape[1:]
        if len(fitted) != len(given) or any(f not in (1, g) for f, g in zip(fitted, given, strict=True)):
            raise FnlearnError(
                f"standardize: fitted on features of shape {self.x_mean.shape}, got {dataset.x.shape[1:]} "
                f"in {dataset.name}; fit and apply on splits of one dataset."
            )
        x = ((dataset.x - self.x_mean) / self.x_scale).astype(np.float32)
        y = (
            dataset.y
            if self.y_mean is None
            else ((dataset.y - self.y_mean) / self.y_scale).astype(np.float32)
        )
        return dataset.with_arrays(x, y)

    def to_dict(self) -> dict[str, list | None]:
        """Plain nested lists, for a run directory's JSON (no pickle); ``from_dict`` reads it back."""
        return {
            f.name: None if getattr(self, f.name) is None else getattr(self, f.name).tolist()
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, fields: dict) -> Standardizer:
        """The inverse of ``to_dict``."""
        return cls(**{k: None if v is None else np.asarray(v, np.float32) for k, v in fields.items()})

    def inverse_y(self, y):
        """Targets or predicted means back in original units: y = ŷ·s_y + μ_y (identity if unfitted)."""
        return y if self.y_mean is None else y * self.y_scale + self.y_mean

    def inverse_y_scale(self, scale):
        """A predicted standard deviation back in original units: σ = σ̂·s_y (identity if unfitted)."""
        return scale if self.y_scale is None else scale * self.y_scale


def _pooled_axes(train: Dataset, per) -> tuple[int, ...]:
    """The axes of x one μ, σ is taken over: the examples' (0), and for channels every position."""
    if not isinstance(per, str) or per not in STANDARDIZE_PER:
        raise FnlearnError(
            f"standardize: per={per!r}, expected 'feature' (one μ, σ per pixel) or 'channel' (one per "
            f"channel of images [n, H, W, C])."
        )
    if per == "feature":
        return (0,)
    if train.x.ndim < 3:
        raise FnlearnError(
            f"standardize: per='channel' needs image-shaped x [n, H, W, C], but {train.name} has x of shape "
            f"{list(train.x.shape)}. Load it as images (layout='image'), or use per='feature'."
        )
    return tuple(range(train.x.ndim - 1))


def _moments(a: np.ndarray, min_std: float, axes=(0,)) -> tuple[np.ndarray, np.ndarray]:
    a = a.astype(np.float64)
    mean, std = a.mean(axis=axes, keepdims=True)[0], a.std(axis=axes, keepdims=True)[0]
    scale = np.where(std >= min_std, std, 1.0)
    return mean.astype(np.float32), scale.astype(np.float32)


def standardize(
    splits: Splits, *, targets: bool = False, min_std: float = 1e-6, per: str = "feature"
) -> tuple[Splits, Standardizer]:
    """Fit a ``Standardizer`` on ``splits.train`` (per feature or per channel) and apply it to every split."""
    scaler = Standardizer.fit(splits.train, targets=targets, min_std=min_std, per=per)
    return Splits(*(None if d is None else scaler.apply(d) for d in splits)), scaler
