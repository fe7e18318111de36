"""Clipping the update: element by element, or by the global norm over the whole tree."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fnlearn import checks
from fnlearn.optim.base import GradientTransformation, init_empty_state
from fnlearn.optim.moments import abs_sq

__all__ = ["clip", "clip_by_global_norm"]

_tree_map = jax.tree_util.tree_map


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
        norm = jnp.sqrt(sum(jnp.sum(abs_sq(g)) for g in leaves))
        keep = norm < max_norm
        updates = _tree_map(lambda g: jax.lax.select(keep, g, (g / norm.astype(g.dtype)) * max_norm), updates)
        return updates, state

    return GradientTransformation(init_empty_state, update_fn)
