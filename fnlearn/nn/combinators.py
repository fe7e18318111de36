"""Layers made of layers: ``serial`` (composition), ``residual`` (x + f(x)) and ``remat`` (f, its
activations recomputed in the backward pass)."""

from __future__ import annotations

import jax

from fnlearn.errors import FnlearnError
from fnlearn.nn.base import Layer, check_layer

__all__ = ["remat", "residual", "serial"]


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
