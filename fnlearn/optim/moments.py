"""The formulas every adaptive method shares, leaf by leaf over pytrees: |g|², g^order, the moment
update m ← (1 − β)·g^order + β·m, the bias correction m̂ = m / (1 − β^t), and tree constructors."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["abs_sq", "power", "moment_ema", "debiased", "full_like", "zeros_like", "cast", "count0"]

_tree_map = jax.tree_util.tree_map


def abs_sq(x):
    """|x|² = x·x̄, real; x·x for real x (the same program as before complex support)."""
    return (x.conj() * x).real if jnp.iscomplexobj(x) else x * x


def power(g, order):
    """g^order; for complex g, |g|^order (a second moment of complex gradients is real, as in optax)."""
    return abs_sq(g) ** (order // 2) if jnp.iscomplexobj(g) and order % 2 == 0 else g**order


def moment_ema(updates, moments, decay, order):
    """m ← (1 − β)·g^order + β·m (|g|^order for complex g and even order)."""
    return _tree_map(lambda g, m: (1 - decay) * power(g, order) + decay * m, updates, moments)


def debiased(moments, decay, count):
    """m̂ = m / (1 − β^t); 1 − β^t is computed in float32 before casting to the moment's dtype."""
    correction = 1 - decay**count
    return _tree_map(lambda m: m / correction.astype(m.dtype), moments)


def full_like(tree, value, dtype=None):
    return _tree_map(lambda x: jnp.full_like(x, value, dtype=dtype), tree)


def zeros_like(tree, dtype=None):
    return _tree_map(lambda x: jnp.zeros_like(x, dtype=dtype), tree)


def cast(tree, dtype):
    return tree if dtype is None else _tree_map(lambda x: x.astype(dtype), tree)


def count0():
    return jnp.zeros([], jnp.int32)
