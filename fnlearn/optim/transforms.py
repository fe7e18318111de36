"""Building blocks: each a factory returning ``GradientTransformation(init, update)``.

Notation: g is the incoming update (the gradient at the start of a chain), u the outgoing one, t the
update count (1 on the first update), θ the parameters. Every formula below is applied leaf by
leaf and element by element. The arithmetic follows optax's order of operations so that fnlearn and
optax agree to the last bit in float32 (the tests check this over hundreds of steps).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn import checks
from fnlearn.errors import FnlearnError
from fnlearn.optim.base import (
    EmptyState,
    GradientTransformation,
    init_empty_state,
    safe_increment,
    with_extra_args_support,
)
from fnlearn.optim.hyperparams import find_hyperparams
from fnlearn.tree import leaf_paths

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
    "add_decayed_weights",
    "add_l1_decay",
    "clip",
    "clip_by_global_norm",
    "apply_if_finite",
    "learning_rate",
    "skipped_steps",
]

_tree_map = jax.tree_util.tree_map


# --------------------------------------------------------------------------------------------
# Moment helpers (the three formulas every adaptive method shares)


def _abs_sq(x):
    """|x|² = x·x̄, real; x·x for real x (the same program as before complex support)."""
    return (x.conj() * x).real if jnp.iscomplexobj(x) else x * x


def _power(g, order):
    """g^order; for complex g, |g|^order (a second moment of complex gradients is real, as in optax)."""
    return _abs_sq(g) ** (order // 2) if jnp.iscomplexobj(g) and order % 2 == 0 else g**order


def _ema(updates, moments, decay, order):
    """m ← (1 − β)·g^order + β·m (|g|^order for complex g and even order)."""
    return _tree_map(lambda g, m: (1 - decay) * _power(g, order) + decay * m, updates, moments)


def _bias_correction(moments, decay, count):
    """m̂ = m / (1 − β^t); 1 − β^t is computed in float32 before casting to the moment's dtype."""
    correction = 1 - decay**count
    return _tree_map(lambda m: m / correction.astype(m.dtype), moments)


def _full_like(tree, value, dtype=None):
    return _tree_map(lambda x: jnp.full_like(x, value, dtype=dtype), tree)


def _zeros_like(tree, dtype=None):
    return _tree_map(lambda x: jnp.zeros_like(x, dtype=dtype), tree)


def _cast(tree, dtype):
    return tree if dtype is None else _tree_map(lambda x: x.astype(dtype), tree)


def _count0():
    return jnp.zeros([], jnp.int32)


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
        count = _count0()
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
        return TraceState(_zeros_like(params, accumulator_dtype))

    def update_fn(updates, state, params=None):
        del params
        step = lambda g, m: g + decay * m  # noqa: E731 - the one formula, used twice
        new_trace = _tree_map(step, updates, state.trace)
        updates = _tree_map(step, updates, new_trace) if nesterov else new_trace
        return updates, TraceState(_cast(new_trace, accumulator_dtype))

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
        return EmaState(_count0(), _zeros_like(params, accumulator_dtype))

    def update_fn(updates, state, params=None):
        del params
        new_ema = _ema(updates, state.ema, decay, 1)
        count = safe_increment(state.count)
        updates = _bias_correction(new_ema, decay, count) if debias else new_ema
        return updates, EmaState(count, _cast(new_ema, accumulator_dtype))

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
        return ScaleByRssState(_full_like(params, initial_accumulator_value))

    def update_fn(updates, state, params=None):
        del params
        sum_of_squares = _tree_map(lambda g, s: _abs_sq(g) + s, updates, state.sum_of_squares)
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
        return ScaleByRmsState(_count0(), _full_like(params, initial_scale))

    def update_fn(updates, state, params=None):
        del params
        nu = _ema(updates, state.nu, decay, 2)
        count = safe_increment(state.count) if bias_correction else state.count
        nu_hat = _bias_correction(nu, decay, count) if bias_correction else nu
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
        return ScaleByStddevState(_count0(), _zeros_like(params), _full_like(params, initial_scale))

    def update_fn(updates, state, params=None):
        del params
        mu = _ema(updates, state.mu, decay, 1)
        nu = _ema(updates, state.nu, decay, 2)
        count = safe_increment(state.count) if bias_correction else state.count
        mu_hat = _bias_correction(mu, decay, count) if bias_correction else mu
        nu_hat = _bias_correction(nu, decay, count) if bias_correction else nu
        updates = _tree_map(
            lambda m, n, g: _rsqrt_denominator(n - _abs_sq(m), eps, eps_in_sqrt) * g,
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
        return ScaleByAdamState(_count0(), _zeros_like(params, mu_dtype), _zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        mu = _ema(updates, state.mu, b1, 1)
        nu = _ema(updates, state.nu, b2, 2)
        count = safe_increment(state.count)
        if nesterov:
            mu_hat = _tree_map(
                lambda m, g: b1 * m + (1 - b1) * g,
                _bias_correction(mu, b1, safe_increment(count)),
                _bias_correction(updates, b1, count),
            )
        else:
            mu_hat = _bias_correction(mu, b1, count)
        nu_hat = _bias_correction(nu, b2, count)
        updates = _tree_map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat)
        nu = _tree_map(lambda n, old: n.astype(old.dtype), nu, state.nu)
        return updates, ScaleByAdamState(count, _cast(mu, mu_dtype), nu)

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
        zeros = _zeros_like(params)
        return ScaleByAmsgradState(_count0(), _zeros_like(params, mu_dtype), zeros, zeros)

    def update_fn(updates, state, params=None):
        del params
        mu = _ema(updates, state.mu, b1, 1)
        nu = _ema(updates, state.nu, b2, 2)
        count = safe_increment(state.count)
        mu_hat = _bias_correction(mu, b1, count)
        nu_max = _tree_map(jnp.maximum, state.nu_max, _bias_correction(nu, b2, count))
        updates = _tree_map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_max)
        return updates, ScaleByAmsgradState(count, _cast(mu, mu_dtype), nu, nu_max)

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
        return ScaleByLionState(_count0(), _zeros_like(params, mu_dtype))

    def update_fn(updates, state, params=None):
        del params
        new_updates = _tree_map(lambda g, m: jnp.sign((1.0 - b1) * g + b1 * m), updates, state.mu)
        mu = _cast(_ema(updates, state.mu, b2, 1), mu_dtype)
        return new_updates, ScaleByLionState(safe_increment(state.count), mu)

    return GradientTransformation(init_fn, update_fn)


# --------------------------------------------------------------------------------------------
# Regularisation


def _expand_mask(mask, params, owner):
    """The mask as a tree of Python bools with exactly the structure of ``params``.

    ``mask`` is a tree of bools whose structure is ``params``' structure or a prefix of it (a bool
    at a subtree covers the whole subtree), or a callable ``params -> such a tree``.
    """
    tree = mask(params) if callable(mask) else mask
    for leaf in jax.tree_util.tree_leaves(tree):
        if not isinstance(leaf, bool | np.bool_):
            raise FnlearnError(
                f"{owner}: mask leaves must be Python bools, got {type(leaf).__name__} {leaf!r}. "
                "The mask decides the program's structure, so it cannot be an array; write e.g. "
                "mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p) (x.ndim > 1 is a bool)."
            )
    try:
        return _tree_map(lambda m, sub: _tree_map(lambda _: bool(m), sub), tree, params)
    except (ValueError, TypeError) as err:
        raise FnlearnError(
            f"{owner}: mask does not match the parameters. The mask must have the parameters' "
            f"structure (or a prefix of it) with a bool at each leaf. Parameter leaves: "
            f"{leaf_paths(params)}; mask leaves: {leaf_paths(tree)}. For example "
            f"mask=lambda p: jax.tree.map(lambda x: x.ndim > 1, p) decays only matrices."
        ) from err


def _masked_weight_term(strength, term, mask, owner):
    """The shared body of the decay transforms: u = g + λ_t·term(θ) on the leaves the mask selects."""
    checks.rate(owner, "weight_decay", strength, allow_zero=True)

    def init_fn(params):
        if mask is not None:
            _expand_mask(mask, params, owner)
        return WeightDecayState(_count0()) if callable(strength) else EmptyState()

    def update_fn(updates, state, params=None):
        if params is None:
            raise FnlearnError(f"{owner} needs the parameters: call update(grads, state, params).")
        if isinstance(strength, int | float) and strength == 0:
            return updates, state  # nothing to add (optax skips this case too)
        selected = _tree_map(lambda _: True, params) if mask is None else _expand_mask(mask, params, owner)
        if callable(strength):
            s = strength(state.count)
            state = WeightDecayState(safe_increment(state.count))
        else:
            s = strength
        updates = _tree_map(lambda g, p, on: g + s * term(p) if on else g, updates, params, selected)
        return updates, state

    return GradientTransformation(init_fn, update_fn)


class WeightDecayState(NamedTuple):
    """Update count t, kept only when the decay strength is a schedule."""

    count: jax.Array


def add_decayed_weights(weight_decay=0.0, mask=None) -> GradientTransformation:
    """Decoupled L2 weight decay: u = g + λ·θ on the leaves ``mask`` selects (all if None).

    Placed before ``scale_by_learning_rate`` (as in ``adamw``) the step is θ ← θ − η·(g + λ·θ)
    with g the incoming update: the decay is multiplied by the learning rate, as in optax and
    PyTorch's AdamW.
    """
    return _masked_weight_term(weight_decay, lambda p: p, mask, "add_decayed_weights")


def add_l1_decay(weight_decay=0.0, mask=None) -> GradientTransformation:
    """L1 shrinkage: u = g + λ·sign(θ), the (sub)gradient of λ·‖θ‖₁, on the leaves ``mask`` selects."""
    return _masked_weight_term(weight_decay, jnp.sign, mask, "add_l1_decay")


# --------------------------------------------------------------------------------------------
# Clipping


def clip(max_delta: float) -> GradientTransformation:
    """u = min(max(g, −δ), δ) element-wise."""
    checks.nonneg("clip", "max_delta", max_delta)

    def update_fn(updates, state, params=None):
        del params
        return _tree_map(lambda g: jnp.clip(g, -max_delta, max_delta), updates), state

    return GradientTransformation(init_empty_state, update_fn)


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """u = g if ‖g‖ < c else g·c/‖g‖, with ‖g‖ = √(Σ_leaves Σ_i g_i²) over the whole tree."""
    checks.nonneg("clip_by_global_norm", "max_norm", max_norm)

    def update_fn(updates, state, params=None):
        del params
        leaves = jax.tree_util.tree_leaves(updates)
        norm = jnp.sqrt(sum(jnp.sum(_abs_sq(g)) for g in leaves))
        keep = norm < max_norm
        updates = _tree_map(lambda g: jax.lax.select(keep, g, (g / norm.astype(g.dtype)) * max_norm), updates)
        return updates, state

    return GradientTransformation(init_empty_state, update_fn)


# --------------------------------------------------------------------------------------------
# Robustness


class ApplyIfFiniteState(NamedTuple):
    """``notfinite_count``: consecutive non-finite updates so far (reset by a finite one).
    ``last_finite``: whether the latest update was finite. ``total_notfinite``: non-finite updates
    since init. ``skipped``: updates actually skipped (non-finite ones not let through after
    ``max_consecutive_errors``); ``fnlearn.optim.skipped_steps(state)`` reads it.
    ``inner_state``: the wrapped optimizer's state, untouched by a skipped update."""

    notfinite_count: jax.Array
    last_finite: jax.Array
    total_notfinite: jax.Array
    skipped: jax.Array
    inner_state: Any


def apply_if_finite(inner: GradientTransformation, max_consecutive_errors: int) -> GradientTransformation:
    """Skip non-finite updates: if any g is NaN/±inf, u = 0 and the inner state is kept.

    After more than ``max_consecutive_errors`` non-finite updates in a row the update is let
    through (optax's rule), so a run that is truly broken shows it instead of silently stalling.
    """
    checks.nonneg_int("apply_if_finite", "max_consecutive_errors", max_consecutive_errors)

    def init_fn(params):
        zero = _count0()
        return ApplyIfFiniteState(zero, jnp.array(True), zero, zero, inner.init(params))

    def update_fn(updates, state, params=None, **extra_args):
        leaves = jax.tree_util.tree_leaves(updates)
        finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in leaves]))
        notfinite_count = jnp.where(finite, _count0(), safe_increment(state.notfinite_count))
        accept = jnp.logical_or(finite, notfinite_count > max_consecutive_errors)
        new_updates, inner_state = jax.lax.cond(
            accept,
            lambda: with_extra_args_support(inner).update(updates, state.inner_state, params, **extra_args),
            lambda: (_zeros_like(updates), state.inner_state),
        )
        return new_updates, ApplyIfFiniteState(
            notfinite_count=notfinite_count,
            last_finite=finite,
            total_notfinite=jnp.where(finite, state.total_notfinite, safe_increment(state.total_notfinite)),
            skipped=jnp.where(accept, state.skipped, safe_increment(state.skipped)),
            inner_state=inner_state,
        )

    return GradientTransformation(init_fn, update_fn)


# --------------------------------------------------------------------------------------------
# Reading the state for logging


def _find_states(opt_state, kind):
    return [
        s
        for s in jax.tree_util.tree_leaves(opt_state, is_leaf=lambda x: isinstance(x, kind))
        if isinstance(s, kind)
    ]


def learning_rate(opt_state) -> jax.Array | None:
    """The learning rate η of the latest update (of the next one right after ``init``), or None.

    Finds the ``ScaleByLearningRateState`` that ``scale_by_learning_rate`` keeps, however deeply
    it is nested (chains, ``apply_if_finite``, optax's ``chain`` or ``MultiSteps``). Without one,
    the ``learning_rate`` that ``inject_hyperparams`` holds (an optax optimizer wrapped in it).
    Works inside ``jit``. Returns None for a state with neither (e.g. a pure optax optimizer).
    """
    found = _find_states(opt_state, ScaleByLearningRateState)
    if found:
        return found[0].learning_rate
    return (find_hyperparams(opt_state) or {}).get("learning_rate")


def skipped_steps(opt_state) -> jax.Array | None:
    """How many updates ``apply_if_finite`` skipped since init (summed if nested), or None."""
    found = _find_states(opt_state, ApplyIfFiniteState)
    return sum(s.skipped for s in found) if found else None
