"""Robustness to non-finite updates: ``apply_if_finite`` skips them (keeping the inner state), and
``skipped_steps`` reads how many it skipped.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnlearn import checks
from fnlearn.optim.base import GradientTransformation, find_states, safe_increment, with_extra_args_support
from fnlearn.optim.moments import count0, zeros_like

__all__ = ["apply_if_finite", "skipped_steps", "ApplyIfFiniteState"]

_tree_map = jax.tree_util.tree_map


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
        zero = count0()
        return ApplyIfFiniteState(zero, jnp.array(True), zero, zero, inner.init(params))

    def update_fn(updates, state, params=None, **extra_args):
        leaves = jax.tree_util.tree_leaves(updates)
        finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in leaves]))
        notfinite_count = jnp.where(finite, count0(), safe_increment(state.notfinite_count))
        accept = jnp.logical_or(finite, notfinite_count > max_consecutive_errors)
        new_updates, inner_state = jax.lax.cond(
            accept,
            lambda: with_extra_args_support(inner).update(updates, state.inner_state, params, **extra_args),
            lambda: (zeros_like(updates), state.inner_state),
        )
        return new_updates, ApplyIfFiniteState(
            notfinite_count=notfinite_count,
            last_finite=finite,
            total_notfinite=jnp.where(finite, state.total_notfinite, safe_increment(state.total_notfinite)),
            skipped=jnp.where(accept, state.skipped, safe_increment(state.skipped)),
            inner_state=inner_state,
        )

    return GradientTransformation(init_fn, update_fn)


def skipped_steps(opt_state) -> jax.Array | None:
    """How many updates ``apply_if_finite`` skipped since init (summed if nested), or None."""
    found = find_states(opt_state, ApplyIfFiniteState)
    return sum(s.skipped for s in found) if found else None
