"""Normalisation layers: batch, layer, RMS and group normalisation.

Each normalises x̂ = (x − μ)/sqrt(σ² + ε) (RMSNorm: x/sqrt(mean(x²) + ε)) over its own set of axes
and returns y = scale·x̂ + shift with ``scale``/``shift`` of shape (channels,) in ``params``. The
channel axis is the last one (images are channels-last).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fnlearn import checks
from fnlearn.errors import FnlearnError
from fnlearn.nn.base import Layer, positive_int

__all__ = ["NORMS", "batch_norm", "group_norm", "layer_norm", "rms_norm"]


def _normalise(x, mean, var, eps):
    return (x - mean) * jax.lax.rsqrt(var + eps)


def _f32(x):
    """x in at least float32: the statistics of a bfloat16 activation are taken in float32
    (fnlearn.precision), and the normalised output is cast back to x's dtype."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


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
    checks.unit_interval(
        "batch_norm", "momentum", momentum, "It is the weight of the old running value, e.g. 0.9."
    )
    checks.positive("batch_norm", "eps", eps)

    def init(key, in_shape):
        del key
        features = in_shape[-1]
        state = {"mean": jnp.zeros((features,)), "var": jnp.ones((features,))}
        return tuple(in_shape), _scale_shift(features), state

    def apply(params, state, x, *, train=False, key=None):
        del key
        dtype, x = x.dtype, _f32(x)
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
        return (params["scale"] * _normalise(x, mean, var, eps) + params["shift"]).astype(dtype), state

    return Layer("batch_norm", init, apply)


def layer_norm(eps: float = 1e-5) -> Layer:
    """Layer normalisation: each position normalised over its features (the last axis),
    y = scale·x̂ + shift."""
    checks.positive("layer_norm", "eps", eps)

    def init(key, in_shape):
        del key
        return tuple(in_shape), _scale_shift(in_shape[-1]), {}

    def apply(params, state, x, *, train=False, key=None):
        del train, key
        dtype, x = x.dtype, _f32(x)
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        return (params["scale"] * _normalise(x, mean, var, eps) + params["shift"]).astype(dtype), state

    return Layer("layer_norm", init, apply)


def rms_norm(eps: float = 1e-6) -> Layer:
    """RMS normalisation (Zhang & Sennrich, 2019) over the last axis: y = scale·x / sqrt(mean(x²) + ε).

    No centring and no shift; ``params`` is ``{"scale": (features,)}``. ε = 1e-6 as flax's RMSNorm.
    """

    def init(key, in_shape):
        del key
        return tuple(in_shape), {"scale": jnp.ones((in_shape[-1],))}, {}

    def apply(params, state, x, *, train=False, key=None):
        del train, key
        dtype, x = x.dtype, _f32(x)
        mean_square = jnp.mean(jnp.square(x), axis=-1, keepdims=True)
        return (params["scale"] * x * jax.lax.rsqrt(mean_square + eps)).astype(dtype), state

    return Layer("rms_norm", init, apply)


def group_norm(num_groups: int, eps: float = 1e-5) -> Layer:
    """Group normalisation (Wu & He, 2018): the C channels of each example are split into G groups of
    C/G, and μ, σ² are taken per example and group over the spatial axes and the group's channels.

    G = 1 normalises each example over all of (*spatial, C); G = C is instance normalisation.
    Independent of the batch: training and evaluation compute the same thing. ``x`` has one
    leading batch axis.
    """
    num_groups = positive_int("group_norm", "num_groups", num_groups)

    def init(key, in_shape):
        del key
        channels = in_shape[-1]
        if channels % num_groups:
            raise FnlearnError(
                f"group_norm: {channels} channels cannot be split into num_groups={num_groups} equal "
                f"groups (input shape {tuple(in_shape)}). Choose a num_groups that divides {channels}."
            )
        return tuple(in_shape), _scale_shift(channels), {}

    def apply(params, state, x, *, train=False, key=None):
        del train, key
        dtype, x = x.dtype, _f32(x)
        grouped = x.reshape(*x.shape[:-1], num_groups, x.shape[-1] // num_groups)
        axes = (*range(1, grouped.ndim - 2), grouped.ndim - 1)
        mean = jnp.mean(grouped, axis=axes, keepdims=True)
        var = jnp.mean(jnp.square(grouped - mean), axis=axes, keepdims=True)
        x_hat = _normalise(grouped, mean, var, eps).reshape(x.shape)
        return (params["scale"] * x_hat + params["shift"]).astype(dtype), state

    return Layer("group_norm", init, apply)


# The norms a builder can name (``mlp(norm=...)``, ``cnn(norm=...)``, the config's ``model.norm``).
NORMS = {"batch_norm": batch_norm, "layer_norm": layer_norm}
