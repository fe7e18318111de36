"""Layers made of layers: ``serial`` (composition), ``residual`` (x + f(x)), ``remat`` (f, its
activations recomputed in the backward pass) and ``repeat`` (n copies of a block as one scan)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fnlearn.checks import positive_int
from fnlearn.errors import FnlearnError
from fnlearn.nn.base import Layer, check_layer

__all__ = ["remat", "repeat", "residual", "serial"]


def serial(*layers: Layer, name: str = "serial") -> Layer:
    """f_n ∘ … ∘ f_1. Parameters and state are lists with one entry per layer.

    In training each layer gets its own key, ``fold_in(key, i)``, so dropout masks differ by layer.
    """
    for i, layer in enumerate(layers):
        check_layer("serial", f"argument {i}", layer, "dense(10) or relu()")

    def init(key, in_shape):
        params, state, shape = [], [], tuple(in_shape)
        for i, layer in enumerate(layers):
            shape, p, s = layer.init(jax.random.fold_in(key, i), shape)
            params.append(p)
            state.append(s)
        return shape, params, state

    def apply(params, state, x, *, train=False, key=None):
        new_state = []
        for i, (layer, p, s) in enumerate(zip(layers, params, state, strict=True)):
            sub_key = None if key is None else jax.random.fold_in(key, i)
            x, s = layer.apply(p, s, x, train=train, key=sub_key)
            new_state.append(s)
        return x, new_state

    return Layer(name, init, apply, tuple(layers))


def residual(layer: Layer) -> Layer:
    """y = x + f(x): the block must keep the shape of its input."""
    check_layer("residual", "layer", layer, "serial(dense(8), relu())")

    def init(key, in_shape):
        out_shape, params, state = layer.init(key, in_shape)
        if tuple(out_shape) != tuple(in_shape):
            raise FnlearnError(
                f"residual({layer.name}) needs a block that keeps its input shape, but it maps "
                f"{tuple(in_shape)} to {tuple(out_shape)}. Give the block equal input and output widths."
            )
        return out_shape, params, state

    def apply(params, state, x, *, train=False, key=None):
        y, state = layer.apply(params, state, x, train=train, key=key)
        return x + y, state

    return Layer(f"residual({layer.name})", init, apply, (layer,))


def remat(layer: Layer) -> Layer:
    """The same function as ``layer``, its intermediate activations not stored for the backward
    pass but recomputed from its input when the gradient is taken (``jax.checkpoint``): memory
    for compute. Only the block's input is kept, so a deep model with each block wrapped keeps one
    activation per block instead of every one inside it. Values and gradients are unchanged."""
    check_layer("remat", "layer", layer, "serial(dense(8), relu())")

    def apply(params, state, x, *, train=False, key=None):
        def block(params, state, x, key):
            return layer.apply(params, state, x, train=train, key=key)

        return jax.checkpoint(block)(params, state, x, key)

    return Layer(f"remat({layer.name})", layer.init, apply, (layer,))


def repeat(layer: Layer, count: int) -> Layer:
    """f_n ∘ … ∘ f_1, n = ``count`` copies of one shape-keeping block, each with its own parameters,
    run as one ``lax.scan`` over them: one compiled block however deep the stack.

    The parameters and state are the copies' stacked along a new leading axis of length n. Copy i
    is initialised with ``fold_in(key, i)`` and in training draws ``fold_in(key, i)``, as
    ``serial(*[layer] * count)`` does, so the two compute the same function of the same (stacked)
    parameters. ``repeat(remat(block), n)`` keeps one activation per block for the backward pass
    even where a compiler would merge an unrolled stack's recomputation back (XLA:CPU does).
    """
    check_layer("repeat", "layer", layer, "serial(dense(64), relu())")
    count = positive_int("repeat", "count", count)

    def init(key, in_shape):
        copies = [layer.init(jax.random.fold_in(key, i), tuple(in_shape)) for i in range(count)]
        out_shape = tuple(copies[0][0])
        if out_shape != tuple(in_shape):
            raise FnlearnError(
                f"repeat({layer.name}, {count}) needs a block that keeps its input shape, but it maps "
                f"{tuple(in_shape)} to {out_shape}. Give the block equal input and output widths."
            )
        stack = lambda *trees: jax.tree.map(lambda *a: jnp.stack(a), *trees)  # noqa: E731
        return out_shape, stack(*(c[1] for c in copies)), stack(*(c[2] for c in copies))

    def apply(params, state, x, *, train=False, key=None):
        def block(h, copy):
            p, s, i = copy
            h, s = layer.apply(p, s, h, train=train, key=None if key is None else jax.random.fold_in(key, i))
            return h, s

        return jax.lax.scan(block, x, (params, state, jnp.arange(count)))

    return Layer(f"repeat({layer.name})x{count}", init, apply, (layer,))
