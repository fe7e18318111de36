"""Looking inside a model: every layer's output."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fnlearn.nn.base import Model

__all__ = ["intermediates"]


def intermediates(model: Model, params, state, x, *, train=False, key=None) -> list[tuple[str, jax.Array]]:
    """Run a serial model layer by layer and return ``(name, output)`` of every leaf layer.

    Nested ``serial`` blocks are flattened (a residual block is one entry, its output x + f(x); so
    is a transformer block). Used to watch signal propagation: the outputs named ``dense_*`` (and
    ``conv_*`` in a ``cnn``) are the pre-activations.
    """
    out = []

    def walk(layer, p, s, h, k):
        if layer.sublayers and not layer.name.startswith("residual"):
            for i, (sub, sp, ss) in enumerate(zip(layer.sublayers, p, s, strict=True)):
                h = walk(sub, sp, ss, h, None if k is None else jax.random.fold_in(k, i))
            return h
        h, _ = layer.apply(p, s, h, train=train, key=k)
        out.append((layer.name, h))
        return h

    walk(model.layer, params, state, jnp.asarray(x), key)
    return out
