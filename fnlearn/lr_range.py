"""The learning-rate range test (Smith 2017, "Cyclical learning rates", §3.3; fastai's lr_find).

Train from ``state`` for ``steps`` updates while the learning rate grows exponentially,

    η_t = η_min · (η_max / η_min)^(t / (steps − 1)),          t = 0, ..., steps − 1,

record the loss ℓ_t of every batch (before its update), and smooth it like Adam's moments,

    s_t = β·s_{t−1} + (1 − β)·ℓ_t,   ŝ_t = s_t / (1 − β^{t+1})     (β = 0.98).

The curve ends where the loss diverges: at the first step whose ŝ_t exceeds ``diverge`` (4) times
the lowest ŝ so far, or is not finite. The suggested rate is the one of steepest descent,
argmin_t dŝ/d(log η) over the curve (np.gradient; its first tenth, where ŝ averages only a few
batches, and its last point are left out), a rate at which the loss still falls fastest.

The state's own optimizer is used at rate η_t: its update u (computed with its own rate η, which
fnlearn's optimizers keep in their state, ``fl.optim.learning_rate``) is rescaled to u·η_t/η, which
is exactly the optimizer at η_t for every optimizer whose update is proportional to its rate (SGD,
momentum, Adam, AdamW, RMSprop, ...). The sweep runs as one compiled ``lax.scan``; the state passed
in is not changed (train from it afterwards at the rate you choose).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn import checks, optim
from fnlearn.errors import FnlearnError
from fnlearn.inputs import check_arrays, check_pair, check_state
from fnlearn.train import objective, train_step

__all__ = ["LRFind", "lr_find", "smooth"]

BETA = 0.98


class LRFind(NamedTuple):
    """The curve up to where the loss diverged, and the suggested rate."""

    learning_rates: np.ndarray  # η_t of the recorded steps
    losses: np.ndarray  # ℓ_t, the batch loss before update t
    smoothed: np.ndarray  # ŝ_t
    suggestion: float  # argmin_t dŝ/d log η
    diverged_at: float | None  # η of the step where ŝ blew up (None: it never did)


def smooth(losses: np.ndarray, beta: float = BETA) -> np.ndarray:
    """ŝ_t = s_t / (1 − β^{t+1}) with s_t = β·s_{t−1} + (1 − β)·ℓ_t, s_{−1} = 0."""
    out, s = np.empty(len(losses)), 0.0
    for t, value in enumerate(losses):
        s = beta * s + (1.0 - beta) * value
        out[t] = s / (1.0 - beta ** (t + 1))
    return out


def _rescaled(tx):
    """``tx`` whose update is multiplied by factor/η (η: the rate tx used); state (inner, factor)."""

    def init(params):
        return (tx.init(params), jnp.ones((), jnp.float32))

    def update(updates, state, params=None, **extra):
        inner, rate = state
        updates, inner = optim.with_extra_args_support(tx).update(updates, inner, params, **extra)
        own = optim.learning_rate(inner)  # 0 in a warmup's first step: then the update is 0 too
        factor = jnp.where(own > 0, rate / jnp.where(own > 0, own, 1.0), 0.0)
        return jax.tree.map(lambda u: u * factor.astype(u.dtype), updates), (inner, rate)

    return optim.GradientTransformation(init, update)


def _sweep(state, x, y, indices, rates, obj):
    """The scan: before step t, the rate η_t goes into the optimizer state; returns ℓ_t."""

    def body(state, row):
        idx, rate = row
        state = state.replace(opt_state=(state.opt_state[0], rate))
        state, metrics = train_step(state, (x[idx], y[idx]), obj, None, False)
        return state, metrics["loss"]

    return jax.lax.scan(body, state, (indices, rates))[1]


_sweep_jit = jax.jit(_sweep, static_argnames=("obj",))


def _curve_end(smoothed: np.ndarray, diverge: float) -> int:
    """The number of steps before ŝ first exceeds ``diverge`` × its minimum so far (or is not finite)."""
    best = math.inf
    for t, value in enumerate(smoothed):
        if not np.isfinite(value) or (t > 0 and value > diverge * best):
            return t
        best = min(best, value)
    return len(smoothed)


def _steepest(rates: np.ndarray, smoothed: np.ndarray) -> float:
    """argmin dŝ/d log η, leaving out the first tenth of the curve (at least 3 points: ŝ is still
    an average of a handful of noisy batches there) and its last point (already turning up)."""
    skip = max(3, len(rates) // 10)
    if len(rates) - skip < 3:
        skip = 0
    part = slice(skip, max(skip + 2, len(rates) - 1))
    slope = np.gradient(smoothed[part], np.log(rates[part]))
    return float(rates[part][int(np.nanargmin(slope))])


def _check(state, min_lr, max_lr, steps, batch_size, diverge) -> None:
    check_state(state, "lr_find")
    checks.positive("lr_find", "min_lr", min_lr)
    checks.positive("lr_find", "max_lr", max_lr)
    if not max_lr > min_lr:
        raise FnlearnError(f"lr_find: max_lr={max_lr} must be larger than min_lr={min_lr}.")
    checks.int_at_least("lr_find", "steps", steps, 5, "The sweep needs a few points, e.g. 100.")
    checks.positive_int("lr_find", "batch_size", batch_size)
    if not checks.is_number(diverge) or diverge <= 1:
        raise FnlearnError(f"lr_find: diverge must be a number > 1 such as 4, got {checks.show(diverge)}.")
    if optim.learning_rate(state.opt_state) is None:
        raise FnlearnError(
            "lr_find needs an optimizer that keeps its learning rate in its state, such as "
            "fl.optim.adam(1e-3) or fl.optim.sgd(0.1) (an optax optimizer: wrap it in fl.optim.inject_hyperparams)."
        )


def lr_find(
    state,
    data,
    *,
    loss,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 100,
    batch_size: int = 32,
    diverge: float = 4.0,
    penalty=None,
    seed: int = 0,
) -> LRFind:
    """Sweep the learning rate from ``min_lr`` to ``max_lr`` over ``steps`` updates of ``state``'s
    optimizer on minibatches of ``data = (x, y)`` (a fresh shuffle per pass, from ``seed``) and
    return the curve and the suggested rate (see the module docstring). ``state`` is not changed.
    """
    _check(state, min_lr, max_lr, steps, batch_size, diverge)
    obj = objective(loss, penalty)
    x, y = check_pair(data, "lr_find", "data")
    check_arrays(state, x, y, obj, name="lr_find data", batch_size=batch_size)
    x, y = np.asarray(x), np.asarray(y)
    rng = np.random.default_rng(seed)
    passes = -(-steps * batch_size // len(x))
    order = np.concatenate([rng.permutation(len(x)) for _ in range(passes)])
    indices = order[: steps * batch_size].reshape(steps, batch_size)
    rates = min_lr * (max_lr / min_lr) ** (np.arange(steps) / (steps - 1))
    # the state's own optimizer state (its moments, its schedule's count), plus the rate factor
    sweep = state.replace(tx=_rescaled(state.tx), opt_state=(state.opt_state, jnp.ones((), jnp.float32)))
    losses = np.asarray(
        _sweep_jit(
            sweep,
            jnp.asarray(x),
            jnp.asarray(y),
            jnp.asarray(indices),
            jnp.asarray(rates, jnp.float32),
            obj=obj,
        ),
        np.float64,
    )
    smoothed = smooth(np.where(np.isfinite(losses), losses, np.inf))
    end = _curve_end(smoothed, diverge)
    kept = slice(0, max(end, 2))
    return LRFind(
        learning_rates=rates[kept],
        losses=losses[kept],
        smoothed=smoothed[kept],
        suggestion=_steepest(rates[kept], smoothed[kept]),
        diverged_at=float(rates[end]) if end < steps else None,
    )
