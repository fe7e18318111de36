"""The dense layer: y = x·W + b."""

from __future__ import annotations

import jax

from fnlearn import checks
from fnlearn import init as initializers
from fnlearn.errors import FnlearnError
from fnlearn.nn.base import Layer, check_inits

__all__ = ["dense"]


def dense(
    out_features: int, *, w_init=None, b_init=None, use_bias: bool = True, name: str = "dense"
) -> Layer:
    """y = x·W + b with W of shape (in_features, out_features), over the last axis of x.

    ``w_init`` defaults to LeCun normal (Var(w) = 1/fan_in); ``mlp`` picks it from the activation.
    """
    out_features = checks.positive_int("dense", "out_features", out_features)
    check_inits("dense", w_init=w_init, b_init=b_init)
    checks.boolean("dense", "use_bias", use_bias)
    w_init = w_init or initializers.lecun_normal()
    b_init = b_init or initializers.zeros()

    def init(key, in_shape):
        in_features = in_shape[-1]
        w_key, b_key = jax.random.split(key)
        params = {"w": w_init(w_key, (in_features, out_features))}
        if use_bias:
            params["b"] = b_init(b_key, (out_features,))
        return (*in_shape[:-1], out_features), params, {}

    def apply(params, state, x, *, train=False, key=None):
        del train, key
        w = params["w"]
        if x.shape[-1] != w.shape[0]:
            raise FnlearnError(
                f"layer {name!r} expects inputs of width {w.shape[0]} (weight shape {w.shape}), got "
                f"inputs of shape {x.shape}. The previous layer or the data has the wrong width."
            )
        y = x @ w
        return (y + params["b"] if use_bias else y), state

    return Layer(name, init, apply)
