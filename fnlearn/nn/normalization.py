"""Normalisation layers: batch and layer normalisation.

Each normalises x̂ = (x − μ)/sqrt(σ² + ε) over its own set of axes
and returns y = scale·x̂ + shift with ``scale``/``shift`` of shape (channels,) in ``params``. The
channel axis is the last one (images are channels-last).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fnlearn.errors import FnlearnError
from fnlearn.nn.base import Layer

__all__ = ["NORMS", "batch_norm", "layer_norm"]


def _normalise(x, mean, var, eps):
    return (x - mean) * jax.lax.rsqrt(var + eps)


def _scale_shift(features: int) -> dict:
    return {"scale": jnp.ones((features,)), "shift": jnp.zeros((features,))}


def batch_norm(momentum: float = 0.9, eps: float = 1e-5) -> Layer:
    """Batch normalisation over every axis but the last (the channels): batch and spatial axes.

    Training: x̂ = (x − μ_B)/sqrt(σ²_B + ε) with the batch mean and (biased) variance per channel,
    taken over the batch and, for images (H, W, C), every pixel; the running statistics in
    ``state`` become r ← momentum·r + (1 − momentum)·batch statistic. Evaluation: the running
    statistics replace the batch ones. y = scale·x̂ + shift (``params``).

    ``momentum`` follows flax (``nn.BatchNorm(momentum=0.99)``): it is the weight of the *old*
    running value. PyTorch's ``momentum`` is the weight of the *new* value, so PyTorch's default 0.1
    is fnlearn's 0.9 (the default here). Like flax, the running variance is the biased batch
    variance; PyTorch stores the unbiased one (×n/(n−1)).
    """
    if not 0.0 <= momentum < 1.0:
        raise FnlearnError(f"batch_norm: momentum must be in [0, 1), got {momentum!r}.")

    def init(key, in_shape):
        del key
        features = in_shape[-1]
        state = {"mean": jnp.zeros((features,)), "var": jnp.ones((features,))}
        return tuple(in_shape), _scale_shift(features), state

    def apply(params, state, x, *, train=False, key=None):
        del key
        if train:
            axes = tuple(range(x.ndim - 1))
            mean = jnp.mean(x, axis=axes)
            var = jnp.mean(jnp.square(x - mean), axis=axes)
            state = {
                "mean": momentum * state["mean"] + (1.0 - momentum) * mean,
                "var": momentum * state["var"] + (1.0 - momentum) * var,
            }
        else:
            mean, var = state["mean"], state["var"]
        return params["scale"] * _normalise(x, mean, var, eps) + params["shift"], state

    return Layer("batch_norm", init, apply)


def layer_norm(eps: float = 1e-5) -> Layer:
    """Layer normalisation: each position normalised over its features (the last axis),
    y = scale·x̂ + shift."""

    def init(key, in_shape):
        del key
        return tuple(in_shape), _scale_shift(in_shape[-1]), {}

    def apply(params, state, x, *, train=False, key=None):
        del train, key
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        return params["scale"] * _normalise(x, mean, var, eps) + params["shift"], state

    return Layer("layer_norm", init, apply)


# The norms a builder can name (``mlp(norm=...)``, ``cnn(norm=...)``, the config's ``model.norm``).
NORMS = {"batch_norm": batch_norm, "layer_norm": layer_norm}
