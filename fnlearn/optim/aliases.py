"""Optimizers: chains of building blocks, with optax's names, argument names and defaults.

``optax.adam(1e-3)`` → ``fnlearn.optim.adam(1e-3)`` is a one-word change. Every ``learning_rate``
is a float or a schedule ``count -> rate`` (count 0 on the first update). The update rules are
stated on each function; the README table compares them with PyTorch and Keras.
"""

from __future__ import annotations

from fnlearn import checks, registry
from fnlearn.optim import transforms as tr
from fnlearn.optim.base import GradientTransformation, chain, identity
from fnlearn.optim.decay import add_decayed_weights

__all__ = [
    "sgd",
    "ema_momentum",
    "adagrad",
    "rmsprop",
    "adam",
    "nadam",
    "adamw",
    "amsgrad",
    "lion",
    "get",
    "names",
]


def sgd(
    learning_rate, momentum=None, nesterov: bool = False, accumulator_dtype=None
) -> GradientTransformation:
    """SGD, heavy-ball momentum or Nesterov.

    No momentum: θ ← θ − η·g. With momentum β: m ← g + β·m, θ ← θ − η·m (Nesterov: θ ← θ − η·(g + β·m)).
    """
    checks.rate("sgd", "learning_rate", learning_rate)
    _check_momentum("sgd", momentum, nesterov)
    momentum_tx = (
        identity()
        if momentum is None
        else tr.trace(decay=momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype)
    )
    return chain(momentum_tx, tr.scale_by_learning_rate(learning_rate))


def ema_momentum(learning_rate, beta: float = 0.9) -> GradientTransformation:
    """The notes' damped momentum, which optax lacks: m ← β·m + (1 − β)·g, θ ← θ − η·m, m₀ = 0.

    Under a constant η this follows exactly the path of ``sgd(η·(1 − β), momentum=β)``: with
    m = (1 − β)·m', m' ← g + β·m' is the heavy-ball trace. No bias correction.
    """
    checks.rate("ema_momentum", "learning_rate", learning_rate)
    checks.unit_interval("ema_momentum", "beta", beta)
    return chain(tr.ema(decay=beta, debias=False), tr.scale_by_learning_rate(learning_rate))


def adagrad(
    learning_rate, initial_accumulator_value: float = 0.1, eps: float = 1e-7
) -> GradientTransformation:
    """Adagrad: G ← G + g², θ ← θ − η·g/√(G + ε), G₀ = ``initial_accumulator_value``."""
    checks.rate("adagrad", "learning_rate", learning_rate)
    checks.nonneg("adagrad", "initial_accumulator_value", initial_accumulator_value)
    checks.nonneg("adagrad", "eps", eps)
    return chain(
        tr.scale_by_rss(initial_accumulator_value=initial_accumulator_value, eps=eps),
        tr.scale_by_learning_rate(learning_rate),
    )


def rmsprop(
    learning_rate,
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum=None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> GradientTransformation:
    """RMSprop: v ← β·v + (1 − β)·g², u = η·g/√(v + ε); θ ← θ − u.

    ``centered``: the denominator is √(v − m² + ε) with m the moving mean of g. ``momentum`` μ:
    b ← u + μ·b, θ ← θ − b (the learning rate is inside the velocity, as in PyTorch).
    """
    checks.rate("rmsprop", "learning_rate", learning_rate)
    tr.check_rms_arguments("rmsprop", decay, eps, initial_scale, eps_in_sqrt, bias_correction)
    checks.boolean("rmsprop", "centered", centered)
    _check_momentum("rmsprop", momentum, nesterov)
    scaling = tr.scale_by_stddev if centered else tr.scale_by_rms
    return chain(
        scaling(
            decay=decay,
            eps=eps,
            initial_scale=initial_scale,
            eps_in_sqrt=eps_in_sqrt,
            bias_correction=bias_correction,
        ),
        tr.scale_by_learning_rate(learning_rate),
        identity() if momentum is None else tr.trace(decay=momentum, nesterov=nesterov),
    )


def adam(
    learning_rate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype=None,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """Adam: θ ← θ − η·m̂/(√(v̂ + ε_root) + ε) with bias-corrected moments (see ``scale_by_adam``).

    ``nesterov=True`` gives NAdam.
    """
    _check_adam("adam", learning_rate, b1, b2, eps, eps_root)
    checks.boolean("adam", "nesterov", nesterov)
    return chain(
        tr.scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov),
        tr.scale_by_learning_rate(learning_rate),
    )


def nadam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None) -> GradientTransformation:
    """NAdam: ``adam(..., nesterov=True)``."""
    _check_adam("nadam", learning_rate, b1, b2, eps, eps_root)
    return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=True)


def adamw(
    learning_rate,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    mu_dtype=None,
    weight_decay=1e-4,
    mask=None,
    *,
    nesterov: bool = False,
) -> GradientTransformation:
    """AdamW: θ ← θ − η·(m̂/(√(v̂ + ε_root) + ε) + λ·θ); the decay is multiplied by η.

    ``mask`` (a bool tree or ``params -> bool tree``) selects the leaves that decay.
    """
    _check_adam("adamw", learning_rate, b1, b2, eps, eps_root)
    checks.rate("adamw", "weight_decay", weight_decay, allow_zero=True)
    checks.boolean("adamw", "nesterov", nesterov)
    return chain(
        tr.scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype, nesterov=nesterov),
        add_decayed_weights(weight_decay, mask),
        tr.scale_by_learning_rate(learning_rate),
    )


def amsgrad(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None) -> GradientTransformation:
    """AMSGrad: Adam with v̂ replaced by its running maximum."""
    _check_adam("amsgrad", learning_rate, b1, b2, eps, eps_root)
    return chain(
        tr.scale_by_amsgrad(b1=b1, b2=b2, eps=eps, eps_root=eps_root, mu_dtype=mu_dtype),
        tr.scale_by_learning_rate(learning_rate),
    )


def lion(
    learning_rate, b1=0.9, b2=0.99, mu_dtype=None, weight_decay=1e-3, mask=None
) -> GradientTransformation:
    """Lion: θ ← θ − η·(sign((1 − β₁)·g + β₁·m) + λ·θ), then m ← β₂·m + (1 − β₂)·g."""
    checks.rate("lion", "learning_rate", learning_rate)
    checks.unit_interval("lion", "b1", b1)
    checks.unit_interval("lion", "b2", b2)
    checks.rate("lion", "weight_decay", weight_decay, allow_zero=True)
    return chain(
        tr.scale_by_lion(b1=b1, b2=b2, mu_dtype=mu_dtype),
        add_decayed_weights(weight_decay, mask),
        tr.scale_by_learning_rate(learning_rate),
    )


def _check_momentum(owner, momentum, nesterov):
    """``momentum`` is None (off) or a β in [0, 1); ``nesterov`` a bool."""
    if momentum is not None:
        checks.unit_interval(owner, "momentum", momentum)
    checks.boolean(owner, "nesterov", nesterov)


def _check_adam(owner, learning_rate, b1, b2, eps, eps_root):
    """The arguments the Adam family shares, reported under the alias the user called."""
    checks.rate(owner, "learning_rate", learning_rate)
    tr.check_adam_arguments(b1, b2, eps, eps_root, owner)


# The one table the config system reads: name -> factory. Written out, never filled by imports.
OPTIMIZERS = {
    "sgd": sgd,
    "ema_momentum": ema_momentum,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adam": adam,
    "nadam": nadam,
    "adamw": adamw,
    "amsgrad": amsgrad,
    "lion": lion,
}


def names() -> list[str]:
    """The optimizer names ``get`` knows, sorted."""
    return sorted(OPTIMIZERS)


def get(name: str, **options) -> GradientTransformation:
    """Build an optimizer by name: ``get("adam", learning_rate=1e-3, b2=0.99)``."""
    return registry.build("optimizer", OPTIMIZERS, name, options)
