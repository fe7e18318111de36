"""The name table: embedded datasets against scikit-learn, options, unknown names and options."""

import subprocess
import sys

import numpy as np
import pytest

from fnlearn import data
from fnlearn.errors import FnlearnError

EMBEDDED = {
    # name: (n, features, classes or None, scikit-learn loader)
    "digits": (1797, 64, 10, "load_digits"),
    "iris": (150, 4, 3, "load_iris"),
    "breast_cancer": (569, 30, 2, "load_breast_cancer"),
    "wine": (178, 13, 3, "load_wine"),
    "diabetes": (442, 10, None, "load_diabetes"),
}


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_sets_are_scikit_learns(name):
    import sklearn.datasets as sklearn_datasets  # the test extra installs scikit-learn

    n, features, classes, loader = EMBEDDED[name]
    ds = data.load(name)
    reference = getattr(sklearn_datasets, loader)()
    assert ds.x.shape == (n, features) and ds.x.dtype == np.float32 and ds.name == name
    np.testing.assert_allclose(ds.x, reference.data, rtol=1e-6, atol=1e-7)
    assert ds.feature_names == tuple(reference.feature_names)
    if classes is None:
        assert (ds.task, ds.num_classes, ds.y.shape) == ("regression", None, (n, 1))
        np.testing.assert_allclose(ds.y[:, 0], reference.target, rtol=1e-6)
    else:
        assert (ds.task, ds.num_classes, ds.y.dtype) == ("classification", classes, np.int32)
        np.testing.assert_array_equal(ds.y, reference.target)
        assert set(np.unique(ds.y)) == set(range(classes))


def test_digits_is_the_default_and_knows_its_image_shape():
    ds = data.load()
    assert data.DEFAULT == "digits" and ds.name == "digits" and ds.image_shape == (8, 8)


def test_names_and_options():
    assert data.names() == sorted(data.names())
    assert set(EMBEDDED) | {"mnist", "fashion_mnist", "csv", "npz", "gabor", "two_moons"} <= set(data.names())
    assert data.options("gabor") == {"n": 100, "noise": 0.1, "seed": 0, "phi0": 0.0, "phi1": 16.0}
    assert data.options("digits") == {"layout": "flat"}
    assert set(data.options("mnist")) == {"path", "subset", "verify", "layout"}


def test_unknown_name_suggests_the_closest():
    with pytest.raises(FnlearnError, match="unknown dataset 'mnits'. Did you mean 'mnist'\\? Known: "):
        data.load("mnits")
    with pytest.raises(FnlearnError, match="unknown dataset"):
        data.options("nope")


def test_wrong_option_lists_the_accepted_ones():
    with pytest.raises(FnlearnError, match="has no option 'size'. Accepted options: n, noise, seed\\."):
        data.load("two_moons", size=10)
    with pytest.raises(FnlearnError, match="has no option 'pth'. Did you mean 'path'\\?"):
        data.load("mnist", pth="/tmp")
    with pytest.raises(FnlearnError, match="Accepted options: none"):
        data.load("iris", n=5)


def test_import_does_not_load_scikit_learn():
    code = "import sys, fnlearn.data; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes the import fail
    with pytest.raises(FnlearnError, match="pip install 'fnlearn\\[data\\]'"):
        data.load("iris")
