"""Augmentation: shapes, determinism per key, exact pixel permutations against numpy, noise std."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from fnlearn.data import augment
from fnlearn.errors import FnlearnError

SHAPE = (5, 7)


def batch(n=64, shape=SHAPE, seed=0):
    """Rows of distinct pixel values, so any moved pixel can be traced."""
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.permutation(n * int(np.prod(shape))).reshape(n, -1).astype(np.float32) + 1.0)


def numpy_candidates(image, kind, amount):
    """Every image the transform may produce for one input, computed with numpy."""
    if kind == "flip":
        return [image, image[:, ::-1]]
    if kind == "shift":
        offsets = range(-amount, amount + 1)
        return [np.roll(image, (dy, dx), axis=(0, 1)) for dy, dx in itertools.product(offsets, offsets)]
    padded = np.pad(image, [(amount, amount), (amount, amount)] + [(0, 0)] * (image.ndim - 2))
    h, w = image.shape[:2]
    offsets = range(2 * amount + 1)
    return [padded[oy : oy + h, ox : ox + w] for oy, ox in itertools.product(offsets, offsets)]


@pytest.mark.parametrize(
    "kind, fn, amount",
    [
        ("flip", lambda k, x, s: augment.random_flip(k, x, s), 0),
        ("shift", lambda k, x, s: augment.random_shift(k, x, s, 2), 2),
        ("crop", lambda k, x, s: augment.random_crop(k, x, s, 2), 2),
    ],
)
@pytest.mark.parametrize("shape", [SHAPE, (4, 6, 3)])
def test_image_transforms_produce_one_of_the_allowed_images(kind, fn, amount, shape):
    x = batch(64, shape)
    out = jax.jit(fn, static_argnums=2)(jax.random.key(0), x, shape)
    chex.assert_shape(out, x.shape)
    chex.assert_type(out, x.dtype)
    chosen = []
    for row_in, row_out in zip(np.asarray(x), np.asarray(out)):
        candidates = numpy_candidates(row_in.reshape(shape), kind, amount)
        matches = [i for i, c in enumerate(candidates) if np.array_equal(c.reshape(-1), row_out)]
        assert matches  # several match when a shift wraps all the way round
        chosen.append(matches[0])
        if kind != "crop":  # flips and circular shifts move every pixel, losing none
            np.testing.assert_array_equal(np.sort(row_out), np.sort(row_in))
    assert len(set(chosen)) > 1  # the transform varies across the batch


def test_shift_covers_every_offset_and_crop_fills_zeros():
    x = batch(300, (6, 6), seed=1)
    out = np.asarray(jax.jit(augment.random_shift, static_argnums=(2, 3))(jax.random.key(3), x, (6, 6), 1))
    seen = set()
    for row_in, row_out in zip(np.asarray(x), out):
        for i, c in enumerate(numpy_candidates(row_in.reshape(6, 6), "shift", 1)):
            if np.array_equal(c.reshape(-1), row_out):
                seen.add(i)
    assert seen == set(range(9))
    cropped = np.asarray(jax.jit(augment.random_crop, static_argnums=(2, 3))(jax.random.key(4), x, (6, 6), 2))
    assert (cropped == 0).any() and set(np.unique(cropped)) - {0.0} <= set(np.asarray(x).ravel())


def test_same_key_same_result_and_different_keys_differ():
    fn = augment.make_augment(image_shape=SHAPE, noise_std=0.1, max_shift=1, crop_padding=1, flip=True)
    x, jitted = batch(), jax.jit(fn)
    a, b = jitted(jax.random.key(1), x), jitted(jax.random.key(1), x)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, jitted(jax.random.key(2), x))


def test_vmap_over_keys_matches_separate_calls():
    fn = jax.jit(augment.make_augment(image_shape=SHAPE, flip=True))
    x, keys = batch(8), jax.random.split(jax.random.key(0), 3)
    per_key = jax.vmap(fn, in_axes=(0, None))(keys, x)
    chex.assert_shape(per_key, (3,) + x.shape)
    for i in range(3):
        np.testing.assert_array_equal(per_key[i], fn(keys[i], x))


def test_gaussian_noise_has_the_stated_std():
    x = jnp.full((200, 500), 3.0, jnp.float32)
    noise = np.asarray(augment.gaussian_noise(jax.random.key(0), x, 0.25) - x).ravel()
    assert scipy.stats.kstest(noise, "norm", args=(0.0, 0.25)).pvalue > 1e-3
    np.testing.assert_allclose(noise.std(), 0.25, rtol=0.01)


def test_nothing_switched_on_is_the_identity():
    fn = augment.make_augment()
    x = batch()
    assert fn is augment.identity and fn(jax.random.key(0), x) is x
    assert augment.make_augment(image_shape=SHAPE) is augment.identity


def test_composition_of_flip_and_shift_is_still_a_permutation():
    x = batch(32)
    fn = jax.jit(augment.make_augment(image_shape=SHAPE, max_shift=2, flip=True))
    out = np.asarray(fn(jax.random.key(5), x))
    np.testing.assert_array_equal(np.sort(out, axis=1), np.sort(np.asarray(x), axis=1))


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"max_shift": 1}, "no image_shape"),
        ({"flip": True}, "no image_shape"),
        ({"image_shape": SHAPE, "max_shift": -1}, ">= 0"),
        ({"image_shape": SHAPE, "crop_padding": 1.5}, "whole number"),
        ({"image_shape": SHAPE, "max_shift": 5}, "not smaller than the image"),
        ({"noise_std": -0.1}, "standard deviation >= 0"),
        ({"image_shape": SHAPE, "flip": "yes"}, "true or false"),
        ({"image_shape": (5,), "flip": True}, "\\(H, W\\)"),
    ],
)
def test_bad_options(kwargs, needle):
    with pytest.raises(FnlearnError, match=needle):
        augment.make_augment(**kwargs)


def test_wrong_row_width_is_reported_at_trace_time():
    fn = augment.make_augment(image_shape=(8, 8), flip=True)
    with pytest.raises(FnlearnError, match="expected flat rows \\[B, 64\\]"):
        jax.jit(fn)(jax.random.key(0), jnp.zeros((4, 60)))


def test_gradients_flow_through_the_transforms():
    """d/dx Σ aug(x): 1 for every pixel a permutation moves, 1 or 0 (kept or cropped away) for crops."""
    x, key = batch(16), jax.random.key(7)
    shift_flip = augment.make_augment(image_shape=SHAPE, max_shift=2, flip=True, noise_std=0.1)
    grad = jax.jit(jax.grad(lambda v: shift_flip(key, v).sum()))(x)
    np.testing.assert_array_equal(grad, np.ones(x.shape))
    crop = jax.jit(augment.make_augment(image_shape=SHAPE, crop_padding=2))
    grad, out = jax.jit(jax.grad(lambda v: crop(key, v).sum()))(x), np.asarray(crop(key, x))
    kept = np.isin(np.asarray(x), out)  # pixel values are distinct, so "kept" is exact
    np.testing.assert_array_equal(grad, kept.astype(np.float32))
