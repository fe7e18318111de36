"""Hyperparameters as data: ``inject_hyperparams`` (optax's idea, written out).

``inject_hyperparams(adam)(learning_rate=1e-3, b1=0.9)`` behaves like ``adam(1e-3, b1=0.9)`` but
keeps every numeric hyperparameter as a float32 array in its state, ``state.hyperparams``. Two uses:

* change a hyperparameter during training without recompiling (write a new value into the state);
* give each of many vmapped replicas its own learning rate, weight decay or β in **one** compiled
  program (``fl.replicas``): the optimizer's code is shared, its hyperparameters are per replica.

Non-numeric arguments (schedules, masks, booleans, ``None``) stay fixed, as in optax.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from fnlearn import checks
from fnlearn.errors import FnlearnError
from fnlearn.optim.base import GradientTransformation, with_extra_args_support

__all__ = ["InjectHyperparamsState", "find_hyperparams", "inject_hyperparams", "set_hyperparam"]


class InjectHyperparamsState(NamedTuple):
    """``hyperparams``: name → float32 array; ``inner_state``: the wrapped optimizer's state."""

    hyperparams: dict
    inner_state: Any


def _numeric(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def inject_hyperparams(
    factory: Callable[..., GradientTransformation],
) -> Callable[..., GradientTransformation]:
    """Wrap an optimizer factory so its numeric keyword arguments live in the state."""
    if not callable(factory):
        raise FnlearnError(
            "inject_hyperparams: factory must be an optimizer factory such as fl.optim.adam, got "
            f"{checks.show(factory)}; write inject_hyperparams(fl.optim.adam)(learning_rate=1e-3)."
        )

    def build(*args, **kwargs) -> GradientTransformation:
        kwargs = _by_name(factory, args, kwargs)
        numeric = {k: v for k, v in kwargs.items() if _numeric(v)}
        fixed = {k: v for k, v in kwargs.items() if k not in numeric}
        factory(**kwargs)  # validate the arguments now, with their real values

        def init_fn(params):
            hyperparams = {k: jnp.asarray(v, jnp.float32) for k, v in numeric.items()}
            return InjectHyperparamsState(hyperparams, factory(**fixed, **numeric).init(params))

        def update_fn(updates, state, params=None, **extra_args):
            inner = with_extra_args_support(factory(**fixed, **state.hyperparams))
            updates, inner_state = inner.update(updates, state.inner_state, params, **extra_args)
            return updates, InjectHyperparamsState(state.hyperparams, inner_state)

        return GradientTransformation(init_fn, update_fn)

    build.__name__ = f"inject_hyperparams({getattr(factory, '__name__', 'optimizer')})"
    return build


def _by_name(factory, args, kwargs) -> dict:
    """The arguments of a call ``factory(*args, **kwargs)`` as one dict name -> value."""
    try:
        signature = inspect.signature(factory)
        signature.bind_partial(*args, **kwargs)  # an unknown name first, then a missing one
        return dict(signature.bind(*args, **kwargs).arguments)
    except TypeError as error:
        name = getattr(factory, "__name__", "optimizer")
        raise FnlearnError(
            f"inject_hyperparams({name}): {error}; pass the optimizer's own arguments."
        ) from None
    except ValueError:  # no signature (a builtin): pass the arguments on by keyword only
        if args:
            raise FnlearnError(
                "inject_hyperparams: pass the arguments by keyword, e.g. learning_rate=1e-3."
            ) from None
        return dict(kwargs)


def find_hyperparams(opt_state) -> dict | None:
    """The ``hyperparams`` dict of the first ``InjectHyperparamsState`` in ``opt_state``, or None."""
    if isinstance(opt_state, InjectHyperparamsState):
        return opt_state.hyperparams
    if isinstance(opt_state, (tuple, list)):
        for sub in opt_state:
            found = find_hyperparams(sub)
            if found is not None:
                return found
    return None


def set_hyperparam(opt_state, name: str, value):
    """``opt_state`` with ``hyperparams[name] = value`` in the ``InjectHyperparamsState`` that
    ``find_hyperparams`` finds (a new state; the old one is untouched). The new array has the old
    one's shape, dtype and placement (devices, and whether it is committed to them), so the
    compiled train step takes it without recompiling."""
    if isinstance(opt_state, InjectHyperparamsState):
        new = jnp.full_like(opt_state.hyperparams[name], value)  # same shape, dtype, sharding, commitment
        return opt_state._replace(hyperparams={**opt_state.hyperparams, name: new})
    for i, sub in enumerate(opt_state if isinstance(opt_state, (tuple, list)) else ()):
        if find_hyperparams(sub) is not None:
            parts = [*opt_state[:i], set_hyperparam(sub, name, value), *opt_state[i + 1 :]]
            return type(opt_state)(*parts) if hasattr(opt_state, "_fields") else type(opt_state)(parts)
    raise FnlearnError(
        f"set_hyperparam: the optimizer state holds no hyperparameters to set {name!r} in. Build the "
        f"optimizer with fl.optim.inject_hyperparams(fl.optim.adam)({name}=...)."
    )
