"""An exponential moving average (EMA, Polyak averaging) of the parameters, bias-corrected like Adam.

With decay β and the parameters θ_1, θ_2, ... after each update (m_0 = 0, t counts updates):

    m_t = β·m_{t-1} + (1 − β)·θ_t,        θ̄_t = m_t / (1 − β^t).

The correction makes θ̄_t a proper weighted mean of the iterates, Σ_{s≤t} (1 − β)·β^{t−s}·θ_s / (1 − β^t)
(the weights sum to 1), so early in training it is not pulled towards the zeros m starts from; for
t ≫ 1/(1 − β) it is the plain EMA. Before the first update (t = 0) there is no average and
``averaged`` returns the parameters themselves. The record lives in ``TrainState.ema`` and is
checkpointed with the rest of the state (β and t included), so a resumed run continues it exactly.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnlearn import checks
from fnlearn.errors import FnlearnError

__all__ = ["EmaState", "init", "update", "averaged", "check_decay", "check_restorable"]


class EmaState(NamedTuple):
    """β (float32 scalar), t (int32 updates averaged so far) and m_t (a pytree like the params)."""

    decay: jax.Array
    count: jax.Array
    mean: Any


def check_decay(owner: str, decay) -> float:
    """β in (0, 1): the average forgets at rate 1 − β per update (β = 0.999 spans ≈ 1000 updates)."""
    if not checks.is_number(decay) or not 0.0 < float(decay) < 1.0:
        raise FnlearnError(
            f"{owner}: ema must be a decay β with 0 < β < 1 such as 0.999 (an average over about "
            f"1/(1 − β) updates), got {checks.show(decay)}."
        )
    return float(decay)


def init(params, decay: float) -> EmaState:
    """m_0 = 0 of the params' shapes and dtypes, t = 0."""
    return EmaState(
        jnp.asarray(check_decay("ema", decay), jnp.float32),
        jnp.zeros((), jnp.int32),
        jax.tree.map(jnp.zeros_like, params),
    )


def update(ema: EmaState, params) -> EmaState:
    """m ← β·m + (1 − β)·θ, t ← t + 1 (θ: the parameters after the update)."""
    beta = ema.decay
    mean = jax.tree.map(lambda m, p: (beta * m + (1.0 - beta) * p).astype(m.dtype), ema.mean, params)
    return EmaState(ema.decay, ema.count + 1, mean)


def averaged(ema: EmaState, params=None):
    """θ̄_t = m_t / (1 − β^t); before any update (t = 0) ``params`` (the zeros m_0 without them)."""
    t = ema.count.astype(jnp.float32)
    correction = 1.0 - jnp.power(ema.decay, t)
    safe = jnp.where(ema.count > 0, correction, 1.0)
    if params is None:
        return jax.tree.map(lambda m: (m / safe).astype(m.dtype), ema.mean)
    return jax.tree.map(lambda m, p: jnp.where(ema.count > 0, m / safe, p).astype(m.dtype), ema.mean, params)


def check_restorable(saved: list, template: list, where) -> None:
    """A checkpoint with a moving average restores only into a state that keeps one, and the other
    way round; ``saved`` and ``template`` are checkpoint signatures, ``[path, shape, dtype]`` per leaf."""
    saved_ema, state_ema = (any(path.startswith("ema/") for path, *_ in sig) for sig in (saved, template))
    if state_ema and not saved_ema:
        raise FnlearnError(
            f"checkpoint {where} was written without training.ema (fit's ema=); resume without it, "
            "or start a new run with --out."
        )
    if saved_ema and not state_ema:
        raise FnlearnError(
            f"checkpoint {where} keeps a moving average of the parameters (training.ema, fit's ema=); "
            "resume with the same training.ema, or start a new run with --out."
        )
