"""The Gaussian-mixture head, for multimodal regression targets."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from fnlearn import checks
from fnlearn.distributions.base import (
    DEFAULT_FLOOR,
    Head,
    _check_width,
    _event_targets,
    _floor_option,
    _host_targets,
    _positive,
    _regression_metrics,
    _spec,
)
from fnlearn.distributions.continuous import _gaussian_log_density
from fnlearn.errors import FnlearnError

# ----------------------------------------------------------------------------------------------
# Gaussian mixture


def _mixture_split(spec: str, k: int, outputs: jax.Array):
    """``[..., K(1 + 2d)]`` → logits ``[..., K]``, means and z ``[..., K, d]`` (component-major)."""
    width = outputs.shape[-1]
    if width % k or (width // k - 1) % 2 or width // k < 3:
        raise FnlearnError(
            f"{spec} reads K·(1 + 2d) = {k}·(1 + 2d) raw outputs (mixture logits, means, scales) for "
            f"d-dimensional targets; got width {width}. Fix: give the model's last layer "
            f"head.num_outputs(d) units, e.g. {3 * k} for d = 1."
        )
    d = (width // k - 1) // 2
    batch = outputs.shape[:-1]
    logits = outputs[..., :k]
    locs = outputs[..., k : k + k * d].reshape(batch + (k, d))
    z = outputs[..., k + k * d :].reshape(batch + (k, d))
    return logits, locs, z


def _mixture_component_log_prob(log_w, locs, var, y):
    """log π_k + Σ_d log N(y_d | μ_kd, σ²_kd) for every component k: ``[..., K]``."""
    return log_w + jnp.sum(_gaussian_log_density(locs, var, jnp.log(var), y[..., None, :]), axis=-1)


def _mixture_mode(log_w, locs, var, iterations: int = 100):
    """The highest mode of a diagonal Gaussian mixture, by fixed-point iteration from every mean.

    At a mode ∇ log p(x) = 0, i.e. x_d = Σ_k r_k(x) μ_kd/σ²_kd / Σ_k r_k(x)/σ²_kd with r_k the
    component responsibilities (Carreira-Perpiñán 2000). Iterate from each component mean and
    keep the end point of highest density.
    """
    starts = locs  # [..., S=K, d]
    expand = lambda a: a[..., None, :, :]  # noqa: E731 - [..., K, d] → [..., 1, K, d]

    def component_log_prob(x):  # x: [..., S, d] → [..., S, K]
        return _mixture_component_log_prob(log_w[..., None, :], expand(locs), expand(var), x)

    def step(_, x):
        r = jax.nn.softmax(component_log_prob(x), axis=-1)[..., None]  # [..., S, K, 1]
        precision = 1.0 / expand(var)
        return jnp.sum(r * precision * expand(locs), axis=-2) / jnp.sum(r * precision, axis=-2)

    x = jax.lax.fori_loop(0, iterations, step, starts)
    best = jnp.argmax(logsumexp(component_log_prob(x), axis=-1), axis=-1)
    return jnp.take_along_axis(x, best[..., None, None], axis=-2)[..., 0, :]


def gaussian_mixture(components: int = 3, floor: float = DEFAULT_FLOOR) -> Head:
    """Mixture of K diagonal Gaussians, for multimodal regression targets.

    p(y) = Σ_k π_k Π_d N(y_d | μ_kd, σ²_kd). Links: π = softmax(mixture logits), μ = outputs,
    σ² = softplus(z) + ``floor``. Raw layout for d-dimensional targets (K(1 + 2d) outputs):
    ``[logits (K) | means (K·d, component by component) | z (K·d)]``. NLL = -logsumexp_k(log π_k +
    log N_k). Mean Σ_k π_k μ_k; mode: the highest mode found by fixed-point iteration from every
    component mean.
    """
    spec = _spec("gaussian_mixture", components=components)
    k = checks.positive_int(spec, "components", components)
    floor = _floor_option(spec, floor)

    def parts(outputs):
        logits, locs, z = _mixture_split(spec, k, jnp.asarray(outputs))
        return jax.nn.log_softmax(logits, axis=-1), locs, _positive(z, floor)

    def params(outputs):
        log_w, locs, var = parts(outputs)
        return {"weights": jnp.exp(log_w), "locs": locs, "scales": jnp.sqrt(var)}

    def mean(outputs):
        log_w, locs, _ = parts(outputs)
        return jnp.sum(jnp.exp(log_w)[..., None] * locs, axis=-2)

    def targets(outputs, y):
        return _event_targets(
            spec, jnp.asarray(outputs), y, lambda d: k * (1 + 2 * d), f"K·(1 + 2d) with K = {k}"
        )

    def log_prob(outputs, y):
        log_w, locs, var = parts(outputs)
        return logsumexp(_mixture_component_log_prob(log_w, locs, var, targets(outputs, y)), axis=-1)

    def sample(key, outputs, shape=()):
        log_w, locs, var = parts(outputs)
        k_comp, k_noise = jax.random.split(key)
        shape = tuple(shape)
        comp = jax.random.categorical(k_comp, log_w, axis=-1, shape=shape + log_w.shape[:-1])
        pick = lambda a: jnp.take_along_axis(
            jnp.broadcast_to(a, shape + a.shape), comp[..., None, None], axis=-2
        )[..., 0, :]  # noqa: E731
        loc, scale = pick(locs), jnp.sqrt(pick(var))
        return loc + scale * jax.random.normal(k_noise, loc.shape, loc.dtype)

    def check_targets(y, num_outputs=None):
        y = _host_targets(spec, y)
        d = 1 if y.ndim <= 1 else y.shape[-1]
        _check_width(spec, num_outputs, k * (1 + 2 * d), f"K·(1 + 2d) with K = {k}, targets have d = {d}")

    return Head(
        name="gaussian_mixture",
        spec=spec,
        num_outputs=lambda event_size=1: k * (1 + 2 * int(event_size)),
        target_size=lambda event_size=1: int(event_size),
        params=params,
        log_prob=log_prob,
        mode=lambda outputs: _mixture_mode(*parts(outputs)),
        mean=mean,
        sample=sample,
        metrics=lambda outputs, y: _regression_metrics(mean(outputs), targets(outputs, y)),
        check_targets=check_targets,
    )
