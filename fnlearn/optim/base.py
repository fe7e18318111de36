"""The gradient-transformation protocol, ``chain`` and ``apply_updates``, written to optax's contract.

A gradient transformation is a pair of pure functions::

    init(params)                                        -> state
    update(updates, state, params=None, **extra_args)   -> (updates, state)

``GradientTransformation`` here is fnlearn's own ``NamedTuple`` with the fields ``init`` and
``update``, the same two names optax uses. optax never checks the class of what it is given: its
``chain``, ``MultiSteps`` and wrappers only call ``.init`` and ``.update`` (through
``optax.with_extra_args_support``), so an fnlearn transform drops into any optax combinator, and
an optax transform (whose ``update`` accepts ``(updates, state, params)``) drops into
``fnlearn.optim.chain``. Keeping the base types our own keeps fnlearn's protocol independent of
optax's internals; the tests prove both directions step by step.

**Extra arguments** (optax's ``GradientTransformationExtraArgs`` protocol): every fnlearn transform
accepts keyword arguments after ``params`` (``update(g, s, p, value=loss)``) and ignores the ones
it does not use; ``chain`` and the wrappers hand them to every member. optax needs two classes for
this because its older transforms do not take extra arguments; fnlearn has one class that carries
the protocol: an ``update`` written without ``**extra_args`` is wrapped when the
``GradientTransformation`` is built, so no fnlearn transform can lack it.
``GradientTransformationExtraArgs`` is the same class under optax's name. A member of a chain
that is not fnlearn's (an optax transform) gets the extra arguments if its ``update`` takes
``**kwargs`` (optax's ``GradientTransformationExtraArgs`` do) and none otherwise.

optax's own combinators decide by class, so inside ``optax.chain`` an fnlearn transform gets no
extra arguments; one that needs them (``reduce_on_plateau``) goes into ``fnlearn.optim.chain``, or
into optax's as ``optax.GradientTransformationExtraArgs(*tx)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnlearn.errors import FnlearnError

__all__ = [
    "find_states",
    "EmptyState",
    "GradientTransformation",
    "GradientTransformationExtraArgs",
    "apply_updates",
    "chain",
    "identity",
    "safe_increment",
    "with_extra_args_support",
]


class _InitUpdate(NamedTuple):
    init: Callable[[Any], Any]
    update: Callable[..., tuple[Any, Any]]


class GradientTransformation(_InitUpdate):
    """``init(params) -> state`` and ``update(updates, state, params=None, **extra_args) ->
    (updates, state)``; an ``update`` without ``**extra_args`` is wrapped to accept and ignore them."""

    __slots__ = ()

    def __new__(cls, init, update):
        return super().__new__(cls, init, _accepting_extra_args(update))

    @classmethod
    def _make(cls, iterable):  # _replace and pytree rebuilding go through the same wrapping
        return cls(*iterable)


# optax's name for a transform whose update takes extra arguments: in fnlearn, every one does.
GradientTransformationExtraArgs = GradientTransformation


def _takes_extra_args(update) -> bool:
    """Whether ``update`` has a ``**kwargs`` parameter (its own, not a wrapped function's)."""
    try:
        parameters = inspect.signature(update, follow_wrapped=False).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): assume plain optax form
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _accepting_extra_args(update):
    """``update`` itself if it takes ``**kwargs``, else a wrapper that drops them."""
    if _takes_extra_args(update):
        return update

    def update_ignoring_extra_args(updates, state, params=None, **extra_args):
        del extra_args
        return update(updates, state, params)

    return update_ignoring_extra_args


def with_extra_args_support(tx) -> GradientTransformation:
    """Any object with ``init``/``update`` (an optax transform included) as an fnlearn
    ``GradientTransformation``: extra arguments reach its ``update`` if it takes ``**kwargs``,
    else they are dropped. fnlearn transforms come back unchanged (optax's function of the name)."""
    return tx if isinstance(tx, GradientTransformation) else GradientTransformation(tx.init, tx.update)


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

    Any object with ``init`` and ``update`` attributes works, optax transforms included. Extra
    keyword arguments of ``update`` go to every member that takes them (see the module docstring).
    """
    for i, t in enumerate(transforms):
        if not (callable(getattr(t, "init", None)) and callable(getattr(t, "update", None))):
            raise FnlearnError(
                f"chain: argument {i} is {type(t).__name__}, not a gradient transformation. "
                "Expected an object with init(params) and update(updates, state, params), e.g. "
                "fnlearn.optim.scale_by_adam() or optax.clip_by_global_norm(1.0)."
            )
    transforms = tuple(with_extra_args_support(t) for t in transforms)

    def init_fn(params):
        return tuple(t.init(params) for t in transforms)

    def update_fn(updates, state, params=None, **extra_args):
        if len(state) != len(transforms):
            raise FnlearnError(
                f"chain: got a state with {len(state)} entries for {len(transforms)} transforms. "
                "Pass the state returned by this optimizer's own init(params)."
            )
        new_state = []
        for t, s in zip(transforms, state, strict=True):
            updates, s = t.update(updates, s, params, **extra_args)
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


def find_states(opt_state, kind) -> list:
    """Every state of type ``kind`` in ``opt_state``, however deeply nested (chains, wrappers, optax's)."""
    return [
        s
        for s in jax.tree_util.tree_leaves(opt_state, is_leaf=lambda x: isinstance(x, kind))
        if isinstance(s, kind)
    ]
