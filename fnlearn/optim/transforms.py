"""Building blocks that scale the update: each a factory returning ``GradientTransformation(init, update)``.

Here: scaling by a constant or the learning rate, momentum, and the adaptive scalings (Adagrad,
RMSprop, Adam, AMSGrad, Lion), with ``learning_rate(opt_state)`` to read η back. The other blocks
have their own modules: ``decay`` (weight decay, masks), ``clipping``, ``finite`` (skipping
non-finite updates), all on the shared formulas of ``moments``.

Notation: g is the incoming update (the gradient at the start of a chain), u the outgoing one, t the
update count (1 on the first update), θ the parameters. Every formula below is applied leaf by
leaf and element by element. The arithmetic follows optax's order of operations so that fnlearn and
optax agree to the last bit in float32 (the tests check this over hundreds of steps).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnlearn import checks
from fnlearn.optim.base import (
    GradientTransformation,
    find_states,
    init_empty_state,
    safe_increment,
)
from fnlearn.optim.hyperparams import find_hyperparams
from fnlearn.optim.moments import (
    abs_sq,
    cast,
    count0,
    debiased,
    full_like,
    moment_ema,
    zeros_like,
)

__all__ = [
    "scale",
    "scale_by_learning_rate",
    "trace",
    "ema",
    "scale_by_rss",
    "scale_by_rms",
    "scale_by_stddev",
    "scale_by_adam",
    "scale_by_amsgrad",
    "scale_by_lion",
    "learning_rate",
]

_tree_map = jax.tree_util.tree_map


# --------------------------------------------------------------------------------------------
# Scaling by a constant or by the learning rate


def scale(step_size: float) -> GradientTransformation:
    """u = s·g for a fixed scalar s."""
    checks.finite("scale", "step_size", step_size)

    def update_fn(updates, state, params=None):
        del params
        return _tree_map(lambda g: step_size * g, updates), state

    return GradientTransformation(init_empty_state, update_fn)


class ScaleByLearningRateState(NamedTuple):
    """``count``: updates done so far. ``learning_rate``: the rate η (positive, float32) that the
    most recent update applied; right after ``init`` it holds η for the first update, so it is
    always defined. ``fnlearn.optim.learning_rate(state)`` reads it."""

    count: jax.Array
    learning_rate: jax.Array


def scale_by_learning_rate(learning_rate, *, flip_sign: bool = True) -> GradientTransformation:
    """u = −η_t·g (or +η_t·g with ``flip_sign=False``), η_t = learning_rate(t − 1) for a schedule.

    The schedule sees the count of previous updates (0 on the first update, optax's convention).
    Unlike optax, the state always holds the count and the rate just used, so the training loop
    can log the learning rate from inside ``jit`` whatever optimizer it is given.
    """
    checks.rate("scale_by_learning_rate", "learning_rate", learning_rate)
    checks.boolean("scale_by_learning_rate", "flip_sign", flip_sign)
    sign = -1 if flip_sign else 1

    def rate_at(count):
        return learning_rate(count) if callable(learning_rate) else learning_rate

    def init_fn(params):
        del params
        count = count0()
        return ScaleByLearningRateState(count, jnp.asarray(rate_at(count), jnp.float32))

    def update_fn(updates, state, params=None):
        del params
        rate = rate_at(state.count)
        updates = _tree_map(lambda g: jnp.array(sign * rate, dtype=g.dtype) * g, updates)
        new_state = ScaleByLearningRateState(safe_increment(state.count), jnp.asarray(rate, jnp.float32))
        return updates, new_state

    return GradientTransformation(init_fn, update_fn)


# --------------------------------------------------------------------------------------------
# Momentum


class TraceState(NamedTuple):
    """The velocity m (heavy-ball momentum)."""

    trace: Any


def trace(decay: float, nesterov: bool = False, accumulator_dtype=None) -> GradientTransformation:
    """Heavy-ball momentum: m ← g + β·m; u = m, or u = g + β·m with ``nesterov=True``.

    With a constant rate η after it, θ ← θ − η·m is the notes' v ← β·v + η·g, θ ← θ − v with
    v = η·m. The Nesterov form is the notes' look-ahead update written in the look-ahead point
    φ = θ − β·v, so no gradient at a shifted point is needed.
    """
    checks.unit_interval("trace", "decay", decay)
    checks.boolean("trace", "nesterov", nesterov)

    def init_fn(params):
        return TraceState(zeros_like(params, accumulator_dtype))

    def update_fn(updates, state, params=None):
        del params
        step = lambda g, m: g + decay * m  # noqa: E731 - the one formula, used twice
        new_trace = _tree_map(step, updates, state.trace)
        updates = _tree_map(step, updates, new_trace) if nesterov else new_trace
        return updates, TraceState(cast(new_trace, accumulator_dtype))

    return GradientTransformation(init_fn, update_fn)


class EmaState(NamedTuple):
    """Update count t and the moving average m."""

    count: jax.Array
    ema: Any


def ema(decay: float, debias: bool = True, accumulator_dtype=None) -> GradientTransformation:
    """Damped momentum: m ← β·m + (1 − β)·g; u = m / (1 − β^t) if ``debias`` else u = m."""
    checks.unit_interval("ema", "decay", decay)
    checks.boolean("ema", "debias", debias)

    def init_fn(params):
        return EmaState(count0(), zeros_like(params, accumulator_dtype))

    def update_fn(updates, state, params=None):
        del params
        new_ema = moment_ema(updates, state.ema, decay, 1)
        count = safe_increment(state.count)
        updates = debiased(new_ema, decay, count) if debias else new_ema
        return updates, EmaState(count, cast(new_ema, accumulator_dtype))

    return GradientTransformation(init_fn, update_fn)


# --------------------------------------------------------------------------------------------
# Adaptive scalings


class ScaleByRssState(NamedTuple):
    """The running sum of squared gradients G."""

    sum_of_squares: Any


def scale_by_rss(initial_accumulator_value: float = 0.1, eps: float = 1e-7) -> GradientTransformation:
    """Adagrad: G ← G + g²; u = g / √(G + ε) where G > 0, else 0. G starts at the initial value.

    The notes' Adagrad θ ← θ − η·g/√(G + ε) is ``initial_accumulator_value=0``.
    """
    checks.nonneg("scale_by_rss", "initial_accumulator_value", initial_accumulator_value)
    checks.nonneg("scale_by_rss", "eps", eps)

    def init_fn(params):
        return ScaleByRssState(full_like(params, initial_accumulator_value))

    def update_fn(updates, state, params=None):
        del params
        sum_of_squares = _tree_map(lambda g, s: abs_sq(g) + s, updates, state.sum_of_squares)
        updates = _tree_map(
            lambda s, g: jnp.where(s > 0, jax.lax.rsqrt(s + eps), 0.0) * g, sum_of_squares, updates
        )
        return updates, ScaleByRssState(sum_of_squares)

    return GradientTransformation(init_fn, update_fn)


class ScaleByRmsState(NamedTuple):
    """Update count t (used only with bias correction) and the mean square v."""

    count: jax.Array
    nu: Any


def _rsqrt_denominator(nu, eps, eps_in_sqrt):
    """1/√(v + ε) if ``eps_in_sqrt`` else 1/(√v + ε)."""
    if eps_in_sqrt:
        return jax.lax.rsqrt(nu + eps)
    return 1 / (jnp.sqrt(nu) + eps)


def check_rms_arguments(owner, decay, eps, initial_scale, eps_in_sqrt, bias_correction):
    """RMSprop's β in [0, 1), ε and the initial v finite and >= 0, and its two switches."""
    checks.unit_interval(owner, "decay", decay)
    checks.nonneg(owner, "eps", eps)
    checks.nonneg(owner, "initial_scale", initial_scale)
    checks.boolean(owner, "eps_in_sqrt", eps_in_sqrt)
    checks.boolean(owner, "bias_correction", bias_correction)


def scale_by_rms(
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> GradientTransformation:
    """RMSprop: v ← β·v + (1 − β)·g²; u = g/√(v + ε) (``eps_in_sqrt``) or u = g/(√v + ε).

    With ``bias_correction`` v is replaced by v/(1 − β^t) in the denominator.
    """
    check_rms_arguments("scale_by_rms", decay, eps, initial_scale, eps_in_sqrt, bias_correction)

    def init_fn(params):
        return ScaleByRmsState(count0(), full_like(params, initial_scale))

    def update_fn(updates, state, params=None):
        del params
        nu = moment_ema(updates, state.nu, decay, 2)
        count = safe_increment(state.count) if bias_correction else state.count
        nu_hat = debiased(nu, decay, count) if bias_correction else nu
        updates = _tree_map(lambda n, g: _rsqrt_denominator(n, eps, eps_in_sqrt) * g, nu_hat, updates)
        return updates, ScaleByRmsState(count, nu)

    return GradientTransformation(init_fn, update_fn)


class ScaleByStddevState(NamedTuple):
    """Update count t, the mean m and the mean square v of the gradients."""

    count: jax.Array
    mu: Any
    nu: Any


def scale_by_stddev(
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    bias_correction: bool = False,
) -> GradientTransformation:
    """Centered RMSprop: m ← β·m + (1 − β)·g, v ← β·v + (1 − β)·g²; u = g/√(v − m² + ε).

    ``eps_in_sqrt=False`` gives u = g/(√(v − m²) + ε); ``bias_correction`` divides m and v by 1 − β^t.
    """
    check_rms_arguments("scale_by_stddev", decay, eps, initial_scale, eps_in_sqrt, bias_correction)

    def init_fn(params):
        return ScaleByStddevState(count0(), zeros_like(params), full_like(params, initial_scale))

    def update_fn(updates, state, params=None):
        del params
        mu = moment_ema(updates, state.mu, decay, 1)
        nu = moment_ema(updates, state.nu, decay, 2)
        count = safe_increment(state.count) if bias_correction else state.count
        mu_hat = debiased(mu, decay, count) if bias_correction else mu
        nu_hat = debiased(nu, decay, count) if bias_correction else nu
        updates = _tree_map(
            lambda m, n, g: _rsqrt_denominator(n - abs_sq(m), eps, eps_in_sqrt) * g,
            mu_hat,
            nu_hat,
            updates,
        )
        return updates, ScaleByStddevState(count, mu, nu)

    return GradientTransformation(init_fn, update_fn)


class ScaleByAdamState(NamedTuple):
    """Update count t, first moment m and second moment v."""

    count: jax.Array
    mu: Any
    nu: Any


def check_adam_arguments(b1, b2, eps, eps_root, owner):
    """β₁, β₂ in [0, 1); ε, ε_root finite and >= 0 (shared by the Adam family and its aliases)."""
    checks.unit_interval(owner, "b1", b1)
    checks.unit_interval(owner, "b2", b2)
    checks.nonneg(owner, "eps", eps)
    checks.nonneg(owner, "eps_root", eps_root)


def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype=None,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """Adam with bias correction (the notes' form, Kingma & Ba 2015)::

        m ← β₁·m + (1 − β₁)·g         m̂ = m / (1 − β₁^t)
        v ← β₂·v + (1 − β₂)·g²        v̂ = v / (1 − β₂^t)
        u = m̂ / (√(v̂ + ε_root) + ε)

    ``nesterov=True`` is NAdam (Dozat 2016): m̂ = β₁·m/(1 − β₁^{t+1}) + (1 − β₁)·g/(1 − β₁^t).
    """
    check_adam_arguments(b1, b2, eps, eps_root, "scale_by_adam")
    checks.boolean("scale_by_adam", "nesterov", nesterov)

    def init_fn(params):
        return ScaleByAdamState(count0(), zeros_like(params, mu_dtype), zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        mu = moment_ema(updates, state.mu, b1, 1)
        nu = moment_ema(updates, state.nu, b2, 2)
        count = safe_increment(state.count)
        if nesterov:
            mu_hat = _tree_map(
                lambda m, g: b1 * m + (1 - b1) * g,
                debiased(mu, b1, safe_increment(count)),
                debiased(updates, b1, count),
            )
        else:
            mu_hat = debiased(mu, b1, count)
        nu_hat = debiased(nu, b2, count)
        updates = _tree_map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat)
        nu = _tree_map(lambda n, old: n.astype(old.dtype), nu, state.nu)
        return updates, ScaleByAdamState(count, cast(mu, mu_dtype), nu)

    return GradientTransformation(init_fn, update_fn)


class ScaleByAmsgradState(NamedTuple):
    """Update count t, moments m and v, and the running maximum of v̂."""

    count: jax.Array
    mu: Any
    nu: Any
    nu_max: Any


def scale_by_amsgrad(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype=None,
) -> GradientTransformation:
    """AMSGrad: Adam's m̂ and v̂, then v_max ← max(v_max, v̂); u = m̂ / (√(v_max + ε_root) + ε)."""
    check_adam_arguments(b1, b2, eps, eps_root, "scale_by_amsgrad")

    def init_fn(params):
        zeros = zeros_like(params)
        return ScaleByAmsgradState(count0(), zeros_like(params, mu_dtype), zeros, zeros)

    def update_fn(updates, state, params=None):
        del params
        mu = moment_ema(updates, state.mu, b1, 1)
        nu = moment_ema(updates, state.nu, b2, 2)
        count = safe_increment(state.count)
        mu_hat = debiased(mu, b1, count)
        nu_max = _tree_map(jnp.maximum, state.nu_max, debiased(nu, b2, count))
        updates = _tree_map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_max)
        return updates, ScaleByAmsgradState(count, cast(mu, mu_dtype), nu, nu_max)

    return GradientTransformation(init_fn, update_fn)


class ScaleByLionState(NamedTuple):
    """Update count t and the momentum m."""

    count: jax.Array
    mu: Any


def scale_by_lion(b1: float = 0.9, b2: float = 0.99, mu_dtype=None) -> GradientTransformation:
    """Lion (Chen et al. 2023): u = sign((1 − β₁)·g + β₁·m); then m ← β₂·m + (1 − β₂)·g."""
    checks.unit_interval("scale_by_lion", "b1", b1)
    checks.unit_interval("scale_by_lion", "b2", b2)

    def init_fn(params):
        return ScaleByLionState(count0(), zeros_like(params, mu_dtype))

    def update_fn(updates, state, params=None):
        del params
        new_updates = _tree_map(lambda g, m: jnp.sign((1.0 - b1) * g + b1 * m), updates, state.mu)
        mu = cast(moment_ema(updates, state.mu, b2, 1), mu_dtype)
        return new_updates, ScaleByLionState(safe_increment(state.count), mu)

    return GradientTransformation(init_fn, update_fn)


# --------------------------------------------------------------------------------------------
# Reading the state for logging


def learning_rate(opt_state) -> jax.Array | None:
    """The learning rate η of the latest update (of the next one right after ``init``), or None.

    Finds the ``ScaleByLearningRateState`` that ``scale_by_learning_rate`` keeps, however deeply
    it is nested (chains, ``apply_if_finite``, optax's ``chain`` or ``MultiSteps``). Without one,
    the ``learning_rate`` that ``inject_hyperparams`` holds (an optax optimizer wrapped in it).
    Works inside ``jit``. Returns None for a state with neither (e.g. a pure optax optimizer).
    """
    found = find_states(opt_state, ScaleByLearningRateState)
    if found:
        return found[0].learning_rate
    return (find_hyperparams(opt_state) or {}).get("learning_rate")
