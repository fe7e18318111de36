"""Wrappers that change when an optimizer steps: ``multi_steps`` (gradient accumulation).

``multi_steps(adam(1e-3), every_k=4)`` is optax's ``MultiSteps(adam(1e-3), every_k_schedule=4)``
written out: the same state (``mini_step``, ``gradient_step``, the inner state, the accumulated
gradients) and the same numbers at every call (the tests compare them over 200 steps).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnlearn.errors import FnlearnError
from fnlearn.optim.base import (
    GradientTransformation,
    safe_increment,
    with_extra_args_support,
)
from fnlearn.tree import cast_like

__all__ = ["MultiStepsState", "multi_steps"]


class MultiStepsState(NamedTuple):
    """``mini_step``: gradients accumulated since the last inner update (0 … k − 1).
    ``gradient_step``: inner updates done. ``inner_opt_state``: the wrapped optimizer's state.
    ``acc_grads``: the running mean (or sum) of the gradients of this accumulation."""

    mini_step: jax.Array
    gradient_step: jax.Array
    inner_opt_state: Any
    acc_grads: Any


def _check_every_k(every_k) -> Callable:
    """``every_k`` as a function of the gradient step: a positive int, or a schedule."""
    if callable(every_k):
        return every_k
    if isinstance(every_k, bool) or not isinstance(every_k, int) or every_k < 1:
        raise FnlearnError(
            f"multi_steps: every_k={every_k!r} must be a positive int (the number of gradients "
            "averaged into one update) or a schedule gradient_step -> int; e.g. every_k=4."
        )
    return lambda gradient_step: every_k


def multi_steps(
    tx: GradientTransformation,
    every_k,
    use_grad_mean: bool = True,
    accumulator_dtype=jnp.float32,
) -> GradientTransformation:
    """Gradient accumulation: one update of ``tx`` per k calls, k = every_k(gradient_step).

    With n = ``mini_step`` gradients already accumulated, call by call::

        A ← A + (g − A)/(n + 1)            (the running mean; A ← A + g with use_grad_mean=False)
        n < k − 1:   u = 0,  n ← n + 1     (tx's state and the step count stay)
        n = k − 1:   u = tx.update(A)       (tx's state advances), n ← 0, A ← 0, gradient_step += 1

    A is kept in ``accumulator_dtype`` and cast to the gradients' dtype for ``tx``. Extra keyword
    arguments of ``update`` go to ``tx``. Like optax, ``tx.update`` is computed on every call and
    kept only on the k-th: one optimizer update per call, small next to the gradient itself.
    """
    tx = with_extra_args_support(tx)
    every_k = _check_every_k(every_k)

    def accumulate(g, acc, n):
        return acc + (g - acc) / (n + 1) if use_grad_mean else g + acc

    def init_fn(params):
        zeros = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), accumulator_dtype), params)
        count = jnp.zeros([], jnp.int32)
        return MultiStepsState(count, count, tx.init(params), zeros)

    def update_fn(updates, state, params=None, **extra_args):
        k = every_k(state.gradient_step)
        acc = jax.tree.map(lambda g, a: accumulate(g, a, state.mini_step), updates, state.acc_grads)
        mean = cast_like(acc, updates)
        emit = state.mini_step == k - 1

        # tx runs on every call and its result is kept on the k-th, as in optax: the same program
        # as optax's, hence the same bits (a lax.cond that skips it is rounded differently).
        inner_updates, inner_state = tx.update(mean, state.inner_opt_state, params, **extra_args)
        inner_state = cast_like(inner_state, state.inner_opt_state)
        new_updates = jax.tree.map(lambda u: jnp.where(emit, u, jnp.zeros_like(u)), inner_updates)
        inner_state = jax.tree.map(
            lambda new, old: jnp.where(emit, new, old), inner_state, state.inner_opt_state
        )
        new_state = MultiStepsState(
            mini_step=safe_increment(state.mini_step) % k,
            gradient_step=jnp.where(emit, safe_increment(state.gradient_step), state.gradient_step),
            inner_opt_state=inner_state,
            acc_grads=jax.tree.map(lambda a: jnp.where(emit, 0, a).astype(accumulator_dtype), acc),
        )
        return new_updates, new_state

    return GradientTransformation(init_fn, update_fn)
