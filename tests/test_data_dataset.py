"""The Dataset record and check_dataset: every kind of bad input gets one clear FnlearnError."""

import dataclasses

import numpy as np
import pytest

from fnlearn.data import Dataset, check_dataset, from_arrays
from fnlearn.errors import FnlearnError


def _xy(n=5, f=3):
    return np.zeros((n, f), np.float32), np.arange(n, dtype=np.int32) % 2


def test_sound_input_passes_and_keeps_contract_dtypes():
    x, y = _xy()
    check_dataset(x, y, num_classes=2)
    ds = from_arrays(x.astype(np.float64), y.astype(np.int64), task="classification")
    assert (ds.x.dtype, ds.y.dtype, ds.num_classes, len(ds), ds.num_features) == (
        np.float32,
        np.int32,
        2,
        5,
        3,
    )
    reg = from_arrays(x, np.arange(5.0), task="regression")
    assert reg.y.shape == (5, 1) and reg.y.dtype == np.float32 and reg.num_classes is None


@pytest.mark.parametrize(
    "x, y, kwargs, needle",
    [
        (np.zeros((0, 3), np.float32), np.zeros(0, np.int32), {"num_classes": 2}, "empty"),
        (
            np.zeros((5, 3), np.float32),
            np.zeros(4, np.int32),
            {"num_classes": 2},
            "x has 5 examples but y has 4",
        ),
        (np.zeros((5, 3), np.uint8), np.zeros(5, np.int32), {"num_classes": 2}, "x has dtype uint8"),
        (np.zeros(5, np.float32), np.zeros(5, np.int32), {"num_classes": 2}, "x[:, None]"),
        (np.zeros((5, 3), np.float32), np.zeros(5, np.float32), {"num_classes": 2}, "integer class ids"),
        (np.zeros((5, 3), np.float32), np.zeros((5, 2), np.int32), {"num_classes": 2}, "argmax"),
        (np.zeros((5, 3), np.float32), np.zeros(5, np.float32), {}, "y[:, None]"),
        (
            np.zeros((5, 3), np.float32),
            np.zeros((5, 1), np.int64),
            {"task": "regression"},
            "regression targets",
        ),
        (np.zeros((5, 3), np.float32), np.array([0, 1, 2, 1, 0], np.int32), {"num_classes": 2}, "y[2] = 2"),
        (np.zeros((5, 3), np.float32), np.array([0, -1, 0, 1, 0], np.int32), {"num_classes": 2}, "y[1] = -1"),
        (np.zeros((5, 3), np.float32), np.zeros(5, np.int32), {"num_classes": 0}, "positive integer"),
    ],
)
def test_each_problem_has_its_own_message(x, y, kwargs, needle):
    with pytest.raises(FnlearnError, match=None) as info:
        check_dataset(x, y, **kwargs)
    assert needle in str(info.value)


def test_nan_and_inf_are_counted_and_located():
    x, y = _xy()
    x[3, 2], x[4, 0] = np.nan, np.inf
    with pytest.raises(FnlearnError) as info:
        check_dataset(x, y, num_classes=2)
    message = str(info.value)
    assert "x contains 2 NaN/Inf" in message and "row 3, column 2" in message and "np.isfinite" in message
    with pytest.raises(FnlearnError, match="y contains 1 NaN/Inf value"):
        check_dataset(np.zeros((3, 1), np.float32), np.array([[0.0], [np.nan], [1.0]], np.float32))


def test_out_of_range_labels_report_count_and_first_index():
    y = np.array([0, 3, 1, 7, 2], np.int32)
    with pytest.raises(FnlearnError) as info:
        check_dataset(np.zeros((5, 2), np.float32), y, num_classes=3)
    assert "2 label(s) lie outside [0, 3), the first is y[1] = 3" in str(info.value)


def test_dataset_construction_validates_metadata_and_exact_dtypes():
    x, y = _xy(4, 4)
    with pytest.raises(FnlearnError, match="from_arrays"):
        Dataset(x.astype(np.float64), y, task="classification", num_classes=2)
    with pytest.raises(FnlearnError, match="needs num_classes"):
        Dataset(x, y, task="classification")
    with pytest.raises(FnlearnError, match="not one of"):
        Dataset(x, y, task="clasification", num_classes=2)
    with pytest.raises(FnlearnError, match="image_shape"):
        Dataset(x, y, task="classification", num_classes=2, image_shape=(3, 3))
    with pytest.raises(FnlearnError, match="one name per column"):
        Dataset(x, y, task="classification", num_classes=2, feature_names=("a",))
    ds = Dataset(x, y, task="classification", num_classes=2, image_shape=(2, 2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"


def test_from_arrays_rejects_non_integral_and_text_labels():
    with pytest.raises(FnlearnError, match="class ids must be integers 0..K-1, got 0.5 at index 1"):
        from_arrays(np.zeros((3, 1)), np.array([0.0, 0.5, 1.0]), task="classification")
    with pytest.raises(FnlearnError, match="expected numbers"):
        from_arrays(np.zeros((2, 1)), np.array(["cat", "dog"]), task="classification")
    with pytest.raises(FnlearnError, match="task"):
        from_arrays(np.zeros((2, 1)), np.zeros(2), task="regresion")


def test_take_keeps_metadata():
    ds = from_arrays(
        np.arange(12.0).reshape(6, 2),
        np.arange(6) % 3,
        task="classification",
        name="t",
        feature_names=["a", "b"],
    )
    part = ds.take([4, 1])
    np.testing.assert_array_equal(part.x, [[8.0, 9.0], [2.0, 3.0]])
    np.testing.assert_array_equal(part.y, [1, 1])
    assert (part.name, part.num_classes, part.feature_names) == ("t", 3, ("a", "b"))
