"""The gradient-transformation protocol, ``chain`` and ``apply_updates``, written to optax's contract.

A gradient transformation is a pair of pure functions::

    init(params)                          -> state
    update(updates, state, params=None)   -> (updates, state)

``GradientTransformation`` here is fnlearn's own ``NamedTuple`` with the fields ``init`` and
``update``, the same two names optax uses. optax never checks the class of what it is given: its
``chain``, ``MultiSteps`` and wrappers only call ``.init`` and ``.update`` (through
``optax.with_extra_args_support``), so an fnlearn transform drops into any optax combinator, and
an optax transform (whose ``update`` accepts ``(updates, state, params)``) drops into
``fnlearn.optim.chain``. Keeping the base types our own keeps fnlearn's protocol independent of
optax's internals; the tests prove both directions step by step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnlearn.errors import FnlearnError

__all__ = [
    "GradientTransformation",
    "EmptyState",
    "identity",
    "chain",
    "apply_updates",
    "safe_increment",
]


class GradientTransformation(NamedTuple):
    """``init(params) -> state`` and ``update(updates, state, params=None) -> (updates, state)``."""

    init: Callable[[Any], Any]
    update: Callable[..., tuple[Any, Any]]


class EmptyState(NamedTuple):
    """The state of a stateless transform (an empty pytree)."""


def init_empty_state(params) -> EmptyState:
    """``init`` of every stateless transform."""
    del params
    return EmptyState()


def identity() -> GradientTransformation:
    """u ← g: passes the updates through unchanged."""

    def update_fn(updates, state, params=None):
        del params
        return updates, state

    return GradientTransformation(init_empty_state, update_fn)


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Compose transforms left to right: u ← T_k(… T_2(T_1(g)) …); the state is a tuple of states.

    Any object with ``init`` and ``update`` attributes works, optax transforms included.
    """
    for i, t in enumerate(transforms):
        if not (callable(getattr(t, "init", None)) and callable(getattr(t, "update", None))):
            raise FnlearnError(
                f"chain: argument {i} is {type(t).__name__}, not a gradient transformation. "
                "Expected an object with init(params) and update(updates, state, params), e.g. "
                "fnlearn.optim.scale_by_adam() or optax.clip_by_global_norm(1.0)."
            )

    def init_fn(params):
        return tuple(t.init(params) for t in transforms)

    def update_fn(updates, state, params=None):
        if len(state) != len(transforms):
            raise FnlearnError(
                f"chain: got a state with {len(state)} entries for {len(transforms)} transforms. "
                "Pass the state returned by this optimizer's own init(params)."
            )
        new_state = []
        for t, s in zip(transforms, state, strict=True):
            updates, s = t.update(updates, s, params)
            new_state.append(s)
        return updates, tuple(new_state)

    return GradientTransformation(init_fn, update_fn)


def apply_updates(params, updates):
    """θ ← θ + u, leaf by leaf, keeping each parameter's dtype (bfloat16 stays bfloat16)."""
    return jax.tree_util.tree_map(
        lambda p, u: None if p is None else jnp.asarray(p + u).astype(jnp.asarray(p).dtype),
        params,
        updates,
        is_leaf=lambda x: x is None,
    )


def safe_increment(count: jax.Array) -> jax.Array:
    """count + 1, saturating at the dtype's maximum instead of wrapping around."""
    count = jnp.asarray(count)
    top = jnp.iinfo(count.dtype).max
    return jnp.where(count < top, count + 1, top).astype(count.dtype)
