"""Pooling over the spatial axes of channels-last examples, and flattening/reshaping layers.

A pooling layer reduces every window of its input (``window`` taps per spatial axis, moved by
``strides``, default the window: non-overlapping) to one value per channel; padding as in
``fnlearn.nn.windows``. Inputs have one leading batch axis: x of shape (batch, *spatial, C).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from fnlearn.errors import FnlearnError
from fnlearn.nn.base import Layer, per_axis, spatial_rank
from fnlearn.nn.windows import check_padding, explicit_pads, output_sizes

__all__ = ["avg_pool", "flatten", "global_avg_pool", "max_pool", "reshape"]


def _pool(name: str, window, strides, padding, reduce):
    """A pooling layer; ``reduce(x, window, strides, pads)`` works on (batch, *spatial, C) arrays."""
    padding = check_padding(name, padding)

    def geometry(spatial):
        rank = len(spatial)
        w = per_axis(name, "window", window, rank)
        s = per_axis(name, "strides", window if strides is None else strides, rank)
        return w, s, explicit_pads(name, padding, spatial, w, s, (1,) * rank)

    def init(key, in_shape):
        del key
        rank = spatial_rank(name, in_shape)
        w, s, pads = geometry(in_shape[:-1])
        _check_pads_below_window(name, w, pads)
        return (*output_sizes(name, in_shape[:-1], w, s, (1,) * rank, pads), in_shape[-1]), {}, {}

    def apply(params, state, x, *, train=False, key=None):
        del params, train, key
        w, s, pads = geometry(x.shape[1:-1])
        return reduce(x, w, s, pads), state

    return Layer(name, init, apply)


def _check_pads_below_window(name: str, window, pads) -> None:
    """Padding of at least a window on one side would make windows of padding only (−∞ or 0/0)."""
    for k, (lo, hi) in zip(window, pads, strict=True):
        if max(lo, hi) >= k:
            raise FnlearnError(
                f"{name}: padding ({lo}, {hi}) along an axis is not smaller than the window {k} there, "
                f'so some windows would hold padding only. Use padding < window, or padding="SAME".'
            )


def _reduce_window(x, init_value: float, op, window, strides, pads):
    """``lax.reduce_window`` over the spatial axes of (batch, *spatial, C).

    ``init_value`` is a Python number, so that lax recognises max/add and can differentiate them.
    """
    return jax.lax.reduce_window(
        x, init_value, op, (1, *window, 1), (1, *strides, 1), ((0, 0), *pads, (0, 0))
    )


def max_pool(window, strides=None, padding="VALID") -> Layer:
    """y = max over each window; padded positions are −∞, so they never win (as flax)."""

    def reduce(x, window, strides, pads):
        return _reduce_window(x, -jnp.inf, jax.lax.max, window, strides, pads)

    return _pool("max_pool", window, strides, padding, reduce)


def avg_pool(window, strides=None, padding="VALID", count_include_pad: bool = True) -> Layer:
    """y = mean over each window.

    As flax's ``avg_pool`` (``count_include_pad=True``, the default), padded positions count as
    zeros: every window sum is divided by Π window, so windows at a "SAME"-padded border average in
    zeros. With ``count_include_pad=False`` the sum is divided by the number of real entries.
    """

    def reduce(x, window, strides, pads):
        total = _reduce_window(x, 0.0, jax.lax.add, window, strides, pads)
        if count_include_pad:
            return total / math.prod(window)
        ones = jnp.ones((1, *x.shape[1:-1], 1), x.dtype)
        return total / _reduce_window(ones, 0.0, jax.lax.add, window, strides, pads)

    return _pool("avg_pool", window, strides, padding, reduce)


def global_avg_pool() -> Layer:
    """(*spatial, C) → (C,): the mean of each channel over every spatial position."""

    def init(key, in_shape):
        del key
        spatial_rank("global_avg_pool", in_shape)
        return (in_shape[-1],), {}, {}

    def apply(params, state, x, *, train=False, key=None):
        del params, train, key
        return jnp.mean(x, axis=tuple(range(1, x.ndim - 1))), state

    return Layer("global_avg_pool", init, apply)


def flatten() -> Layer:
    """Each example as one vector: (batch, d₁, …, d_k) → (batch, d₁·…·d_k)."""

    def init(key, in_shape):
        del key
        return (math.prod(in_shape),), {}, {}

    def apply(params, state, x, *, train=False, key=None):
        del params, train, key
        return x.reshape(x.shape[0], -1), state

    return Layer("flatten", init, apply)


def _resolve(shape: tuple[int, ...], size: int, in_shape) -> tuple[int, ...]:
    """``shape`` with its one −1 (if any) replaced so that the product is ``size``."""
    known = math.prod(d for d in shape if d != -1)
    if shape.count(-1) == 1 and known and size % known == 0:
        shape = tuple(size // known if d == -1 else d for d in shape)
    if math.prod(shape) != size or min(shape, default=1) < 1:
        raise FnlearnError(
            f"reshape: examples of shape {tuple(in_shape)} ({size} entries) cannot be reshaped to "
            f"{shape}. Give a shape with {size} entries, at most one of them -1."
        )
    return shape


def reshape(shape) -> Layer:
    """Each example reshaped to ``shape`` (per example; one entry may be −1)."""
    shape = tuple(int(d) for d in shape)

    def init(key, in_shape):
        del key
        return _resolve(shape, math.prod(in_shape), in_shape), {}, {}

    def apply(params, state, x, *, train=False, key=None):
        del params, train, key
        return x.reshape(x.shape[0], *_resolve(shape, math.prod(x.shape[1:]), x.shape[1:])), state

    return Layer("reshape", init, apply)
