"""Small datasets shipped inside scikit-learn (the optional extra ``fnlearn[data]``).

Nothing is downloaded: these five sets live in scikit-learn's package data. scikit-learn is
imported only when one of them is loaded, so ``import fnlearn`` stays fast without it; digits is
read straight from scikit-learn's file (``digits.csv.gz``, the same arrays ``load_digits`` gives),
which spares the main job the second or more that importing scikit-learn and SciPy takes.

=============== ============== ======= ======== ======================================
name            task           n       features targets
=============== ============== ======= ======== ======================================
digits          classification 1797    64       10 classes, 8x8 images, pixels 0..16 (layout)
iris            classification 150     4        3 classes
breast_cancer   classification 569     30       2 classes
wine            classification 178     13       3 classes
diabetes        regression     442     10       1 column (disease progression)
=============== ============== ======= ======== ======================================

``digits(layout="image")`` gives the images as x [1797, 8, 8, 1] (``fnlearn.data.layout``).
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from fnlearn.data.dataset import Dataset, from_arrays
from fnlearn.data.layout import check_layout, to_layout
from fnlearn.errors import FnlearnError

__all__ = ["digits", "iris", "breast_cancer", "wine", "diabetes"]


def digits(*, layout: str = "flat") -> Dataset:
    """scikit-learn's 8x8 handwritten digits: pixel intensities 0..16, 10 classes.

    ``layout="flat"``: x [1797, 64], image_shape (8, 8); ``"image"``: x [1797, 8, 8, 1] (for a CNN).
    """
    check_layout("digits", layout)
    table = _sklearn_data_file("digits.csv.gz")  # 64 pixel columns, then the digit
    if table is None:
        bunch = _sklearn_datasets().load_digits()
        table = np.column_stack([bunch.data, bunch.target])
    dataset = from_arrays(
        table[:, :-1],
        table[:, -1].astype(int),
        task="classification",
        num_classes=10,
        name="digits",
        feature_names=[f"pixel_{row}_{col}" for row in range(8) for col in range(8)],
        image_shape=(8, 8),
    )
    return to_layout(dataset, layout)


def iris() -> Dataset:
    """Fisher's iris: x [150, 4] (sepal/petal length/width in cm), 3 classes."""
    return _classification("iris", _sklearn_datasets().load_iris())


def breast_cancer() -> Dataset:
    """Wisconsin diagnostic breast cancer: x [569, 30], 2 classes (0 malignant, 1 benign)."""
    return _classification("breast_cancer", _sklearn_datasets().load_breast_cancer())


def wine() -> Dataset:
    """Wine recognition: x [178, 13] chemical measurements, 3 cultivars."""
    return _classification("wine", _sklearn_datasets().load_wine())


def diabetes() -> Dataset:
    """Diabetes progression: x [442, 10] (scikit-learn's mean-centred, scaled features), y [442, 1]."""
    bunch = _sklearn_datasets().load_diabetes()
    return from_arrays(
        bunch.data, bunch.target, task="regression", name="diabetes", feature_names=bunch.feature_names
    )


def _classification(name: str, bunch) -> Dataset:
    names = [str(n) for n in bunch.target_names]  # digits' are its ids, 0..9: nothing to add
    return from_arrays(
        bunch.data,
        bunch.target,
        task="classification",
        num_classes=len(bunch.target_names),
        name=name,
        feature_names=bunch.feature_names,
        class_names=None if names == [str(i) for i in range(len(names))] else names,
    )


def _sklearn_data_file(name: str):
    """The numeric CSV ``name`` of scikit-learn's ``datasets/data`` (float64), found without importing
    scikit-learn; None if it is not there (then the caller asks scikit-learn itself)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
    if not path.is_file():
        return None
    with gzip.open(path, mode="rt", encoding="utf-8") as file:
        return np.loadtxt(file, delimiter=",")


def _sklearn_datasets():
    try:
        import sklearn.datasets
    except ImportError as error:
        raise FnlearnError(
            "the embedded datasets (digits, iris, breast_cancer, wine, diabetes) come from scikit-learn, "
            "which is not installed. Install the extra: pip install 'fnlearn[data]'."
        ) from error
    return sklearn.datasets
