"""Hand-written optimizers, schedules and regularisation in optax's protocol.

``fnlearn.optim.adam(1e-3)`` is ``optax.adam(1e-3)`` written out by hand: same names, arguments,
defaults and numbers (checked step by step against optax in the tests). Transforms compose with
optax's both ways.
"""

from fnlearn.optim import schedules
from fnlearn.optim.aliases import (
    OPTIMIZERS,
    adagrad,
    adam,
    adamw,
    amsgrad,
    ema_momentum,
    get,
    lion,
    nadam,
    names,
    rmsprop,
    sgd,
)
from fnlearn.optim.hyperparams import InjectHyperparamsState, inject_hyperparams
from fnlearn.optim.base import EmptyState, GradientTransformation, apply_updates, chain, identity
from fnlearn.optim.second_order import MinimizeResult, lbfgs, minimize, newton, scale_by_newton
from fnlearn.optim.transforms import (
    add_decayed_weights,
    add_l1_decay,
    apply_if_finite,
    clip,
    clip_by_global_norm,
    ema,
    learning_rate,
    scale,
    scale_by_adam,
    scale_by_amsgrad,
    scale_by_learning_rate,
    scale_by_lion,
    scale_by_rms,
    scale_by_rss,
    scale_by_stddev,
    skipped_steps,
    trace,
)

__all__ = [
    "inject_hyperparams",
    "InjectHyperparamsState",
    "GradientTransformation",
    "EmptyState",
    "identity",
    "chain",
    "apply_updates",
    "scale",
    "scale_by_learning_rate",
    "trace",
    "ema",
    "scale_by_rss",
    "scale_by_rms",
    "scale_by_stddev",
    "scale_by_adam",
    "scale_by_amsgrad",
    "scale_by_lion",
    "add_decayed_weights",
    "add_l1_decay",
    "clip",
    "clip_by_global_norm",
    "apply_if_finite",
    "learning_rate",
    "skipped_steps",
    "sgd",
    "ema_momentum",
    "adagrad",
    "rmsprop",
    "adam",
    "nadam",
    "adamw",
    "amsgrad",
    "lion",
    "scale_by_newton",
    "newton",
    "lbfgs",
    "minimize",
    "MinimizeResult",
    "OPTIMIZERS",
    "get",
    "names",
    "schedules",
]
