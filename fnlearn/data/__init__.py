"""Datasets for fnlearn: loading by name, validation, splits, standardisation, augmentation.

>>> from fnlearn import data
>>> ds = data.load("digits")                                  # x [1797, 64] float32, y [1797] int32
>>> parts, scaler = data.standardize(data.split(ds, val=0.1, test=0.2, seed=0))
>>> augment = data.augment.make_augment(image_shape=ds.image_shape, max_shift=1)
>>> images = data.load("digits", layout="image")               # x [1797, 8, 8, 1], for a CNN

Modules, one job each: ``dataset`` (the record and its checks), ``embedded`` (scikit-learn sets),
``idx`` (MNIST-style files), ``files`` (CSV, npz), ``synthetic`` (problems from the notes),
``sequences`` (a text corpus and the sort/addition/copy tasks as next-token data),
``splits`` (split, Standardizer), ``augment`` (jax transforms), ``layout`` (flat rows or images),
``registry`` (the name table).
"""

from fnlearn.data import augment, layout, sequences
from fnlearn.data.dataset import (
    TASKS,
    Dataset,
    check_dataset,
    check_inputs,
    from_arrays,
)
from fnlearn.data.layout import LAYOUTS, to_layout
from fnlearn.data.registry import DEFAULT, load, names, options
from fnlearn.data.splits import STANDARDIZE_PER, Splits, Standardizer, split, standardize

__all__ = [
    "DEFAULT",
    "LAYOUTS",
    "STANDARDIZE_PER",
    "TASKS",
    "Dataset",
    "Splits",
    "Standardizer",
    "augment",
    "sequences",
    "check_dataset",
    "check_inputs",
    "from_arrays",
    "layout",
    "load",
    "names",
    "options",
    "split",
    "standardize",
    "to_layout",
]
