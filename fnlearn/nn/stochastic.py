"""Dropout, and the one rule for dropping units that every layer with a ``dropout`` rate uses."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fnlearn import checks
from fnlearn.errors import FnlearnError
from fnlearn.nn.base import Layer

__all__ = ["check_rate", "drop", "dropout"]


def check_rate(layer: str, rate, name: str = "rate") -> float:
    """``rate`` if it is a drop probability in [0, 1), else the error naming ``layer``."""
    return float(
        checks.unit_interval(layer, name, rate, "It is the probability of dropping a unit, e.g. 0.1.")
    )


def drop(x: jax.Array, rate: jax.Array, key, layer: str) -> jax.Array:
    """Inverted dropout: y = m ⊙ x / (1 − rate), m ~ Bernoulli(1 − rate), so E[y] = x."""
    if key is None:
        raise FnlearnError(
            f"{layer} needs a PRNG key in training: call apply(..., train=True, key=key) "
            "(fnlearn's train step passes one split from TrainState.key)."
        )
    keep_prob = 1.0 - rate
    keep = jax.random.bernoulli(key, keep_prob, x.shape)
    return jnp.where(keep, x / keep_prob.astype(x.dtype), jnp.zeros_like(x))


def dropout(rate: float) -> Layer:
    """Inverted dropout: in training, y = m ⊙ x / (1 − rate), m ~ Bernoulli(1 − rate).

    ``rate`` is the probability of *dropping* a unit, so E[y] = x and evaluation is the identity.
    Training needs a PRNG ``key``. The rate is kept in the layer's ``state`` (``{"rate": rate}``),
    which the optimizer never touches: that is what lets many replicas, vmapped in one program,
    each train with their own dropout rate (``fl.replicas.create(..., hyperparams={"dropout": ...})``).
    """
    check_rate("dropout", rate)

    def init(key, in_shape):
        del key
        return tuple(in_shape), {}, {"rate": jnp.asarray(rate, jnp.float32)}

    def apply(params, state, x, *, train=False, key=None):
        del params
        if not train:
            return x, state
        return drop(x, state["rate"], key, "dropout"), state

    return Layer("dropout", init, apply)
