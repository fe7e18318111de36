"""Distribution heads: raw network outputs → distribution parameters → log-likelihood of targets.

The lecture notes build every loss with one recipe: pick a distribution over the target's domain,
let the network predict its parameters through a link function, minimise the negative
log-likelihood. A *head* is that recipe as a value.

A head is an immutable :class:`Head` (a frozen dataclass whose fields are plain functions, so it is
hashable and can be closed over or passed as a static argument to ``jax.jit``):

==================================  ===========================================================
``name``                            registry name, e.g. ``"gaussian"``
``spec``                            name with options, e.g. ``"gaussian(scale='learned')"``
``num_outputs(event_size) -> int``  raw outputs the model must emit for ``event_size`` target
                                    dimensions (the number of classes for ``categorical``)
``target_size(event_size) -> int``  target columns it reads (1 class id for ``categorical``)
``params(outputs) -> dict``         named parameters after the link
``log_prob(outputs, y) -> [...]``   log p(y | outputs) per example, summed over event dims,
                                    computed stably from the raw outputs
``mode(outputs)``, ``mean(outputs)`` point predictions
``sample(key, outputs, shape=())``  draws of shape ``shape + batch + event``
``metrics(outputs, y) -> dict``     per-example natural metrics (``[...]`` arrays, not averaged)
``check_targets(y, num_outputs)``   host-side (numpy) validation before anything is compiled
==================================  ===========================================================

Outputs have shape ``[..., width]``; the leading axes are batch axes. Heads with several raw
outputs per target dimension lay them out in blocks: for ``d``-dimensional targets a
heteroscedastic Gaussian reads ``outputs = [mean_1..mean_d, z_1..z_d]``. Targets have shape
``[..., d]``; for ``d = 1`` the trailing axis may be left out.

Heads are looked up by name in one explicit table (:func:`get`, :func:`names`); users add their own
with :func:`register`. Nothing is registered as a side effect of importing another module.
"""

from __future__ import annotations

from collections.abc import Callable

from fnlearn import registry
from fnlearn.distributions.base import DEFAULT_FLOOR, Head
from fnlearn.distributions.continuous import gaussian, laplace, student_t, von_mises
from fnlearn.distributions.discrete import bernoulli, categorical, poisson
from fnlearn.distributions.mixture import gaussian_mixture
from fnlearn.distributions.product import product
from fnlearn.errors import FnlearnError

__all__ = [
    "Head",
    "DEFAULT_FLOOR",
    "gaussian",
    "laplace",
    "student_t",
    "bernoulli",
    "categorical",
    "poisson",
    "von_mises",
    "gaussian_mixture",
    "product",
    "get",
    "register",
    "names",
]

# ----------------------------------------------------------------------------------------------
# The registry: one explicit table. `register` adds to it; nothing else writes to it.

_REGISTRY: dict[str, Callable[..., Head]] = {
    "gaussian": gaussian,
    "laplace": laplace,
    "student_t": student_t,
    "bernoulli": bernoulli,
    "categorical": categorical,
    "poisson": poisson,
    "von_mises": von_mises,
    "gaussian_mixture": gaussian_mixture,
}


def names() -> list[str]:
    """The registered head names, sorted."""
    return sorted(_REGISTRY)


def get(name: str, **options) -> Head:
    """The head registered as ``name``, built with ``options``: ``get("gaussian", scale="learned")``."""
    head = registry.build("distribution", _REGISTRY, name, options)
    if not isinstance(head, Head):
        raise FnlearnError(f"the factory registered as {name!r} returned {type(head).__name__}, not a Head.")
    return head


def register(name: str, factory: Callable[..., Head], *, replace: bool = False) -> None:
    """Add ``factory`` (options → :class:`Head`) to the registry under ``name``.

    Registering an existing name raises unless ``replace=True``, so a typo cannot silently shadow a
    built-in head.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise FnlearnError(f"a distribution name must be an identifier like 'my_head', got {name!r}.")
    if not callable(factory):
        raise FnlearnError(
            f"register({name!r}, ...) needs a callable returning a Head, got {type(factory).__name__}."
        )
    if name in _REGISTRY and not replace:
        raise FnlearnError(
            f"distribution {name!r} is already registered. Fix: pick another name, or pass replace=True."
        )
    _REGISTRY[name] = factory
