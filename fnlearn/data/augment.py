"""Data augmentation as pure jax functions, applied on the device inside the compiled train step.

The notes' regulariser for small data: enlarge the training set with transformed copies (added
noise, shifts, crops, flips). Every function here takes a PRNG key and a batch ``x`` and returns a
batch of the same shape and dtype. Image transforms take images of ``image_shape`` ((H, W) or
(H, W, C), as ``Dataset.image_shape`` states) either as they are, x [B, *image_shape] (the
``image`` layout), or as flat rows x [B, H·W·C] (row-major, the ``flat`` layout, viewed as images
and flattened back); they draw one transform per example, move whole pixels (all C channels
together) and give the same images in both layouts. They work under ``jit`` and ``vmap``; the same
key gives the same result.

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

from fnlearn import checks
from fnlearn.errors import FnlearnError

__all__ = ["gaussian_noise", "random_shift", "random_crop", "random_flip", "make_augment", "identity"]


def gaussian_noise(key: jax.Array, x: jax.Array, std: float) -> jax.Array:
    """x̃ = x + std·ε with ε ~ N(0, I) of x's shape and dtype."""
    return x + std * jax.random.normal(key, x.shape, x.dtype)


def random_shift(key: jax.Array, x: jax.Array, image_shape: Sequence[int], max_shift: int) -> jax.Array:
    """Shift each image circularly by (dy, dx) ~ U{−max_shift..max_shift}²; pixels wrap around."""
    height, width = _image_size(x, image_shape)
    dy, dx = _offsets(key, x.shape[0], max_shift)
    rows, cols = _grid(height, width)
    return _gather(x, image_shape, (rows - dy) % height, (cols - dx) % width)


def random_crop(key: jax.Array, x: jax.Array, image_shape: Sequence[int], padding: int) -> jax.Array:
    """Zero-pad each image by ``padding`` on every side and crop back to H×W at a random offset.

    Cropping the padded image at offset (p − dy, p − dx) is the shift x̃[r, c] = x[r − dy, c − dx]
    with zeros where r − dy or c − dx falls outside the image, dy, dx ~ U{−p..p}; computed that way.
    """
    height, width = _image_size(x, image_shape)
    dy, dx = _offsets(key, x.shape[0], padding)
    rows, cols = _grid(height, width)
    rows, cols = rows - dy, cols - dx
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    return _gather(x, image_shape, jnp.clip(rows, 0, height - 1), jnp.clip(cols, 0, width - 1), inside)


def random_flip(key: jax.Array, x: jax.Array, image_shape: Sequence[int]) -> jax.Array:
    """Mirror each image left-right with probability ½: x̃[r, c] = x[r, W − 1 − c]."""
    height, width = _image_size(x, image_shape)
    flip = jax.random.bernoulli(key, 0.5, (x.shape[0], 1, 1))
    rows, cols = _grid(height, width)
    return _gather(
        x,
        image_shape,
        jnp.broadcast_to(rows, flip.shape[:1] + rows.shape[1:]),
        jnp.where(flip, width - 1 - cols, cols),
    )


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


def _image_size(x: jax.Array, image_shape: Sequence[int]) -> tuple[int, int]:
    """(H, W) of ``image_shape``, after checking that x holds such images, or flat rows of them."""
    image_shape = tuple(int(s) for s in image_shape)
    if len(image_shape) not in (2, 3):
        raise FnlearnError(f"augment: image_shape {image_shape}, expected (H, W) or (H, W, C).")
    flat = x.ndim == 2 and x.shape[1] == int(np.prod(image_shape))
    if not flat and tuple(x.shape[1:]) != image_shape:
        raise FnlearnError(
            f"augment: x has shape {x.shape}, expected flat rows [B, {int(np.prod(image_shape))}] or images "
            f"[B, {', '.join(map(str, image_shape))}] for images of shape {image_shape}. Check the dataset's "
            f"image_shape."
        )
    return image_shape[0], image_shape[1]


def _offsets(key: jax.Array, batch: int, amount: int) -> tuple[jax.Array, jax.Array]:
    """Per-example (dy, dx), each uniform on {−amount, ..., amount}, shaped [B, 1, 1] to broadcast."""
    d = jax.random.randint(key, (2, batch, 1, 1), -amount, amount + 1)
    return d[0], d[1]


def _grid(height: int, width: int) -> tuple[jax.Array, jax.Array]:
    """Row and column index of every pixel, shaped [1, H, 1] and [1, 1, W]."""
    return jnp.arange(height)[None, :, None], jnp.arange(width)[None, None, :]


def _gather(
    x: jax.Array, image_shape: Sequence[int], rows: jax.Array, cols: jax.Array, keep=None
) -> jax.Array:
    """x̃[b, r, c, :] = x[b, rows[b, r, c], cols[b, r, c], :] (0 where ``keep`` is False): one gather."""
    batch, (height, width) = x.shape[0], tuple(image_shape[:2])
    channels = int(np.prod(tuple(image_shape)[2:], dtype=np.int64))
    source = jnp.broadcast_to(rows * width + cols, (batch, height, width)).reshape(batch, height * width, 1)
    out = jnp.take_along_axis(x.reshape(batch, height * width, channels), source, axis=1)
    if keep is not None:
        out = jnp.where(jnp.broadcast_to(keep, (batch, height, width)).reshape(batch, -1, 1), out, 0)
    return out.reshape(x.shape)


def _check_options(image_shape, noise_std, max_shift, crop_padding, flip) -> None:
    for name, value in (("max_shift", max_shift), ("crop_padding", crop_padding)):
        checks.nonneg_int("augment", name, value, "It is a whole number of pixels >= 0 (0 = off).")
    checks.nonneg("augment", "noise_std", noise_std, "It is a standard deviation >= 0 (0 = off).")
    checks.boolean("augment", "flip", flip)
    if (max_shift or crop_padding or flip) and image_shape is None:
        raise FnlearnError(
            "augment: shifts, crops and flips act on images, but no image_shape was given; pass the dataset's "
            "image_shape (e.g. (8, 8) for digits) or switch them off for non-image data."
        )
    if image_shape is not None:
        shape = tuple(image_shape) if isinstance(image_shape, (tuple, list)) else ()
        if len(shape) not in (2, 3) or any(not checks.is_integer(s) or s < 1 for s in shape):
            raise FnlearnError(
                f"augment: image_shape {image_shape!r}, expected (H, W) or (H, W, C) positive integers."
            )
        for name, value in (("max_shift", max_shift), ("crop_padding", crop_padding)):
            if value >= min(shape[:2]):
                raise FnlearnError(
                    f"augment: {name}={value} is not smaller than the image ({shape[0]}x{shape[1]}); "
                    f"use a few pixels, e.g. {name}=2."
                )
