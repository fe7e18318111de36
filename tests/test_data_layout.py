"""Image-shaped data: the two layouts hold the same numbers, and every loader, split, standardisation
and augmentation gives the same result in both (checked against numpy)."""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_data_augment import numpy_candidates  # tests/ is on sys.path
from test_data_files import make_set

from fnlearn import data
from fnlearn.data import augment, from_arrays, layout, load, to_layout
from fnlearn.errors import FnlearnError


def images(n, shape, seed=0, classes=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    return x, (np.arange(n) % classes).astype(np.int32)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 5),
    shape=st.lists(st.integers(1, 4), min_size=2, max_size=3).map(tuple),
)
def test_image_layout_is_the_flat_rows_reshaped_and_back(n, shape):
    x, y = images(n, shape)
    flat = from_arrays(x.reshape(n, -1), y, task="classification", num_classes=3, image_shape=shape)
    image = to_layout(flat, "image")
    channels = shape if len(shape) == 3 else (*shape, 1)
    assert image.x.shape == (n, *channels) and image.image_shape == channels
    np.testing.assert_array_equal(image.x, x.reshape(n, *channels))  # numpy's row-major reshape
    np.testing.assert_array_equal(image.y, y)
    back = to_layout(image, "flat")
    np.testing.assert_array_equal(back.x, flat.x)
    assert back.image_shape == channels and to_layout(back, "flat") is back


def test_digits_as_images():
    flat, image = load("digits"), load("digits", layout="image")
    assert image.x.shape == (1797, 8, 8, 1) and image.image_shape == (8, 8, 1)
    assert (flat.x.shape, flat.image_shape) == ((1797, 64), (8, 8))  # the default is unchanged
    np.testing.assert_array_equal(image.x[..., 0], flat.x.reshape(-1, 8, 8))
    np.testing.assert_array_equal(image.y, flat.y)
    assert image.feature_names == flat.feature_names
    assert data.options("digits") == {"layout": "flat"}


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_images_as_28_by_28_by_1(tmp_path, name):
    arrays = make_set(tmp_path, n_train=3, n_test=2)
    ds = load(name, path=str(tmp_path), subset="all", verify=False, layout="image")
    assert ds.x.shape == (5, 28, 28, 1) and ds.image_shape == (28, 28, 1)
    expected = np.concatenate([arrays["train-images-idx3-ubyte"], arrays["t10k-images-idx3-ubyte"]])
    np.testing.assert_array_equal(ds.x[..., 0], expected / np.float32(255))


def test_npz_layouts(tmp_path):
    x, y = images(4, (3, 5))
    file = tmp_path / "a.npz"
    np.savez(file, x=x.reshape(4, -1), y=y)
    image = load("npz", path=str(file), image_shape=[3, 5], layout="image")
    assert image.x.shape == (4, 3, 5, 1) and image.image_shape == (3, 5, 1)
    np.testing.assert_array_equal(image.x[..., 0], x)
    np.savez(file, x=x, y=y)  # stored as images [n, H, W]
    assert load("npz", path=str(file)).x.shape == (4, 3, 5)  # no layout: as stored
    image = load("npz", path=str(file), layout="image")
    assert image.x.shape == (4, 3, 5, 1) and image.image_shape == (3, 5, 1)
    flat = load("npz", path=str(file), layout="flat")
    assert flat.x.shape == (4, 15) and flat.image_shape == (3, 5)
    np.testing.assert_array_equal(flat.x, x.reshape(4, -1))


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda: load("digits", layout="images"), r"layout='images'.*Did you mean 'image'"),
        (lambda: load("digits", layout=None), r"layout=None, expected 'flat'"),
        (
            lambda: to_layout(from_arrays(np.ones((2, 3)), [0, 1], task="classification"), "image"),
            r"has no image_shape",
        ),
        (
            lambda: to_layout(
                from_arrays(np.ones((2, 8)), [0, 1], task="classification", image_shape=(2, 2, 2)), "image"
            ),
            None,  # (H, W, C) is fine: no error
        ),
        (
            lambda: to_layout(
                from_arrays(np.ones((2, 8)), [0, 1], task="classification", image_shape=(8,)), "image"
            ),
            r"needs images of shape \(H, W\) or \(H, W, C\)",
        ),
        (
            lambda: from_arrays(np.ones((2, 2, 3)), [0, 1], task="classification", image_shape=(3, 2)),
            r"image_shape \(3, 2\) differs from the shape of an example of x, \(2, 3\)",
        ),
    ],
)
def test_layout_mistakes_are_one_line(call, needle):
    if needle is None:
        assert call().x.shape == (2, 2, 2, 2)
        return
    with pytest.raises(FnlearnError, match=needle) as error:
        call()
    assert "\n" not in str(error.value)


def test_npz_without_an_image_shape_cannot_be_images(tmp_path):
    file = tmp_path / "a.npz"
    np.savez(file, x=np.ones((3, 4)), y=np.arange(3))
    with pytest.raises(FnlearnError, match="layout='image' needs the shape of one image"):
        load("npz", path=str(file), layout="image")


def test_split_and_standardize_agree_across_layouts_and_with_numpy():
    x, y = images(60, (4, 5, 2), seed=3)
    x[:, 0, 0, 1] = 7.0  # a constant pixel: centred, not divided by ~0
    image = from_arrays(x, y, task="classification", image_shape=(4, 5, 2))
    flat = to_layout(image, "flat")
    raw = data.split(image, val=0.2, test=0.2, seed=1)
    parts_image, scaler_image = data.standardize(raw)
    parts_flat, scaler_flat = data.standardize(data.split(flat, val=0.2, test=0.2, seed=1))
    for a, b in zip(parts_image, parts_flat, strict=True):
        assert a.x.shape[1:] == (4, 5, 2) and b.x.shape[1:] == (40,)
        np.testing.assert_array_equal(a.y, b.y)
        np.testing.assert_allclose(a.x.reshape(len(a), -1), b.x, rtol=1e-6, atol=1e-6)
    train = raw.train.x
    mean, std = train.mean(0), train.std(0)  # per pixel and channel, over the training examples
    np.testing.assert_allclose(scaler_image.x_mean, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scaler_image.x_scale, np.where(std >= 1e-6, std, 1.0), rtol=1e-5)
    assert np.all(parts_image.train.x[:, 0, 0, 1] == 0.0)
    again = data.Standardizer.from_dict(scaler_image.to_dict())  # JSON round trip keeps the image shape
    np.testing.assert_array_equal(again.apply(raw.test).x, parts_image.test.x)


def test_per_channel_standardisation_against_numpy():
    x, y = images(30, (4, 5, 3), seed=5)
    x = x * np.array([1.0, 3.0, 0.5], np.float32) + np.array([2.0, -1.0, 0.0], np.float32)
    x[:, :, :, 2] = 0.25  # a constant channel: centred, not divided by ~0
    image = from_arrays(x, y, task="classification", image_shape=(4, 5, 3))
    raw = data.split(image, val=0.0, test=0.2, seed=0)
    parts, scaler = data.standardize(raw, per="channel")
    train = raw.train.x.astype(np.float64)
    mean, std = train.mean((0, 1, 2)), train.std((0, 1, 2))  # one μ, σ per channel
    assert scaler.x_mean.shape == (1, 1, 3)
    np.testing.assert_allclose(scaler.x_mean[0, 0], mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scaler.x_scale[0, 0], np.where(std >= 1e-6, std, 1.0), rtol=1e-5)
    expected = (raw.test.x - mean) / np.where(std >= 1e-6, std, 1.0)
    np.testing.assert_allclose(parts.test.x, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(parts.train.x.mean((0, 1, 2))[:2], 0.0, atol=1e-5)
    again = data.Standardizer.from_dict(scaler.to_dict())
    np.testing.assert_array_equal(again.apply(raw.test).x, parts.test.x)
    with pytest.raises(FnlearnError, match=r"per='channel' needs image-shaped x \[n, H, W, C\]"):
        data.standardize(data.split(to_layout(image, "flat"), val=0.0, test=0.2), per="channel")
    with pytest.raises(FnlearnError, match=r"per='pixel', expected 'feature'"):
        data.standardize(raw, per="pixel")


@pytest.mark.parametrize("shape", [(5, 7), (4, 6, 3)])
def test_augmentation_gives_the_same_images_in_both_layouts(shape):
    x, _ = images(16, shape, seed=2)
    fn = augment.make_augment(image_shape=shape, max_shift=2, crop_padding=1, flip=True)
    key = jax.random.key(7)
    as_images = np.asarray(fn(key, x))  # eager: faster than compiling twice
    as_rows = np.asarray(fn(key, x.reshape(16, -1)))
    assert as_images.shape == x.shape
    np.testing.assert_array_equal(as_images.reshape(16, -1), as_rows)


@pytest.mark.parametrize(
    "kind, fn",
    [
        ("flip", lambda k, x: augment.random_flip(k, x, (4, 6, 3))),
        ("shift", lambda k, x: augment.random_shift(k, x, (4, 6, 3), 1)),
        ("crop", lambda k, x: augment.random_crop(k, x, (4, 6, 3), 1)),
    ],
)
def test_image_shaped_batches_against_numpy(kind, fn):
    """Each output image is one numpy can make: [:, ::-1], np.roll, or np.pad then a slice."""
    x = np.random.default_rng(4).permutation(12 * 72).reshape(12, 4, 6, 3).astype(np.float32) + 1
    out = np.asarray(fn(jax.random.key(5), x))  # eager: one call each
    assert out.shape == x.shape
    for image_in, image_out in zip(x, out, strict=True):
        assert any(np.array_equal(c, image_out) for c in numpy_candidates(image_in, kind, 1))


def test_augmentation_refuses_a_batch_of_another_shape():
    fn = augment.make_augment(image_shape=(4, 4, 1), flip=True)
    with pytest.raises(
        FnlearnError,
        match=r"x has shape \(2, 4, 4, 2\), expected flat rows \[B, 16\] or images \[B, 4, 4, 1\]",
    ):
        fn(jax.random.key(0), np.zeros((2, 4, 4, 2), np.float32))


def test_layout_module_names_its_choices():
    assert layout.LAYOUTS == data.LAYOUTS == ("flat", "image")
