"""Synthetic problems against the formulas in the notes and against scikit-learn / scipy."""

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from fnlearn.data import load, synthetic
from fnlearn.errors import FnlearnError

GENERATORS = ["regression_1d", "gabor", "heteroscedastic", "two_moons", "spirals"]


@pytest.mark.parametrize("name", GENERATORS)
def test_seeded_and_shaped(name):
    a, b, c = load(name, n=50, seed=3), load(name, n=50, seed=3), load(name, n=50, seed=4)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.x, c.x)
    assert len(a) == 50 and a.x.dtype == np.float32 and a.name == name


def test_gabor_matches_the_notes_formula():
    ds = load("gabor", n=300, noise=0.0, phi0=0.5, phi1=12.0)
    x = ds.x[:, 0].astype(np.float64)
    z = 0.5 + 0.06 * 12.0 * x
    np.testing.assert_allclose(ds.y[:, 0], np.sin(z) * np.exp(-(z**2) / 8.0), rtol=1e-5, atol=1e-6)
    assert x.min() >= -15 and x.max() <= 15


def test_regression_1d_noise_is_gaussian_with_the_stated_std():
    ds = load("regression_1d", n=4000, noise=0.3, seed=1)
    residual = ds.y[:, 0] - np.sin(2 * np.pi * ds.x[:, 0].astype(np.float64))
    assert scipy.stats.kstest(residual, "norm", args=(0.0, 0.3)).pvalue > 1e-3


def test_heteroscedastic_noise_grows_with_x_as_stated():
    ds = load("heteroscedastic", n=6000, noise=0.5, seed=2)
    x = ds.x[:, 0].astype(np.float64)
    residual = ds.y[:, 0] - np.sin(2 * np.pi * x)
    standardised = residual / (0.5 * (0.1 + x))
    assert scipy.stats.kstest(standardised, "norm").pvalue > 1e-3
    low, high = residual[x < 0.3].std(), residual[x > 0.7].std()
    assert high > 3 * low
    np.testing.assert_allclose(synthetic.heteroscedastic_std(np.array([0.0, 1.0]), 0.5), [0.05, 0.55])


@pytest.mark.parametrize("n", [1, 2, 7, 100])
def test_two_moons_are_scikit_learns_points_before_noise(n):
    import sklearn.datasets as sklearn_datasets  # the test extra installs scikit-learn

    ours = load("two_moons", n=n, noise=0.0, seed=5)
    ref_x, ref_y = sklearn_datasets.make_moons(n_samples=n, shuffle=False, noise=0.0)

    def key(x, y):  # a canonical order: by label, then by coordinates
        return np.lexsort((x[:, 1].round(5), x[:, 0].round(5), y))

    np.testing.assert_allclose(ours.x[key(ours.x, ours.y)], ref_x[key(ref_x, ref_y)], atol=1e-6)
    np.testing.assert_array_equal(np.sort(ours.y), np.sort(ref_y))


def test_spirals_follow_the_stated_parametrisation():
    ds = load("spirals", n=90, noise=0.0, classes=3, turns=1.5)
    assert np.bincount(ds.y).tolist() == [30, 30, 30] and ds.num_classes == 3
    x = ds.x.astype(np.float64)
    r = np.hypot(x[:, 0], x[:, 1])
    assert r.min() == 0.0 and np.isclose(r.max(), 1.0)
    theta = 2 * np.pi * 1.5 * r + 2 * np.pi * ds.y / 3
    np.testing.assert_allclose(x, r[:, None] * np.stack([np.cos(theta), np.sin(theta)], 1), atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 60), noise=st.floats(0, 2), seed=st.integers(0, 2**31), name=st.sampled_from(GENERATORS)
)
def test_any_valid_options_give_a_valid_dataset(n, noise, seed, name):
    ds = load(name, n=n, noise=noise, seed=seed)
    assert len(ds) == n and np.isfinite(ds.x).all()


@pytest.mark.parametrize(
    "name, options, needle",
    [
        ("gabor", {"n": 0}, "positive integer"),
        ("gabor", {"n": 2.5}, "positive integer"),
        ("two_moons", {"noise": -0.1}, ">= 0"),
        ("spirals", {"noise": float("nan")}, "finite number"),
        ("regression_1d", {"seed": -1}, "non-negative integer"),
        ("heteroscedastic", {"seed": "1"}, "non-negative integer"),
        ("spirals", {"classes": 1}, ">= 2"),
        ("gabor", {"phi1": "x"}, "finite number"),
    ],
)
def test_bad_options(name, options, needle):
    with pytest.raises(FnlearnError, match=needle):
        load(name, **options)
