"""Splits (seeded, disjoint, covering, stratified) and standardisation fitted on train only."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnlearn.data import Standardizer, from_arrays, load, split, standardize
from fnlearn.errors import FnlearnError


def indexed(n=100, classes=3, task="classification"):
    """A dataset whose first feature is the example's index, so splits can be traced back."""
    x = np.stack([np.arange(n), np.random.default_rng(0).standard_normal(n)], 1)
    y = np.arange(n) % classes if task == "classification" else np.arange(n, dtype=float)
    return from_arrays(x, y, task=task)


def ids(part):
    return part.x[:, 0].astype(int)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(20, 300),
    val=st.floats(0.05, 0.4),
    test=st.floats(0.05, 0.4),
    seed=st.integers(0, 1000),
    stratify=st.booleans(),
)
def test_disjoint_covering_sized_and_deterministic(n, val, test, seed, stratify):
    ds = indexed(n)
    parts = split(ds, val=val, test=test, seed=seed, stratify=stratify)
    all_ids = np.concatenate([ids(p) for p in parts])
    assert sorted(all_ids) == list(range(n))
    assert (len(parts.test), len(parts.val)) == (round(test * n), round(val * n))
    again = split(ds, val=val, test=test, seed=seed, stratify=stratify)
    for a, b in zip(parts, again):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(parts.train.y, ds.y[ids(parts.train)])


def test_seed_changes_the_split():
    a, b = split(indexed(), seed=0), split(indexed(), seed=1)
    assert not np.array_equal(ids(a.test), ids(b.test))


def test_stratification_keeps_class_proportions():
    y = np.array([0] * 90 + [1] * 10)
    ds = from_arrays(np.arange(100.0)[:, None], y, task="classification")
    for seed in range(10):
        parts = split(ds, val=0.1, test=0.2, seed=seed)
        assert np.bincount(parts.test.y, minlength=2).tolist() == [18, 2]
        assert np.bincount(parts.val.y, minlength=2).tolist() == [9, 1]
        assert np.bincount(parts.train.y, minlength=2).tolist() == [63, 7]


def test_zero_fractions_and_a_given_test_set():
    ds = indexed(50)
    parts = split(ds, val=0.0, test=0.0)
    assert parts.val is None and parts.test is None and len(parts.train) == 50
    official = indexed(7)
    parts = split(ds, val=0.2, test=official)
    assert parts.test is official and len(parts.val) == 10 and len(parts.train) == 40
    with pytest.raises(FnlearnError, match="does not match"):
        split(ds, test=indexed(7, classes=4))


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"val": 0.5, "test": 0.5}, "leaves no training data"),
        ({"val": -0.1}, "fraction in \\[0, 1\\)"),
        ({"test": 1.2}, "fraction in \\[0, 1\\)"),
        ({"val": 0.001}, "rounds to an empty val split"),
        ({"seed": -3}, "non-negative integer"),
    ],
)
def test_bad_split_arguments(kwargs, needle):
    with pytest.raises(FnlearnError, match=needle):
        split(indexed(100), **kwargs)


def test_regression_cannot_be_stratified():
    with pytest.raises(FnlearnError, match="regression"):
        split(indexed(task="regression"), stratify=True)
    assert len(split(indexed(task="regression")).test) == 20


def test_standardizer_matches_sklearn_and_uses_train_statistics_only():
    from sklearn import preprocessing  # the test extra installs scikit-learn

    digits = load("digits")
    parts = split(digits, val=0.1, test=0.2, seed=0)
    scaled, scaler = standardize(parts)
    reference = preprocessing.StandardScaler().fit(parts.train.x.astype(np.float64))
    for ours, raw in zip(scaled, parts):
        np.testing.assert_allclose(
            ours.x, reference.transform(raw.x.astype(np.float64)), rtol=1e-4, atol=1e-4
        )
        assert ours.x.dtype == np.float32
    # blank border pixels (constant on train) are only centred: their scale is 1
    constant = parts.train.x.std(axis=0) == 0
    assert constant.any() and np.all(scaler.x_scale[constant] == 1.0)
    np.testing.assert_allclose(scaled.train.x.mean(axis=0), 0.0, atol=1e-5)
    # the statistics come from train alone: refitting on train+test would change them
    assert not np.allclose(Standardizer.fit(digits).x_mean, scaler.x_mean)


def test_target_standardisation_and_its_inverse():
    parts = split(load("diabetes"), seed=0)
    scaled, scaler = standardize(parts, targets=True)
    np.testing.assert_allclose(scaled.train.y.mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(scaled.train.y.std(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(scaler.inverse_y(scaled.test.y), parts.test.y, rtol=1e-5)
    np.testing.assert_allclose(scaler.inverse_y_scale(np.ones(1)), parts.train.y.std(), rtol=1e-5)
    restored = Standardizer.from_dict(json.loads(json.dumps(scaler.to_dict())))
    np.testing.assert_array_equal(restored.apply(parts.test).y, scaled.test.y)
    np.testing.assert_array_equal(restored.apply(parts.test).x, scaled.test.x)
    _, plain = standardize(parts)
    assert plain.inverse_y(scaled.test.y) is scaled.test.y
    with pytest.raises(FnlearnError, match="class labels"):
        standardize(split(indexed()), targets=True)


def test_split_and_standardised_digits_stay_learnable():
    """x and y stay aligned through split and standardize: a reference classifier still learns them."""
    from sklearn import linear_model

    parts, _ = standardize(split(load("digits"), val=0.0, test=0.2, seed=0))
    model = linear_model.LogisticRegression(max_iter=300).fit(parts.train.x, parts.train.y)
    assert model.score(parts.test.x, parts.test.y) > 0.95
