"""The two records every other ``fnlearn.nn`` module builds on: ``Layer`` and ``Model``.

A **layer** is a record of two pure functions (jax ``example_libraries/stax`` style):

* ``init(key, in_shape) -> (out_shape, params, state)``; shapes are per example (no batch axis);
* ``apply(params, state, x, *, train=False, key=None) -> (y, state)``; ``x`` has a leading batch axis.

A **model** is a layer bound to its input shape: ``Model(init, apply, input_shape, output_shape)``
with ``init(key) -> (params, state)``. ``build(layer, input_shape)`` makes one. This module also
holds the small argument checks the layers share (positive ints, per-axis tuples).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnlearn.errors import FnlearnError

__all__ = ["Layer", "Model", "Shape", "build"]

Shape = tuple[int, ...]


class Layer(NamedTuple):
    """Two pure functions and a name; ``sublayers`` lists the children of a combinator."""

    name: str
    init: Callable[[jax.Array, Shape], tuple[Shape, Any, Any]]
    apply: Callable[..., tuple[jax.Array, Any]]
    sublayers: tuple = ()


class Model(NamedTuple):
    """A layer bound to its per-example input shape: ``init(key) -> (params, state)``."""

    init: Callable[[jax.Array], tuple[Any, Any]]
    apply: Callable[..., tuple[jax.Array, Any]]
    input_shape: Shape
    output_shape: Shape
    layer: Layer


def build(layer: Layer, input_shape: int | Sequence[int]) -> Model:
    """Bind ``layer`` to a per-example ``input_shape`` (an int means a feature vector)."""
    input_shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    output_shape = _out_shape(layer, input_shape)

    def init(key):
        _, params, state = layer.init(key, input_shape)
        return params, state

    def apply(params, state, x, *, train=False, key=None):
        x = jnp.asarray(x)
        if x.shape[-len(input_shape):] != input_shape:
            raise FnlearnError(
                f"model input has shape {x.shape}, but the model was built for examples of shape "
                f"{input_shape} (a batch of shape (batch, {', '.join(map(str, input_shape))})). "
                "Check the data's feature width against the model's first size."
            )
        return layer.apply(params, state, x, train=train, key=key)

    return Model(init, apply, input_shape, output_shape, layer)


def _out_shape(layer: Layer, input_shape: Shape) -> Shape:
    """The output shape, found without allocating parameters (shapes are static Python ints)."""
    box = {}

    def shapes_only(key):
        out_shape, params, state = layer.init(key, input_shape)
        box["out"] = out_shape
        return params, state

    jax.eval_shape(shapes_only, jax.random.key(0))
    return tuple(box["out"])


# --------------------------------------------------------------------------------------------
# argument checks shared by the layers


def positive_int(layer: str, what: str, value) -> int:
    """``value`` as an int if it is a positive integer (numpy's too), else the error naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise FnlearnError(f"{layer}: {what} must be a positive int, got {value!r}.")
    return int(value)


def per_axis(layer: str, what: str, value, rank: int) -> tuple[int, ...]:
    """An int broadcast to ``rank`` axes, or a sequence of ``rank`` positive ints, as a tuple."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,) * rank
    if not isinstance(value, Sequence):
        raise FnlearnError(f"{layer}: {what} must be an int or a sequence of {rank} ints, got {value!r}.")
    value = tuple(value)
    if len(value) != rank:
        raise FnlearnError(
            f"{layer}: {what}={value} has {len(value)} entries but the input has {rank} spatial "
            f"axes. Give one int (used for every axis) or {rank} ints."
        )
    return tuple(positive_int(layer, what, v) for v in value)


def spatial_rank(layer: str, in_shape: Shape, ranks=(1, 2, 3)) -> int:
    """The number of spatial axes of a channels-last example ``(*spatial, channels)``."""
    rank = len(in_shape) - 1
    if rank not in ranks:
        raise FnlearnError(
            f"{layer}: examples must be channels-last with {' or '.join(map(str, ranks))} spatial "
            f"axes, e.g. images (H, W, C) or sequences (T, C); got shape {tuple(in_shape)}. "
            "Add a channel axis with reshape((..., 1)) for single-channel data."
        )
    return rank
