"""Distribution heads: raw network outputs → distribution parameters → log-likelihood of targets.

The lecture notes build every loss with one recipe: pick a distribution over the target's domain,
let the network predict its parameters through a link function, minimise the negative
log-likelihood. A *head* is that recipe as a value.

A head is an immutable :class:`Head` (a frozen dataclass whose fields are plain functions, so it is
hashable and can be closed over or passed as a static argument to ``jax.jit``):

==================================  ===========================================================
``name``                            registry name, e.g. ``"gaussian"``
``spec``                            name with options, e.g. ``"gaussian(scale='learned')"``
``num_outputs(event_size) -> int``  raw outputs the model must emit for ``event_size`` target
                                    dimensions (the number of classes for ``categorical``)
``target_size(event_size) -> int``  target columns it reads (1 class id for ``categorical``)
``params(outputs) -> dict``         named parameters after the link
``log_prob(outputs, y) -> [...]``   log p(y | outputs) per example, summed over event dims,
                                    computed stably from the raw outputs
``mode(outputs)``, ``mean(outputs)`` point predictions
``sample(key, outputs, shape=())``  draws of shape ``shape + batch + event``
``metrics(outputs, y) -> dict``     per-example natural metrics (``[...]`` arrays, not averaged)
``check_targets(y, num_outputs)``   host-side (numpy) validation before anything is compiled
==================================  ===========================================================

Outputs have shape ``[..., width]``; the leading axes are batch axes. Heads with several raw
outputs per target dimension lay them out in blocks: for ``d``-dimensional targets a
heteroscedastic Gaussian reads ``outputs = [mean_1..mean_d, z_1..z_d]``. Targets have shape
``[..., d]``; for ``d = 1`` the trailing axis may be left out.

Heads are looked up by name in one explicit table (:func:`get`, :func:`names`); users add their own
with :func:`register`. Nothing is registered as a side effect of importing another module.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, i0e, logsumexp

from fnlearn import checks, registry
from fnlearn.errors import FnlearnError

__all__ = [
    "Head",
    "DEFAULT_FLOOR",
    "gaussian",
    "laplace",
    "student_t",
    "bernoulli",
    "categorical",
    "poisson",
    "von_mises",
    "gaussian_mixture",
    "product",
    "get",
    "register",
    "names",
]

LOG_2PI = math.log(2.0 * math.pi)

DEFAULT_FLOOR = 1e-6
"""Added after every softplus link so variances, scales and concentrations stay > 0.

softplus(z) underflows to exactly 0 for z ≲ -100 in float32; without the floor log σ² would be
-inf there. 1e-6 is far below the noise level of standardised targets (σ² ≈ 1) so it never binds
in a well-posed fit, and it caps the loss at ≈ (y - μ)² / 2e-6 instead of infinity.
"""


@dataclasses.dataclass(frozen=True)
class Head:
    """A distribution over targets, parametrised by raw network outputs (see the module docstring)."""

    name: str
    spec: str
    num_outputs: Callable[[int], int]
    target_size: Callable[[int], int]
    params: Callable[[jax.Array], dict]
    log_prob: Callable[[jax.Array, jax.Array], jax.Array]
    mode: Callable[[jax.Array], Any]
    mean: Callable[[jax.Array], Any]
    sample: Callable[..., Any]
    metrics: Callable[[jax.Array, jax.Array], dict]
    check_targets: Callable[..., None]

    def __repr__(self) -> str:
        return f"Head({self.spec})"


# ----------------------------------------------------------------------------------------------
# Shape handling shared by every head (static: runs once at trace time).


def _width_error(spec: str, expected: int, actual: int, why: str) -> FnlearnError:
    return FnlearnError(
        f"{spec} expects {expected} raw outputs per example ({why}), but the outputs have width "
        f"{actual}. Fix: give the model's last layer head.num_outputs(event_size) = {expected} units."
    )


def _split(spec: str, outputs: jax.Array, blocks: int) -> list[jax.Array]:
    """Split ``[..., blocks·d]`` outputs into ``blocks`` arrays of shape ``[..., d]``."""
    width = outputs.shape[-1] if outputs.ndim else 0
    if width == 0 or width % blocks:
        raise FnlearnError(
            f"{spec} reads {blocks} raw output(s) per target dimension, so the output width must be "
            f"a positive multiple of {blocks}; got outputs of shape {tuple(outputs.shape)}. Fix: give "
            f"the model's last layer head.num_outputs(d) = {blocks}·d units for d-dimensional targets."
        )
    d = width // blocks
    return [outputs[..., i * d : (i + 1) * d] for i in range(blocks)]


def _event_targets(
    spec: str, outputs: jax.Array, y, num_outputs: Callable[[int], int], rule: str
) -> jax.Array:
    """Targets as ``[..., d]`` in the outputs' dtype, checked against the outputs' width.

    ``num_outputs(d)`` is the width the head needs for ``d`` target dimensions; ``rule`` says why.
    """
    y = jnp.asarray(y)
    batch = outputs.shape[:-1]
    if y.shape == batch:
        y = y[..., None]
    if y.shape[:-1] != batch:
        raise FnlearnError(
            f"{spec}: targets of shape {tuple(y.shape)} do not fit outputs of shape "
            f"{tuple(outputs.shape)}; expected targets of shape {tuple(batch)} + (d,). Fix: pass one "
            "target row per output row."
        )
    expected = num_outputs(y.shape[-1])
    if outputs.shape[-1] != expected:
        raise _width_error(spec, expected, outputs.shape[-1], f"{rule}, targets have d = {y.shape[-1]}")
    return y.astype(outputs.dtype)


def _wrap_angle(theta: jax.Array) -> jax.Array:
    """θ mapped to [-π, π): atan2(sin θ, cos θ)."""
    return jnp.arctan2(jnp.sin(theta), jnp.cos(theta))


def _positive(z: jax.Array, floor: float) -> jax.Array:
    """The softplus link with a floor: softplus(z) + floor = log(1 + eᶻ) + floor > 0."""
    return jax.nn.softplus(z) + floor


def _regression_metrics(point: jax.Array, y: jax.Array) -> dict:
    """Per-example squared and absolute error, averaged over the event dimensions."""
    err = point - y
    return {"mse": jnp.mean(jnp.square(err), axis=-1), "mae": jnp.mean(jnp.abs(err), axis=-1)}


# ----------------------------------------------------------------------------------------------
# Host-side target validation (numpy, before compilation).


def _host_targets(spec: str, y) -> np.ndarray:
    try:
        y = np.asarray(y)
    except (ValueError, TypeError) as error:
        raise FnlearnError(
            f"{spec}: targets are not a rectangular array ({str(error).splitlines()[0]}). Fix: one row per "
            "example."
        ) from None
    if y.dtype == bool:
        y = y.astype(np.int64)
    if np.issubdtype(y.dtype, np.complexfloating):
        raise FnlearnError(
            f"{spec}: targets hold complex numbers (dtype {y.dtype}); the imaginary parts would be dropped. "
            "Fix: pass real targets."
        )
    if not np.issubdtype(y.dtype, np.number):
        raise FnlearnError(
            f"{spec}: targets must be numeric, got an array of dtype {y.dtype}. Fix: encode them as numbers."
        )
    bad = np.atleast_1d(~np.isfinite(y))
    if bad.any():
        rows = np.nonzero(bad.reshape(bad.shape[0], -1).any(axis=-1))[0]
        raise FnlearnError(
            f"{spec}: {int(bad.sum())} target value(s) are NaN or infinite (first rows: "
            f"{rows[:5].tolist()}). Fix: drop or impute those rows before training."
        )
    return y


def _require(ok: np.ndarray, spec: str, y: np.ndarray, what: str, fix: str) -> None:
    if not np.all(ok):
        bad = np.unique(y[~ok])
        raise FnlearnError(f"{spec}: targets must be {what}; found {bad[:5].tolist()}. Fix: {fix}")


def _check_width(spec: str, num_outputs, expected: int, why: str) -> None:
    if num_outputs is not None and int(num_outputs) != expected:
        raise _width_error(spec, expected, int(num_outputs), why)


def _any_real(y: np.ndarray, spec: str) -> None:
    """Real-valued targets: nothing beyond the finiteness check of ``_host_targets``."""
    del y, spec


def _binary(y: np.ndarray, spec: str) -> None:
    _require(
        (y == 0) | (y == 1),
        spec,
        y,
        "0 or 1",
        "map the two classes to 0 and 1 (or use the categorical head).",
    )


def _counts(y: np.ndarray, spec: str) -> None:
    _require(
        (y >= 0) & (y == np.round(y)),
        spec,
        y,
        "non-negative integer counts",
        "pass counts (0, 1, 2, ...); for real-valued targets use gaussian or laplace.",
    )


# ----------------------------------------------------------------------------------------------
# Heads with independent dimensions: the generic builder.


def _elementwise_head(
    name: str,
    spec: str,
    blocks: int,
    to_params: Callable[..., dict],
    log_density: Callable[..., jax.Array],
    mode: Callable[[dict], jax.Array],
    mean: Callable[[dict], jax.Array],
    sample: Callable[[jax.Array, dict, tuple], jax.Array],
    metrics: Callable[[dict, jax.Array], dict],
    check_values: Callable[[np.ndarray, str], None],
) -> Head:
    """A head whose target dimensions are independent given the outputs.

    log p(y | outputs) = Σ_d log_density(outputs_block_1[d], ..., outputs_block_B[d], y_d).
    """

    def params(outputs):
        return to_params(*_split(spec, jnp.asarray(outputs), blocks))

    def log_prob(outputs, y):
        outputs = jnp.asarray(outputs)
        y = _event_targets(spec, outputs, y, lambda d: blocks * d, f"{blocks} per target dimension")
        return jnp.sum(log_density(*_split(spec, outputs, blocks), y), axis=-1)

    def sample_fn(key, outputs, shape=()):
        return sample(key, params(outputs), tuple(shape))

    def metrics_fn(outputs, y):
        outputs = jnp.asarray(outputs)
        y = _event_targets(spec, outputs, y, lambda d: blocks * d, f"{blocks} per target dimension")
        return metrics(params(outputs), y)

    def check_targets(y, num_outputs=None):
        y = _host_targets(spec, y)
        d = 1 if y.ndim <= 1 else y.shape[-1]
        _check_width(spec, num_outputs, blocks * d, f"{blocks} per target dimension, targets have {d}")
        check_values(y, spec)

    return Head(
        name=name,
        spec=spec,
        num_outputs=lambda event_size=1: blocks * int(event_size),
        target_size=lambda event_size=1: int(event_size),
        params=params,
        log_prob=log_prob,
        mode=lambda outputs: mode(params(outputs)),
        mean=lambda outputs: mean(params(outputs)),
        sample=sample_fn,
        metrics=metrics_fn,
        check_targets=check_targets,
    )


def _spec(name: str, **options) -> str:
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in options.items())})"


def _scale_option(spec: str, option: str, value) -> float | None:
    """``"learned"`` → None (a softplus output); a positive number → that fixed value."""
    if value == "learned":
        return None
    if checks.is_number(value) and value > 0 and math.isfinite(value):
        return float(value)
    raise FnlearnError(f"{spec}: {option} must be a positive number or 'learned', got {checks.show(value)}.")


def _floor_option(spec: str, floor) -> float:
    return float(
        checks.open_unit_interval(spec, "floor", floor, f"A small positive number (default {DEFAULT_FLOOR}).")
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


# ---- Bernoulli


def bernoulli() -> Head:
    """Bernoulli(y | p) per target dimension, for binary (and multi-label) classification.

    Link: p = sigmoid(logit), one logit per dimension; targets in {0, 1}. The NLL is the binary
    cross-entropy computed from the logit: -y·log σ(z) - (1 - y)·log σ(-z) = softplus(z) - y·z,
    finite for any z. Mode: 1 where z > 0. Metric: the fraction of dimensions predicted right.
    """
    spec = "bernoulli()"

    def log_density(logits, y):
        return y * jax.nn.log_sigmoid(logits) + (1.0 - y) * jax.nn.log_sigmoid(-logits)

    def sample(key, p, shape):
        probs = p["probs"]
        return jax.random.bernoulli(key, probs, shape + probs.shape).astype(probs.dtype)

    def mode(p):
        return (p["logits"] > 0).astype(p["logits"].dtype)

    return _elementwise_head(
        "bernoulli", spec, 1, lambda z: {"logits": z, "probs": jax.nn.sigmoid(z)}, log_density,
        mode=mode, mean=lambda p: p["probs"], sample=sample,
        metrics=lambda p, y: {"accuracy": jnp.mean((mode(p) == y).astype(y.dtype), axis=-1)},
        check_values=_binary,
    )  # fmt: skip


# ---- Poisson


def poisson() -> Head:
    """Poisson(y | λ) per target dimension, for counts.

    Link: λ = exp(η) with η = outputs (the log-rate). NLL = λ - y·η + lnΓ(y + 1), computed from η
    (no log of a rate). Mode ⌊λ⌋, mean λ. Note exp(η) overflows float32 for η > 88: keep the
    log-rate of a count model in a sane range (standardise inputs; counts of 10³⁸ are not data).
    """
    spec = "poisson()"

    def log_density(log_rate, y):
        return y * log_rate - jnp.exp(log_rate) - gammaln(y + 1.0)

    def sample(key, p, shape):
        rate = p["rate"]
        return jax.random.poisson(key, rate, shape + rate.shape).astype(rate.dtype)

    return _elementwise_head(
        "poisson", spec, 1, lambda eta: {"log_rate": eta, "rate": jnp.exp(eta)}, log_density,
        mode=lambda p: jnp.floor(p["rate"]), mean=lambda p: p["rate"], sample=sample,
        metrics=lambda p, y: _regression_metrics(p["rate"], y), check_values=_counts,
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


# ----------------------------------------------------------------------------------------------
# Categorical


def _categorical_check(spec: str, y, num_outputs=None) -> None:
    """Class ids in [0, K) (shape [n] or [n, 1]) or one-hot rows (shape [n, K])."""
    y = _host_targets(spec, y)
    if num_outputs is not None and int(num_outputs) < 2:
        raise FnlearnError(
            f"{spec} needs one logit per class (at least 2), got {num_outputs} output(s). Fix: give the model's last layer K units for K classes."
        )
    if y.ndim >= 2 and y.shape[-1] > 1:
        _check_width(
            spec, num_outputs, y.shape[-1], f"one logit per class, one-hot targets have {y.shape[-1]} columns"
        )
        ok = np.all((y >= 0) & (y <= 1), axis=-1) & np.isclose(y.sum(axis=-1), 1.0)
        if not ok.all():
            raise FnlearnError(
                f"{spec}: one-hot targets must be rows of probabilities summing to 1; {int((~ok).sum())} row(s) are not. Fix: pass integer class ids or valid one-hot rows."
            )
        return
    last = "K-1" if num_outputs is None else str(int(num_outputs) - 1)
    fix = f"pass class ids 0..{last} (re-index the classes, or give the model more outputs)."
    flat = y.reshape(-1)
    bad = (flat < 0) | (flat != np.round(flat))
    if bad.any():
        first = int(np.argmax(bad))
        raise FnlearnError(
            f"{spec}: class ids must be integers 0..{last}, got {checks.show(flat[first])} at index {first}. "
            f"Fix: {fix} For real-valued targets use gaussian or laplace."
        )
    if num_outputs is not None:
        _require(
            y < int(num_outputs),
            spec,
            y,
            f"class ids in [0, {int(num_outputs)}) for a model with {int(num_outputs)} outputs",
            fix,
        )


def _categorical_targets(spec: str, logits: jax.Array, y) -> tuple[str, jax.Array]:
    """("onehot", y as [..., K] floats) or ("labels", y as [...] int32)."""
    y = jnp.asarray(y)
    batch = logits.shape[:-1]
    if y.shape == logits.shape and logits.shape[-1] > 1:
        return "onehot", y.astype(logits.dtype)
    if y.shape == batch + (1,):
        y = y[..., 0]
    if y.shape[:-1] == batch and y.ndim == logits.ndim and y.shape[-1] > 1:
        raise _width_error(
            spec,
            y.shape[-1],
            logits.shape[-1],
            f"one logit per class, one-hot targets have {y.shape[-1]} columns",
        )
    if y.shape != batch:
        raise FnlearnError(
            f"{spec}: targets of shape {tuple(y.shape)} do not fit logits of shape {tuple(logits.shape)}: "
            f"expected class ids of shape {tuple(batch)} or one-hot rows of shape {tuple(logits.shape)}."
        )
    return "labels", y.astype(jnp.int32)


def categorical() -> Head:
    """Categorical Cat(y | π) over K classes, for multiclass classification.

    Link: π = softmax(z) over K logits. Targets: integer class ids in [0, K) or one-hot rows (any
    probability rows are accepted and give the cross-entropy against them). NLL = -log softmax(z)_y
    = logsumexp(z) - z_y, computed with log-softmax. Mode: argmax z (a class id). Mean: π (the
    expectation of the one-hot target). Samples: class ids. Metric: per-example accuracy.
    ``event_size`` for this head is K; in a :func:`product` it reads one target column (the id).
    """
    spec = "categorical()"

    def log_prob(logits, y):
        logits = jnp.asarray(logits)
        kind, y = _categorical_targets(spec, logits, y)
        log_p = jax.nn.log_softmax(logits, axis=-1)
        if kind == "onehot":
            return jnp.sum(y * log_p, axis=-1)
        return jnp.take_along_axis(log_p, y[..., None], axis=-1)[..., 0]

    def metrics(logits, y):
        logits = jnp.asarray(logits)
        kind, y = _categorical_targets(spec, logits, y)
        labels = jnp.argmax(y, axis=-1) if kind == "onehot" else y
        return {"accuracy": (jnp.argmax(logits, axis=-1) == labels).astype(logits.dtype)}

    def sample(key, logits, shape=()):
        logits = jnp.asarray(logits)
        return jax.random.categorical(key, logits, axis=-1, shape=tuple(shape) + logits.shape[:-1])

    return Head(
        name="categorical",
        spec=spec,
        num_outputs=lambda event_size: int(event_size),
        target_size=lambda event_size: 1,
        params=lambda logits: {
            "logits": jnp.asarray(logits),
            "probs": jax.nn.softmax(jnp.asarray(logits), axis=-1),
        },
        log_prob=log_prob,
        mode=lambda logits: jnp.argmax(jnp.asarray(logits), axis=-1),
        mean=lambda logits: jax.nn.softmax(jnp.asarray(logits), axis=-1),
        sample=sample,
        metrics=metrics,
        check_targets=lambda y, num_outputs=None: _categorical_check(spec, y, num_outputs),
    )


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


# ----------------------------------------------------------------------------------------------
# Products of independent heads


def _part_keys(heads: Sequence[Head]) -> list[str]:
    """Part names for params/metrics: the head names, suffixed ``_0, _1, ...`` where repeated."""
    counts = {h.name: sum(g.name == h.name for g in heads) for h in heads}
    seen: dict[str, int] = {}
    keys = []
    for h in heads:
        i = seen.get(h.name, 0)
        seen[h.name] = i + 1
        keys.append(h.name if counts[h.name] == 1 else f"{h.name}_{i}")
    return keys


def _parse_parts(parts) -> tuple[list[Head], list[int]]:
    if not parts:
        raise FnlearnError(
            "product() needs at least one (head, event_size) pair, e.g. product((gaussian(), 2), (categorical(), 3))."
        )
    heads, sizes = [], []
    for part in parts:
        ok = isinstance(part, tuple) and len(part) == 2 and isinstance(part[0], Head)
        if not ok or not checks.is_integer(part[1]) or part[1] < 1:
            raise FnlearnError(
                f"product(): each part is a (head, event_size) pair with a positive int size, got {part!r}. "
                "Fix: e.g. product((gaussian(), 2), (categorical(), 3)) for 2 regression targets and a 3-class label."
            )
        heads.append(part[0])
        sizes.append(int(part[1]))
    return heads, sizes


def _offsets(sizes: Sequence[int]) -> list[tuple[int, int]]:
    ends = np.cumsum(sizes).tolist()
    return [(end - size, end) for size, end in zip(sizes, ends)]


def product(*parts: tuple[Head, int]) -> Head:
    """Independent heads side by side: p(y | f) = Π_j p_j(y_j | f_j).

    Each part is ``(head, event_size)``. Outputs are split into consecutive slices of
    ``head.num_outputs(event_size)`` columns and targets into slices of ``head.target_size(event_size)``
    columns (one class-id column for a categorical part), in the order given. The notes' example
    N(y₁:₂ | f₁:₂, diag σ) · Cat(y₃ | f₃:₄) is ``product((gaussian(), 2), (categorical(), 2))``:
    4 outputs, 3 target columns ``[y₁, y₂, class id]``.

    ``log_prob`` sums the parts' log-probabilities. Targets may also be a tuple with one array per
    part (then a categorical part may take one-hot rows). ``params`` is a dict of the parts'
    params; ``mode``, ``mean`` and ``sample`` return tuples with one entry per part; metrics are
    prefixed by the part name, e.g. ``"categorical.accuracy"``.
    """
    heads, sizes = _parse_parts(parts)
    keys = _part_keys(heads)
    out_slices = _offsets([h.num_outputs(e) for h, e in zip(heads, sizes)])
    tgt_slices = _offsets([h.target_size(e) for h, e in zip(heads, sizes)])
    width, columns = out_slices[-1][1], tgt_slices[-1][1]
    spec = "product(" + ", ".join(f"({h.spec}, {e})" for h, e in zip(heads, sizes)) + ")"

    def split_outputs(outputs):
        outputs = jnp.asarray(outputs)
        if outputs.shape[-1] != width:
            raise _width_error(spec, width, outputs.shape[-1], "the sum of the parts' num_outputs")
        return [outputs[..., a:b] for a, b in out_slices]

    def split_targets(outputs, y):
        if isinstance(y, (tuple, list)):
            if len(y) != len(heads):
                raise FnlearnError(
                    f"{spec}: got a tuple of {len(y)} target arrays for {len(heads)} parts. Fix: pass one array per part, or one array with {columns} columns."
                )
            return list(y)
        y = jnp.asarray(y)
        if columns == 1 and y.shape == outputs.shape[:-1]:
            y = y[..., None]
        if y.shape[:-1] != outputs.shape[:-1] or y.shape[-1] != columns:
            raise FnlearnError(
                f"{spec}: targets of shape {tuple(y.shape)} do not fit outputs of shape {tuple(outputs.shape)}; "
                f"expected {columns} target columns ({', '.join(f'{k}: {b - a}' for k, (a, b) in zip(keys, tgt_slices))})."
            )
        return [y[..., a:b] for a, b in tgt_slices]

    def log_prob(outputs, y):
        outs = split_outputs(outputs)
        ys = split_targets(outs[0], y)
        return sum(h.log_prob(o, t) for h, o, t in zip(heads, outs, ys))

    def metrics(outputs, y):
        outs = split_outputs(outputs)
        ys = split_targets(outs[0], y)
        return {
            f"{k}.{m}": v for k, h, o, t in zip(keys, heads, outs, ys) for m, v in h.metrics(o, t).items()
        }

    def sample(key, outputs, shape=()):
        subkeys = jax.random.split(key, len(heads))
        return tuple(h.sample(sk, o, shape) for h, sk, o in zip(heads, subkeys, split_outputs(outputs)))

    def check_targets(y, num_outputs=None):
        if num_outputs is not None and int(num_outputs) != width:
            raise _width_error(spec, width, int(num_outputs), "the sum of the parts' num_outputs")
        y = _host_targets(spec, y)
        y2 = y[:, None] if y.ndim == 1 else y
        if y2.ndim != 2 or y2.shape[-1] != columns:
            raise FnlearnError(
                f"{spec}: expected targets of shape [n, {columns}], got {tuple(y.shape)}. Fix: concatenate the parts' targets column-wise in the order of the parts."
            )
        for h, (a, b), (oa, ob) in zip(heads, tgt_slices, out_slices):
            h.check_targets(y2[:, a:b], ob - oa)

    def num_outputs(event_size=None):
        if event_size is not None and int(event_size) != columns:
            raise FnlearnError(
                f"{spec} reads {columns} target columns, got event_size={event_size}. Fix: concatenate the parts' targets ({columns} columns)."
            )
        return width

    return Head(
        name="product",
        spec=spec,
        num_outputs=num_outputs,
        target_size=lambda event_size=None: columns,
        params=lambda outputs: {k: h.params(o) for k, h, o in zip(keys, heads, split_outputs(outputs))},
        log_prob=log_prob,
        mode=lambda outputs: tuple(h.mode(o) for h, o in zip(heads, split_outputs(outputs))),
        mean=lambda outputs: tuple(h.mean(o) for h, o in zip(heads, split_outputs(outputs))),
        sample=sample,
        metrics=metrics,
        check_targets=check_targets,
    )


# ----------------------------------------------------------------------------------------------
# The registry: one explicit table. `register` adds to it; nothing else writes to it.

_REGISTRY: dict[str, Callable[..., Head]] = {
    "gaussian": gaussian,
    "laplace": laplace,
    "student_t": student_t,
    "bernoulli": bernoulli,
    "categorical": categorical,
    "poisson": poisson,
    "von_mises": von_mises,
    "gaussian_mixture": gaussian_mixture,
}


def names() -> list[str]:
    """The registered head names, sorted."""
    return sorted(_REGISTRY)


def get(name: str, **options) -> Head:
    """The head registered as ``name``, built with ``options``: ``get("gaussian", scale="learned")``."""
    head = registry.build("distribution", _REGISTRY, name, options)
    if not isinstance(head, Head):
        raise FnlearnError(f"the factory registered as {name!r} returned {type(head).__name__}, not a Head.")
    return head


def register(name: str, factory: Callable[..., Head], *, replace: bool = False) -> None:
    """Add ``factory`` (options → :class:`Head`) to the registry under ``name``.

    Registering an existing name raises unless ``replace=True``, so a typo cannot silently shadow a
    built-in head.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise FnlearnError(f"a distribution name must be an identifier like 'my_head', got {name!r}.")
    if not callable(factory):
        raise FnlearnError(
            f"register({name!r}, ...) needs a callable returning a Head, got {type(factory).__name__}."
        )
    if name in _REGISTRY and not replace:
        raise FnlearnError(
            f"distribution {name!r} is already registered. Fix: pick another name, or pass replace=True."
        )
    _REGISTRY[name] = factory
