"""Parameter-free elementwise layers, their registry, and the initialiser each one wants.

``default_w_init(name)`` is the one home of the rule "the weights feeding an activation are
initialised with that activation's variance-preserving gain"; every builder uses it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from fnlearn import checks
from fnlearn import init as initializers
from fnlearn.errors import unknown_name
from fnlearn.nn.base import Layer

__all__ = [
    "ACTIVATIONS",
    "RELU_LIKE",
    "SATURATING",
    "activation",
    "default_w_init",
    "elu",
    "gelu",
    "identity",
    "leaky_relu",
    "relu",
    "selu",
    "sigmoid",
    "softplus",
    "tanh",
]


def _elementwise(name: str, fn: Callable[[jax.Array], jax.Array]) -> Layer:
    def init(key, in_shape):
        del key
        return tuple(in_shape), {}, {}

    def apply(params, state, x, *, train=False, key=None):
        del params, train, key
        return fn(x), state

    return Layer(name, init, apply)


def relu() -> Layer:
    """max(0, x)."""
    return _elementwise("relu", jax.nn.relu)


def leaky_relu(negative_slope: float = 0.01) -> Layer:
    """x for x > 0, a·x otherwise."""
    checks.finite("leaky_relu", "negative_slope", negative_slope)
    return _elementwise("leaky_relu", lambda x: jax.nn.leaky_relu(x, negative_slope))


def elu(alpha: float = 1.0) -> Layer:
    """x for x > 0, α(eˣ − 1) otherwise."""
    checks.finite("elu", "alpha", alpha)
    return _elementwise("elu", lambda x: jax.nn.elu(x, alpha))


def selu() -> Layer:
    """λ·elu(x, α) with the self-normalising constants of Klambauer et al. (2017)."""
    return _elementwise("selu", jax.nn.selu)


def gelu(approximate: bool = False) -> Layer:
    """x·Φ(x) (exact by default; the tanh approximation with ``approximate=True``)."""
    checks.boolean("gelu", "approximate", approximate)
    return _elementwise("gelu", lambda x: jax.nn.gelu(x, approximate=approximate))


def sigmoid() -> Layer:
    """1 / (1 + e⁻ˣ)."""
    return _elementwise("sigmoid", jax.nn.sigmoid)


def tanh() -> Layer:
    """tanh(x)."""
    return _elementwise("tanh", jnp.tanh)


def softplus() -> Layer:
    """log(1 + eˣ)."""
    return _elementwise("softplus", jax.nn.softplus)


def identity() -> Layer:
    """x."""
    return _elementwise("identity", lambda x: x)


ACTIVATIONS: dict[str, Callable[[], Layer]] = {
    "relu": relu,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "selu": selu,
    "gelu": gelu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "softplus": softplus,
    "identity": identity,
}


def activation(name: str) -> Layer:
    """The activation layer called ``name`` (one of ``ACTIVATIONS``)."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise unknown_name("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()


RELU_LIKE = ("relu", "leaky_relu", "elu", "gelu", "softplus")
SATURATING = ("tanh", "sigmoid")


def default_w_init(activation_name: str):
    """The variance-preserving initialiser for weights feeding ``activation_name``.

    He (Var = gain²/fan_in) for ReLU-like activations, Xavier (Var = gain²·2/(fan_in + fan_out))
    for tanh and sigmoid, LeCun (Var = 1/fan_in) for selu and identity. For a conv kernel
    (``kernel_size + (in_channels // groups, features)``) the fans count the receptive field:
    fan_in = Π kernel_size · in_channels/groups.
    """
    if activation_name in RELU_LIKE:
        g = initializers.gain(activation_name) if activation_name != "softplus" else math.sqrt(2.0)
        return initializers.he_normal(g)
    if activation_name in SATURATING:
        return initializers.xavier_normal(initializers.gain(activation_name))
    return initializers.lecun_normal()
