"""Weight decay as a transform: u = g + λ·θ (decoupled L2) or u = g + λ·sign(θ) (L1), on the
leaves a mask selects; λ may be a schedule of the update count.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn import checks
from fnlearn.errors import FnlearnError
from fnlearn.optim.base import EmptyState, GradientTransformation, safe_increment
from fnlearn.optim.moments import count0
from fnlearn.tree import leaf_paths

__all__ = ["add_decayed_weights", "add_l1_decay", "WeightDecayState"]

_tree_map = jax.tree_util.tree_map


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
        return WeightDecayState(count0()) if callable(strength) else EmptyState()

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
