"""Data augmentation as pure jax functions, applied on the device inside the compiled train step.

The notes' regulariser for small data: enlarge the training set with transformed copies (added
noise, shifts, crops, flips). Every function here takes a PRNG key and a batch ``x`` of flat rows
[B, F] and returns a batch of the same shape and dtype; image transforms view each row as an image
of ``image_shape`` ((H, W) or (H, W, C), row-major, as ``Dataset.image_shape`` states), draw one
transform per example, and flatten back. They work under ``jit`` and ``vmap``; the same key gives
the same result.

=================== ======================================================================
gaussian_noise      x̃ = x + std·ε, ε ~ N(0, I)
random_shift        circular shift by (dy, dx), each uniform in {−max_shift, ..., max_shift}:
                    x̃[r, c] = x[(r − dy) mod H, (c − dx) mod W], a permutation of the pixels
random_crop         pad with `padding` zeros on every side, crop H×W at a uniform offset:
                    a shift by up to `padding` pixels that fills the uncovered border with 0
                    (after standardisation 0 is each pixel's training mean)
random_flip         with probability ½, mirror left-right: x̃[r, c] = x[r, W − 1 − c]
=================== ======================================================================

``make_augment(...)`` composes the switched-on transforms (crop, shift, flip, then noise) into one
``fn(key, x) -> x``; with nothing switched on it returns ``x`` unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn.errors import FnlearnError

__all__ = ["gaussian_noise", "random_shift", "random_crop", "random_flip", "make_augment", "identity"]


def gaussian_noise(key: jax.Array, x: jax.Array, std: float) -> jax.Array:
    """x̃ = x + std·ε with ε ~ N(0, I) of x's shape and dtype."""
    return x + std * jax.random.normal(key, x.shape, x.dtype)


def random_shift(key: jax.Array, x: jax.Array, image_shape: Sequence[int], max_shift: int) -> jax.Array:
    """Shift each image circularly by (dy, dx) ~ U{−max_shift..max_shift}²; pixels wrap around."""
    images = _as_images(x, image_shape)
    shifts = jax.random.randint(key, (images.shape[0], 2), -max_shift, max_shift + 1)
    rolled = jax.vmap(lambda image, s: jnp.roll(image, (s[0], s[1]), axis=(0, 1)))(images, shifts)
    return rolled.reshape(x.shape)


def random_crop(key: jax.Array, x: jax.Array, image_shape: Sequence[int], padding: int) -> jax.Array:
    """Zero-pad each image by ``padding`` on every side and crop back to H×W at a random offset."""
    images = _as_images(x, image_shape)
    height, width = images.shape[1:3]
    pad = [(0, 0), (padding, padding), (padding, padding)] + [(0, 0)] * (images.ndim - 3)
    padded = jnp.pad(images, pad)
    offsets = jax.random.randint(key, (images.shape[0], 2), 0, 2 * padding + 1)

    def crop(image, offset):
        start = (offset[0], offset[1]) + (0,) * (image.ndim - 2)
        return jax.lax.dynamic_slice(image, start, (height, width) + image.shape[2:])

    return jax.vmap(crop)(padded, offsets).reshape(x.shape)


def random_flip(key: jax.Array, x: jax.Array, image_shape: Sequence[int]) -> jax.Array:
    """Mirror each image left-right with probability ½: x̃[r, c] = x[r, W − 1 − c]."""
    images = _as_images(x, image_shape)
    flip = jax.random.bernoulli(key, 0.5, (images.shape[0],))
    flip = flip.reshape((-1,) + (1,) * (images.ndim - 1))
    return jnp.where(flip, images[:, :, ::-1], images).reshape(x.shape)


def identity(key: jax.Array, x: jax.Array) -> jax.Array:
    """No augmentation: returns ``x``; the key is unused."""
    del key
    return x


def make_augment(
    *,
    image_shape: Sequence[int] | None = None,
    noise_std: float = 0.0,
    max_shift: int = 0,
    crop_padding: int = 0,
    flip: bool = False,
) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """One ``fn(key, x) -> x`` applying, in order, random_crop, random_shift, random_flip, noise.

    A transform is on when its option is: ``crop_padding > 0``, ``max_shift > 0``, ``flip``,
    ``noise_std > 0``. Image transforms need ``image_shape``. Nothing on gives ``identity``.
    """
    _check_options(image_shape, noise_std, max_shift, crop_padding, flip)
    steps = []
    if crop_padding:
        steps.append(lambda k, x: random_crop(k, x, image_shape, crop_padding))
    if max_shift:
        steps.append(lambda k, x: random_shift(k, x, image_shape, max_shift))
    if flip:
        steps.append(lambda k, x: random_flip(k, x, image_shape))
    if noise_std:
        steps.append(lambda k, x: gaussian_noise(k, x, noise_std))
    if not steps:
        return identity

    def augment(key: jax.Array, x: jax.Array) -> jax.Array:
        for step, step_key in zip(steps, jax.random.split(key, len(steps))):
            x = step(step_key, x)
        return x

    return augment


def _as_images(x: jax.Array, image_shape: Sequence[int]) -> jax.Array:
    image_shape = tuple(int(s) for s in image_shape)
    if len(image_shape) not in (2, 3):
        raise FnlearnError(f"augment: image_shape {image_shape}, expected (H, W) or (H, W, C).")
    if x.ndim != 2 or x.shape[1] != int(np.prod(image_shape)):
        raise FnlearnError(
            f"augment: x has shape {x.shape}, expected flat rows [B, {int(np.prod(image_shape))}] for images of "
            f"shape {image_shape}. Check the dataset's image_shape."
        )
    return x.reshape((x.shape[0],) + image_shape)


def _check_options(image_shape, noise_std, max_shift, crop_padding, flip) -> None:
    for name, value in (("max_shift", max_shift), ("crop_padding", crop_padding)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise FnlearnError(f"augment: {name}={value!r}, expected a whole number of pixels >= 0 (0 = off).")
    if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float, np.floating)) or not noise_std >= 0:
        raise FnlearnError(f"augment: noise_std={noise_std!r}, expected a standard deviation >= 0 (0 = off).")
    if not isinstance(flip, bool):
        raise FnlearnError(f"augment: flip={flip!r}, expected true or false.")
    if (max_shift or crop_padding or flip) and image_shape is None:
        raise FnlearnError(
            "augment: shifts, crops and flips act on images, but no image_shape was given; pass the dataset's "
            "image_shape (e.g. (8, 8) for digits) or switch them off for non-image data."
        )
    if image_shape is not None:
        shape = tuple(image_shape)
        if len(shape) not in (2, 3) or any(not isinstance(s, (int, np.integer)) or s < 1 for s in shape):
            raise FnlearnError(f"augment: image_shape {image_shape!r}, expected (H, W) or (H, W, C) positive integers.")
        for name, value in (("max_shift", max_shift), ("crop_padding", crop_padding)):
            if value >= min(shape[:2]):
                raise FnlearnError(
                    f"augment: {name}={value} is not smaller than the image ({shape[0]}x{shape[1]}); "
                    f"use a few pixels, e.g. {name}=2."
                )
