"""Hand-written optimizers, schedules and regularisation in optax's protocol.

``fnlearn.optim.adam(1e-3)`` is ``optax.adam(1e-3)`` written out by hand: same names, arguments,
defaults and numbers (checked step by step against optax in the tests). Transforms compose with
optax's both ways. optax's top-level schedule names are here too (``fnlearn.optim.cosine_decay_schedule``
is ``fnlearn.optim.schedules.cosine_decay_schedule``), as they are in optax.
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
from fnlearn.optim.base import (
    EmptyState,
    GradientTransformation,
    GradientTransformationExtraArgs,
    apply_updates,
    chain,
    identity,
    with_extra_args_support,
)
from fnlearn.optim.clipping import clip, clip_by_global_norm
from fnlearn.optim.decay import add_decayed_weights, add_l1_decay
from fnlearn.optim.finite import apply_if_finite, skipped_steps
from fnlearn.optim.hyperparams import InjectHyperparamsState, inject_hyperparams
from fnlearn.optim.plateau import ReduceLROnPlateauState, reduce_on_plateau
from fnlearn.optim.schedules import (
    constant_schedule,
    cosine_decay_schedule,
    exponential_decay,
    join_schedules,
    linear_schedule,
    piecewise_constant_schedule,
    polynomial_schedule,
    warmup_cosine_decay_schedule,
)
from fnlearn.optim.second_order import (
    MinimizeResult,
    lbfgs,
    minimize,
    newton,
    scale_by_newton,
)
from fnlearn.optim.transforms import (
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
    trace,
)
from fnlearn.optim.wrappers import MultiStepsState, multi_steps

# Sorted. The schedule names (constant_schedule, ..., warmup_cosine_decay_schedule) are optax's
# top-level ones, re-exported from fnlearn.optim.schedules.
__all__ = [
    "OPTIMIZERS",
    "EmptyState",
    "GradientTransformation",
    "GradientTransformationExtraArgs",
    "InjectHyperparamsState",
    "MinimizeResult",
    "MultiStepsState",
    "ReduceLROnPlateauState",
    "adagrad",
    "adam",
    "adamw",
    "add_decayed_weights",
    "add_l1_decay",
    "amsgrad",
    "apply_if_finite",
    "apply_updates",
    "chain",
    "clip",
    "clip_by_global_norm",
    "constant_schedule",
    "cosine_decay_schedule",
    "ema",
    "ema_momentum",
    "exponential_decay",
    "get",
    "identity",
    "inject_hyperparams",
    "join_schedules",
    "lbfgs",
    "learning_rate",
    "linear_schedule",
    "lion",
    "minimize",
    "multi_steps",
    "nadam",
    "names",
    "newton",
    "piecewise_constant_schedule",
    "polynomial_schedule",
    "reduce_on_plateau",
    "rmsprop",
    "scale",
    "scale_by_adam",
    "scale_by_amsgrad",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_newton",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_stddev",
    "schedules",
    "sgd",
    "skipped_steps",
    "trace",
    "warmup_cosine_decay_schedule",
    "with_extra_args_support",
]
