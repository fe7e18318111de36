"""``reduce_on_plateau``: scale the updates down when the loss stops improving (optax's contrib rule).

The loss arrives through the extra-arguments protocol, ``update(g, state, params, value=loss)``,
so the transform goes into a chain after the optimizer::

    opt = fnlearn.optim.chain(fnlearn.optim.adam(1e-3), fnlearn.optim.reduce_on_plateau(patience=5))
    updates, state = opt.update(grads, state, params, value=loss)

Same arguments, defaults, state and numbers as ``optax.contrib.reduce_on_plateau`` (the tests feed
both the same losses and compare every step).
"""

from __future__ import annotations

import functools
import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fnlearn.errors import FnlearnError
from fnlearn.optim.base import GradientTransformation, safe_increment

__all__ = ["ReduceLROnPlateauState", "reduce_on_plateau"]


class ReduceLROnPlateauState(NamedTuple):
    """``scale`` s multiplies the updates. ``best_value``: the best mean loss so far.
    ``plateau_count``: judged means without improvement since the last improvement or reduction.
    ``cooldown_count``: judgements still to ignore after a reduction. ``count`` and ``avg_value``:
    losses averaged so far towards the next judgement, and their mean."""

    scale: jax.Array
    best_value: jax.Array
    plateau_count: jax.Array
    cooldown_count: jax.Array
    count: jax.Array
    avg_value: jax.Array


def _check_arguments(factor, patience, rtol, atol, cooldown, accumulation_size, min_scale) -> None:
    """optax's checks (as one-line ``FnlearnError``s), plus the counts and the floor."""
    owner = "reduce_on_plateau"
    if not 0.0 < factor < 1.0:
        raise FnlearnError(f"{owner}: factor={factor!r} must lie in (0, 1): s ← s·factor, e.g. factor=0.5.")
    if rtol < 0.0 or atol < 0.0 or rtol > 1.0 or (rtol == 0.0 and atol == 0.0):
        raise FnlearnError(
            f"{owner}: rtol={rtol!r}, atol={atol!r}: both must be >= 0, rtol <= 1, and one of them > 0 "
            "(a mean loss improves when it is below (1 − rtol)·best − atol); e.g. rtol=1e-4, atol=0."
        )
    counts = {
        "patience": (patience, 0),
        "cooldown": (cooldown, 0),
        "accumulation_size": (accumulation_size, 1),
    }
    for name, (value, least) in counts.items():
        if isinstance(value, numbers.Real) and (
            isinstance(value, bool) or value != int(value) or value < least
        ):
            raise FnlearnError(f"{owner}: {name}={value!r} must be a whole number >= {least}.")
    if isinstance(min_scale, numbers.Real) and not min_scale >= 0:
        raise FnlearnError(f"{owner}: min_scale={min_scale!r} must be >= 0 (the smallest scale s reaches).")


def _extreme_dtype(params, lowest: bool):
    """The lowest (or highest) dtype of the leaves under jax's promotion order (optax's tree_dtype)."""
    dtypes = [jnp.asarray(x).dtype for x in jax.tree.leaves(params)]
    if not dtypes:
        return jnp.asarray([]).dtype

    def pick(a, b):
        promoted = jnp.promote_types(a, b)
        if promoted not in (a, b):
            raise FnlearnError(
                f"reduce_on_plateau: the parameters mix {a} and {b}, neither of which promotes to the "
                "other, so the state's dtype is ambiguous; give all parameters one floating dtype."
            )
        high = promoted
        return (b if high == a else a) if lowest else high

    return functools.reduce(pick, dtypes)


def _judge(state: ReduceLROnPlateauState, factor, patience, rtol, atol, cooldown, min_scale):
    """One judgement of the mean loss v̄ (``state.avg_value``)::

    improved = v̄ < (1 − rtol)·best − atol;   best ← v̄ if improved
    plateau  = 0 if improved else plateau + 1
    cooling (cooldown_count > 0):  plateau ← 0, cooldown_count ← cooldown_count − 1, s kept
    else if plateau = patience:    s ← max(s·factor, min_scale), plateau ← 0, cooldown_count ← cooldown
    else:                          s ← max(s, min_scale), cooldown_count ← 0
    """
    improved = state.avg_value < (1 - rtol) * state.best_value - atol
    best = jnp.where(improved, state.avg_value.astype(state.best_value.dtype), state.best_value)
    plateau = jnp.where(improved, 0, safe_increment(state.plateau_count))
    cooling = state.cooldown_count > 0
    reduce = plateau == patience
    scale = jnp.maximum(jnp.where(reduce, state.scale * factor, state.scale), min_scale)
    return ReduceLROnPlateauState(
        scale=jnp.where(cooling, state.scale, scale).astype(state.scale.dtype),
        best_value=best.astype(state.best_value.dtype),
        plateau_count=jnp.where(cooling | reduce, 0, plateau).astype(jnp.int32),
        cooldown_count=jnp.where(cooling, state.cooldown_count - 1, jnp.where(reduce, cooldown, 0)).astype(
            jnp.int32
        ),
        count=jnp.zeros([], jnp.int32),
        avg_value=jnp.zeros([], state.avg_value.dtype),
    )


def reduce_on_plateau(
    factor: float = 0.1,
    patience=10,
    rtol: float = 1e-4,
    atol: float = 0.0,
    cooldown=0,
    accumulation_size=1,
    min_scale=0.0,
) -> GradientTransformation:
    """u = s·g, with s (from 1) multiplied by ``factor`` when the loss reaches a plateau.

    Each update adds ``value`` (the loss) to a running mean v̄ = (n·v̄ + value)/(n + 1); after
    ``accumulation_size`` values v̄ is judged (see ``_judge``: an improvement is v̄ < (1 − rtol)·best −
    atol; ``patience`` judgements without one multiply s by ``factor``, never below ``min_scale``,
    and the next ``cooldown`` judgements are ignored) and the mean restarts. Fed the loss of every
    batch, ``accumulation_size`` = batches per epoch judges the epoch's mean loss.

    The state's scalars use the parameters' lowest float dtype for s and the highest for the
    losses, so bfloat16 updates stay bfloat16 (as in optax).
    """
    _check_arguments(factor, patience, rtol, atol, cooldown, accumulation_size, min_scale)
    judge = functools.partial(
        _judge, factor=factor, patience=patience, rtol=rtol, atol=atol, cooldown=cooldown, min_scale=min_scale
    )

    def init_fn(params):
        low, high = _extreme_dtype(params, lowest=True), _extreme_dtype(params, lowest=False)
        zero = jnp.zeros([], jnp.int32)
        return ReduceLROnPlateauState(
            scale=jnp.asarray(1.0, low),
            best_value=jnp.asarray(jnp.inf, high),
            plateau_count=zero,
            cooldown_count=zero,
            count=zero,
            avg_value=jnp.asarray(0.0, high),
        )

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        del params, extra_args
        if value is None:
            raise FnlearnError(
                "reduce_on_plateau needs the loss: call update(grads, state, params, value=loss). Inside "
                "optax.chain (which passes extra arguments only to optax's own classes) use "
                "fnlearn.optim.chain, or hand it to optax as "
                "optax.GradientTransformationExtraArgs(*fnlearn.optim.reduce_on_plateau())."
            )
        count = safe_increment(state.count)
        avg = (state.count * state.avg_value + jnp.asarray(value).astype(state.avg_value.dtype)) / count
        state = state._replace(avg_value=avg.astype(state.avg_value.dtype), count=count)
        judged = judge(state)
        ready = count == accumulation_size
        state = jax.tree.map(lambda new, old: jnp.where(ready, new, old), judged, state)
        return jax.tree.map(lambda g: state.scale * g, updates), state

    return GradientTransformation(init_fn, update_fn)
