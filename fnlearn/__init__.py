"""fnlearn: train neural networks the functional way in JAX.

Models are pure functions over pytrees of parameters, losses are negative log-likelihoods of a
distribution head, optimizers are optax-style gradient transformations written by hand.
This module only re-exports the public API.
"""

from fnlearn import callbacks, checkpoint, data, distributions, errors, init, loop, losses, nn, optim, parallel, replicas, train, tree
from fnlearn.loop import evaluate, fit
from fnlearn.train import TrainState

__version__ = "0.1.0"

__all__ = [
    "callbacks",
    "checkpoint",
    "data",
    "distributions",
    "errors",
    "init",
    "loop",
    "losses",
    "nn",
    "optim",
    "parallel",
    "replicas",
    "train",
    "tree",
    "fit",
    "evaluate",
    "TrainState",
    "__version__",
]
