"""Heads for real-valued targets: gaussian, laplace, student_t, and von_mises for angles."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.special import gammaln, i0e

from fnlearn.distributions.base import (
    DEFAULT_FLOOR,
    LOG_2PI,
    Head,
    _any_real,
    _elementwise_head,
    _floor_option,
    _positive,
    _regression_metrics,
    _scale_option,
    _spec,
    _wrap_angle,
)

# ---- Gaussian


def _gaussian_log_density(loc, var, log_var, y):
    """log N(y | μ, σ²) = -(y - μ)² / (2σ²) - ½ log σ² - ½ log 2π."""
    return -0.5 * jnp.square(y - loc) / var - 0.5 * log_var - 0.5 * LOG_2PI


def _normal_sample(key, p, shape):
    loc = p["loc"]
    return loc + p["scale"] * jax.random.normal(key, shape + loc.shape, loc.dtype)


def gaussian(scale: float | str = 1.0, floor: float = DEFAULT_FLOOR) -> Head:
    """Gaussian N(y | μ, σ²) per target dimension, for regression.

    Link: μ = outputs (identity). With a fixed ``scale`` σ (default 1) the model emits ``d`` outputs
    and the NLL is ½·(y - μ)²/σ² + log σ + ½ log 2π per dimension, i.e. ½·MSE + ½ log 2π for σ = 1.
    With ``scale="learned"`` the model is heteroscedastic: it emits ``[μ, z]`` (``2d`` outputs) and,
    as in the lecture notes, σ² = softplus(z) + ``floor`` (see :data:`DEFAULT_FLOOR`); the NLL is
    ½·(y - μ)²/σ² + ½ log σ² + ½ log 2π.
    """
    spec = _spec("gaussian", scale=scale)
    fixed = _scale_option(spec, "scale", scale)
    floor = _floor_option(spec, floor)

    if fixed is None:

        def to_params(loc, z):
            return {"loc": loc, "scale": jnp.sqrt(_positive(z, floor))}

        def log_density(loc, z, y):
            var = _positive(z, floor)
            return _gaussian_log_density(loc, var, jnp.log(var), y)

    else:

        def to_params(loc):
            return {"loc": loc, "scale": jnp.full_like(loc, fixed)}

        def log_density(loc, y):
            return _gaussian_log_density(loc, fixed**2, 2.0 * math.log(fixed), y)

    return _elementwise_head(
        "gaussian", spec, 1 if fixed else 2, to_params, log_density,
        mode=lambda p: p["loc"], mean=lambda p: p["loc"], sample=_normal_sample,
        metrics=lambda p, y: _regression_metrics(p["loc"], y), check_values=_any_real,
    )  # fmt: skip


# ---- Laplace


def _laplace_log_density(loc, scale, log_scale, y):
    """log Laplace(y | μ, b) = -|y - μ| / b - log 2b."""
    return -jnp.abs(y - loc) / scale - log_scale - math.log(2.0)


def laplace(scale: float | str = 1.0, floor: float = DEFAULT_FLOOR) -> Head:
    """Laplace(y | μ, b) per target dimension: robust regression (the NLL is an absolute error).

    Link: μ = outputs. Fixed ``scale`` b (default 1): NLL = |y - μ|/b + log 2b, i.e. MAE + log 2 for
    b = 1. ``scale="learned"``: the model emits ``[μ, z]`` and b = softplus(z) + ``floor``.
    """
    spec = _spec("laplace", scale=scale)
    fixed = _scale_option(spec, "scale", scale)
    floor = _floor_option(spec, floor)

    if fixed is None:

        def to_params(loc, z):
            return {"loc": loc, "scale": _positive(z, floor)}

        def log_density(loc, z, y):
            b = _positive(z, floor)
            return _laplace_log_density(loc, b, jnp.log(b), y)

    else:

        def to_params(loc):
            return {"loc": loc, "scale": jnp.full_like(loc, fixed)}

        def log_density(loc, y):
            return _laplace_log_density(loc, fixed, math.log(fixed), y)

    def sample(key, p, shape):
        loc = p["loc"]
        return loc + p["scale"] * jax.random.laplace(key, shape + loc.shape, loc.dtype)

    return _elementwise_head(
        "laplace", spec, 1 if fixed else 2, to_params, log_density,
        mode=lambda p: p["loc"], mean=lambda p: p["loc"], sample=sample,
        metrics=lambda p, y: _regression_metrics(p["loc"], y), check_values=_any_real,
    )  # fmt: skip


# ---- Student's t


def _student_t_log_density(df, loc, scale, y):
    """log t_ν(y | μ, s) = lnΓ((ν+1)/2) - lnΓ(ν/2) - ½ log(νπ) - log s - (ν+1)/2 · log(1 + ((y-μ)/s)²/ν)."""
    t = (y - loc) / scale
    return (
        gammaln(0.5 * (df + 1.0)) - gammaln(0.5 * df) - 0.5 * jnp.log(df * math.pi) - jnp.log(scale)
        - 0.5 * (df + 1.0) * jnp.log1p(jnp.square(t) / df)
    )  # fmt: skip


def student_t(scale: float | str = "learned", df: float | str = 3.0, floor: float = DEFAULT_FLOOR) -> Head:
    """Student's t(y | ν, μ, s) per target dimension: regression with heavy-tailed noise.

    Link: μ = outputs[block 0]. ``scale="learned"`` (default): s = softplus(z) + ``floor`` from the
    next block, or a fixed positive number. ``df`` ν: fixed (default 3) or ``"learned"``, then
    ν = softplus(z_ν) + ``floor`` from the last block. Raw layout: ``[μ, z_s?, z_ν?]``. The mean is μ
    for ν > 1 and undefined (NaN) otherwise; the mode is μ.
    """
    spec = _spec("student_t", scale=scale, df=df)
    fixed_scale = _scale_option(spec, "scale", scale)
    fixed_df = _scale_option(spec, "df", df)
    floor = _floor_option(spec, floor)
    blocks = 1 + (fixed_scale is None) + (fixed_df is None)

    def to_params(loc, *raw):
        raw = list(raw)
        s = jnp.full_like(loc, fixed_scale) if fixed_scale else _positive(raw.pop(0), floor)
        nu = jnp.full_like(loc, fixed_df) if fixed_df else _positive(raw.pop(0), floor)
        return {"df": nu, "loc": loc, "scale": s}

    def log_density(*raw_and_y):
        p = to_params(*raw_and_y[:-1])
        return _student_t_log_density(p["df"], p["loc"], p["scale"], raw_and_y[-1])

    def sample(key, p, shape):
        loc = p["loc"]
        return loc + p["scale"] * jax.random.t(key, p["df"], shape + loc.shape, loc.dtype)

    return _elementwise_head(
        "student_t", spec, blocks, to_params, log_density,
        mode=lambda p: p["loc"], mean=lambda p: jnp.where(p["df"] > 1, p["loc"], jnp.nan), sample=sample,
        metrics=lambda p, y: _regression_metrics(p["loc"], y), check_values=_any_real,
    )  # fmt: skip


# ---- von Mises


def _von_mises_log_density(loc, kappa, y):
    """log VM(y | μ, κ) = κ·cos(y - μ) - log 2π - log I₀(κ), with log I₀(κ) = log i0e(κ) + κ."""
    return kappa * (jnp.cos(y - loc) - 1.0) - LOG_2PI - jnp.log(i0e(kappa))


def _von_mises_sample(key, loc, kappa, shape):
    """Best & Fisher (1979) rejection sampler, vectorised: redraw until every entry is accepted.

    With τ = 1 + √(1 + 4κ²), ρ = 2κ / (τ + √(2τ)) (the cancellation-free form of (τ - √(2τ))/2κ)
    and s = (1 + ρ²)/(2ρ): draw u, v ~ U(0, 1), w = (1 + s·cos πu)/(s + cos πu), c = κ(s - w);
    accept if c(2 - c) > v or log(c/v) + 1 ≥ c; then θ = μ ± arccos w.
    """
    out_shape = shape + loc.shape
    kappa = jnp.broadcast_to(jnp.maximum(kappa, 1e-20), out_shape)
    tau = 1.0 + jnp.sqrt(1.0 + 4.0 * kappa**2)
    rho = 2.0 * kappa / (tau + jnp.sqrt(2.0 * tau))
    s = (1.0 + rho**2) / (2.0 * rho)

    def body(state):
        key, w, done = state
        key, k_u, k_v = jax.random.split(key, 3)
        z = jnp.cos(math.pi * jax.random.uniform(k_u, out_shape, loc.dtype))
        v = jax.random.uniform(k_v, out_shape, loc.dtype, minval=1e-12)
        w_new = (1.0 + s * z) / (s + z)
        c = kappa * (s - w_new)
        accept = (c * (2.0 - c) - v > 0) | (jnp.log(c / v) + 1.0 - c >= 0)
        return key, jnp.where(done, w, w_new), done | accept

    key, k_sign = jax.random.split(key)
    state = (key, jnp.zeros(out_shape, loc.dtype), jnp.zeros(out_shape, bool))
    _, w, _ = jax.lax.while_loop(lambda st: ~jnp.all(st[2]), body, state)
    sign = jnp.where(jax.random.bernoulli(k_sign, 0.5, out_shape), 1.0, -1.0)
    return _wrap_angle(loc + sign * jnp.arccos(jnp.clip(w, -1.0, 1.0)))


def von_mises(floor: float = DEFAULT_FLOOR) -> Head:
    """von Mises VM(y | μ, κ) per target dimension, for angles (radians; any 2π-periodic range).

    Link: the model emits ``[m, z]``; the mean direction is μ = m (taken mod 2π, reported in
    [-π, π)) and the concentration κ = softplus(z) + ``floor``. NLL = -κ·cos(y - μ) + log 2π + log I₀(κ),
    with I₀ evaluated as i0e(κ)·e^κ so large κ does not overflow. Mode and (circular) mean: μ.
    Metric: the absolute angular error |wrap(y - μ)| in radians.
    """
    spec = "von_mises()"
    floor = _floor_option(spec, floor)

    def log_density(m, z, y):
        return _von_mises_log_density(m, _positive(z, floor), y)

    def to_params(m, z):
        return {"loc": _wrap_angle(m), "concentration": _positive(z, floor)}

    def metrics(p, y):
        return {"angular_error": jnp.mean(jnp.abs(_wrap_angle(y - p["loc"])), axis=-1)}

    return _elementwise_head(
        "von_mises", spec, 2, to_params, log_density,
        mode=lambda p: p["loc"], mean=lambda p: p["loc"],
        sample=lambda key, p, shape: _von_mises_sample(key, p["loc"], p["concentration"], shape),
        metrics=metrics, check_values=_any_real,
    )  # fmt: skip
