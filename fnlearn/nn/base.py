"""The two records every other ``fnlearn.nn`` module builds on: ``Layer`` and ``Model``.

A **layer** is a record of two pure functions (jax ``example_libraries/stax`` style):

* ``init(key, in_shape) -> (out_shape, params, state)``; shapes are per example (no batch axis);
* ``apply(params, state, x, *, train=False, key=None) -> (y, state)``; ``x`` has a leading batch axis.

A **model** is a layer bound to its input shape: ``Model(init, apply, input_shape, output_shape)``
with ``init(key) -> (params, state)``. ``build(layer, input_shape)`` makes one. This module also
holds the small argument checks the layers share (positive ints, per-axis tuples).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn import checks
from fnlearn.checks import positive_int
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


def build(layer: Layer, input_shape: int | Sequence[int], *, fix: str = "smaller layer widths") -> Model:
    """Bind ``layer`` to a per-example ``input_shape`` (an int means a feature vector).

    The parameters' size is found without allocating them (``jax.eval_shape``) and a model larger
    than ``fnlearn.checks.memory_limit()`` is refused before ``init`` could try (``fix`` says how).
    """
    if not isinstance(layer, Layer):
        raise FnlearnError(
            f"build: layer must be a fnlearn.nn.Layer such as dense(10), got {checks.show(layer)}."
        )
    shape = [input_shape] if checks.is_integer(input_shape) else input_shape
    if not isinstance(shape, (tuple, list)) or not shape:
        raise FnlearnError(
            f"build: input_shape must be a positive int or a tuple of them, got {checks.show(input_shape)}."
        )
    input_shape = tuple(positive_int("build", "every entry of input_shape", s) for s in shape)
    output_shape = _out_shape(layer, input_shape, fix)

    def init(key):
        _, params, state = layer.init(key, input_shape)
        return params, state

    def apply(params, state, x, *, train=False, key=None):
        x = jnp.asarray(x)
        if x.shape[-len(input_shape) :] != input_shape:
            raise FnlearnError(
                f"model input has shape {x.shape}, but the model was built for examples of shape "
                f"{input_shape} (a batch of shape (batch, {', '.join(map(str, input_shape))})). "
                "Check the data's feature width against the model's first size."
            )
        return layer.apply(params, state, x, train=train, key=key)

    return Model(init, apply, input_shape, output_shape, layer)


def _out_shape(layer: Layer, input_shape: Shape, fix: str) -> Shape:
    """The output shape, found without allocating parameters (shapes are static Python ints);
    refuses parameters and state that would not fit (``checks.check_bytes``)."""
    box = {}

    def shapes_only(key):
        out_shape, params, state = layer.init(key, input_shape)
        box["out"] = out_shape
        return params, state

    leaves = jax.tree.leaves(jax.eval_shape(shapes_only, jax.random.key(0)))
    count = sum(math.prod(leaf.shape) for leaf in leaves)
    nbytes = sum(math.prod(leaf.shape) * np.dtype(leaf.dtype).itemsize for leaf in leaves)
    checks.check_bytes(layer.name, f"its {count} parameters and state values", nbytes, f"Use {fix}.")
    return tuple(box["out"])


def check_layer(owner: str, what: str, layer, example: str) -> Layer:
    """``layer`` if it is a ``Layer``, else the error naming ``owner`` and ``what``."""
    if not isinstance(layer, Layer):
        raise FnlearnError(f"{owner}: {what} must be a Layer such as {example}, got {checks.show(layer)}.")
    return layer


def check_inits(owner: str, **initialisers) -> None:
    """Each given initialiser is callable as ``init(key, shape, dtype)`` (or None)."""
    for name, value in initialisers.items():
        if value is not None and not callable(value):
            raise FnlearnError(
                f"{owner}: {name} must be an initialiser init(key, shape, dtype) such as fnlearn.init.he_normal(), "
                f"or None, got {checks.show(value)}."
            )


# --------------------------------------------------------------------------------------------
# argument checks shared by the layers


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
