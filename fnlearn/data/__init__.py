"""Datasets for fnlearn: loading by name, validation, splits, standardisation, augmentation.

>>> from fnlearn import data
>>> ds = data.load("digits")                                  # x [1797, 64] float32, y [1797] int32
>>> parts, scaler = data.standardize(data.split(ds, val=0.1, test=0.2, seed=0))
>>> augment = data.augment.make_augment(image_shape=ds.image_shape, max_shift=1)

Modules, one job each: ``dataset`` (the record and its checks), ``embedded`` (scikit-learn sets),
``idx`` (MNIST-style files), ``files`` (CSV, npz), ``synthetic`` (problems from the notes),
``sequences`` (a text corpus and the sort/addition/copy tasks as next-token data),
``splits`` (split, Standardizer), ``augment`` (jax transforms), ``registry`` (the name table).
"""

from fnlearn.data import augment, sequences
from fnlearn.data.dataset import (
    TASKS,
    Dataset,
    check_dataset,
    check_inputs,
    from_arrays,
)
from fnlearn.data.registry import DEFAULT, load, names, options
from fnlearn.data.splits import Splits, Standardizer, split, standardize

__all__ = [
    "DEFAULT",
    "TASKS",
    "Dataset",
    "Splits",
    "Standardizer",
    "augment",
    "sequences",
    "check_dataset",
    "check_inputs",
    "from_arrays",
    "load",
    "names",
    "options",
    "split",
    "standardize",
]
