"""fnlearn: train neural networks the functional way in JAX.

Models are pure functions over pytrees of parameters, losses are negative log-likelihoods of a
distribution head, optimizers are optax-style gradient transformations written by hand.

This module only re-exports the public API. The re-exports are lazy (PEP 562): a submodule is
imported the first time one of its names is used, so ``import fnlearn`` and ``fnlearn --help`` do
not pay for jax until something needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_SUBMODULES = (
    "callbacks",
    "checkpoint",
    "checks",
    "config",
    "data",
    "distributions",
    "ema",
    "errors",
    "init",
    "loop",
    "losses",
    "lr_range",
    "nn",
    "optim",
    "parallel",
    "precision",
    "prediction",
    "registry",
    "replicas",
    "report",
    "runs",
    "sharding",
    "train",
    "tree",
)
_NAMES = {
    "fit": "loop",
    "evaluate": "loop",
    "predict": "prediction",
    "lr_find": "lr_range",
    "TrainState": "train",
}

__all__ = [*_SUBMODULES, *_NAMES, "__version__"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"fnlearn.{name}")
    if name in _NAMES:
        return getattr(importlib.import_module(f"fnlearn.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'fnlearn' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs: the names as if imported eagerly
    from fnlearn import (  # noqa: F401
        callbacks,
        checkpoint,
        checks,
        config,
        data,
        distributions,
        ema,
        errors,
        init,
        loop,
        losses,
        lr_range,
        nn,
        optim,
        parallel,
        precision,
        prediction,
        registry,
        replicas,
        report,
        runs,
        sharding,
        train,
        tree,
    )
    from fnlearn.loop import evaluate, fit  # noqa: F401
    from fnlearn.lr_range import lr_find  # noqa: F401
    from fnlearn.prediction import predict  # noqa: F401
    from fnlearn.train import TrainState  # noqa: F401
