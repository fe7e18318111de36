"""Heads for discrete targets: bernoulli (0/1), poisson (counts), categorical (classes)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from fnlearn import checks
from fnlearn.distributions.base import (
    Head,
    _binary,
    _check_width,
    _counts,
    _elementwise_head,
    _host_targets,
    _regression_metrics,
    _require,
    _width_error,
)
from fnlearn.errors import FnlearnError

# ---- Bernoulli


def bernoulli() -> Head:
    """Bernoulli(y | p) per target dimension, for binary (and multi-label) classification.

    Link: p = sigmoid(logit), one logit per dimension; targets in {0, 1}. The NLL is the binary
    cross-entropy computed from the logit: -y·log σ(z) - (1 - y)·log σ(-z) = softplus(z) - y·z,
    finite for any z. Mode: 1 where z > 0. Metric: the fraction of dimensions predicted right.
    """
    spec = "bernoulli()"

    def log_density(logits, y):
        return y * jax.nn.log_sigmoid(logits) + (1.0 - y) * jax.nn.log_sigmoid(-logits)

    def sample(key, p, shape):
        probs = p["probs"]
        return jax.random.bernoulli(key, probs, shape + probs.shape).astype(probs.dtype)

    def mode(p):
        return (p["logits"] > 0).astype(p["logits"].dtype)

    return _elementwise_head(
        "bernoulli", spec, 1, lambda z: {"logits": z, "probs": jax.nn.sigmoid(z)}, log_density,
        mode=mode, mean=lambda p: p["probs"], sample=sample,
        metrics=lambda p, y: {"accuracy": jnp.mean((mode(p) == y).astype(y.dtype), axis=-1)},
        check_values=_binary,
    )  # fmt: skip


# ---- Poisson


def poisson() -> Head:
    """Poisson(y | λ) per target dimension, for counts.

    Link: λ = exp(η) with η = outputs (the log-rate). NLL = λ - y·η + lnΓ(y + 1), computed from η
    (no log of a rate). Mode ⌊λ⌋, mean λ. Note exp(η) overflows float32 for η > 88: keep the
    log-rate of a count model in a sane range (standardise inputs; counts of 10³⁸ are not data).
    """
    spec = "poisson()"

    def log_density(log_rate, y):
        return y * log_rate - jnp.exp(log_rate) - gammaln(y + 1.0)

    def sample(key, p, shape):
        rate = p["rate"]
        return jax.random.poisson(key, rate, shape + rate.shape).astype(rate.dtype)

    return _elementwise_head(
        "poisson", spec, 1, lambda eta: {"log_rate": eta, "rate": jnp.exp(eta)}, log_density,
        mode=lambda p: jnp.floor(p["rate"]), mean=lambda p: p["rate"], sample=sample,
        metrics=lambda p, y: _regression_metrics(p["rate"], y), check_values=_counts,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Categorical


def _is_one_hot(y: np.ndarray) -> bool:
    """Whether ``[..., m]`` targets (m > 1) are one-hot rows rather than m class ids per example
    (a sequence): anything non-integral (checked as probability rows then), or every row one-hot."""
    if not np.all(y == np.round(y)):
        return True
    return bool(np.all((y >= 0) & (y <= 1)) and np.all(y.sum(axis=-1) == 1))


def _categorical_check(spec: str, y, num_outputs=None) -> None:
    """Class ids in [0, K) (shape [n], [n, 1], or [n, T...] for sequences) or one-hot rows (shape
    [n, ..., K])."""
    y = _host_targets(spec, y)
    if num_outputs is not None and int(num_outputs) < 2:
        raise FnlearnError(
            f"{spec} needs one logit per class (at least 2), got {num_outputs} output(s). Fix: give the model's last layer K units for K classes."
        )
    if y.ndim >= 2 and y.shape[-1] > 1 and _is_one_hot(y):
        _check_width(
            spec, num_outputs, y.shape[-1], f"one logit per class, one-hot targets have {y.shape[-1]} columns"
        )
        ok = np.all((y >= 0) & (y <= 1), axis=-1) & np.isclose(y.sum(axis=-1), 1.0)
        if not ok.all():
            raise FnlearnError(
                f"{spec}: one-hot targets must be rows of probabilities summing to 1; {int((~ok).sum())} row(s) are not. Fix: pass integer class ids or valid one-hot rows."
            )
        return
    last = "K-1" if num_outputs is None else str(int(num_outputs) - 1)
    fix = f"pass class ids 0..{last} (re-index the classes, or give the model more outputs)."
    flat = y.reshape(-1)
    bad = (flat < 0) | (flat != np.round(flat))
    if bad.any():
        first = int(np.argmax(bad))
        raise FnlearnError(
            f"{spec}: class ids must be integers 0..{last}, got {checks.show(flat[first])} at index {first}. "
            f"Fix: {fix} For real-valued targets use gaussian or laplace."
        )
    if num_outputs is not None:
        _require(
            y < int(num_outputs),
            spec,
            y,
            f"class ids in [0, {int(num_outputs)}) for a model with {int(num_outputs)} outputs",
            fix,
        )


def _categorical_targets(spec: str, logits: jax.Array, y) -> tuple[str, jax.Array]:
    """("onehot", y as [..., K] floats) or ("labels", y as [...] int32)."""
    y = jnp.asarray(y)
    batch = logits.shape[:-1]
    if y.shape == logits.shape and logits.shape[-1] > 1:
        return "onehot", y.astype(logits.dtype)
    if y.shape == batch + (1,):
        y = y[..., 0]
    if y.shape[:-1] == batch and y.ndim == logits.ndim and y.shape[-1] > 1:
        raise _width_error(
            spec,
            y.shape[-1],
            logits.shape[-1],
            f"one logit per class, one-hot targets have {y.shape[-1]} columns",
        )
    if y.shape != batch:
        raise FnlearnError(
            f"{spec}: targets of shape {tuple(y.shape)} do not fit logits of shape {tuple(logits.shape)}: "
            f"expected class ids of shape {tuple(batch)} or one-hot rows of shape {tuple(logits.shape)}."
        )
    return "labels", y.astype(jnp.int32)


def categorical() -> Head:
    """Categorical Cat(y | π) over K classes, for multiclass classification.

    Link: π = softmax(z) over K logits. Targets: integer class ids in [0, K) or one-hot rows (any
    probability rows are accepted and give the cross-entropy against them). NLL = -log softmax(z)_y
    = logsumexp(z) - z_y, computed with log-softmax. Mode: argmax z (a class id). Mean: π (the
    expectation of the one-hot target). Samples: class ids. Metric: per-example accuracy.
    Leading axes beyond the batch are positions: logits ``[n, T, K]`` with ids ``[n, T]`` give a
    log-probability and an accuracy per token.
    ``event_size`` for this head is K; in a :func:`product` it reads one target column (the id).
    """
    spec = "categorical()"

    def log_prob(logits, y):
        logits = jnp.asarray(logits)
        kind, y = _categorical_targets(spec, logits, y)
        log_p = jax.nn.log_softmax(logits, axis=-1)
        if kind == "onehot":
            return jnp.sum(y * log_p, axis=-1)
        return jnp.take_along_axis(log_p, y[..., None], axis=-1)[..., 0]

    def metrics(logits, y):
        logits = jnp.asarray(logits)
        kind, y = _categorical_targets(spec, logits, y)
        labels = jnp.argmax(y, axis=-1) if kind == "onehot" else y
        return {"accuracy": (jnp.argmax(logits, axis=-1) == labels).astype(logits.dtype)}

    def sample(key, logits, shape=()):
        logits = jnp.asarray(logits)
        return jax.random.categorical(key, logits, axis=-1, shape=tuple(shape) + logits.shape[:-1])

    return Head(
        name="categorical",
        spec=spec,
        num_outputs=lambda event_size: int(event_size),
        target_size=lambda event_size: 1,
        params=lambda logits: {
            "logits": jnp.asarray(logits),
            "probs": jax.nn.softmax(jnp.asarray(logits), axis=-1),
        },
        log_prob=log_prob,
        mode=lambda logits: jnp.argmax(jnp.asarray(logits), axis=-1),
        mean=lambda logits: jax.nn.softmax(jnp.asarray(logits), axis=-1),
        sample=sample,
        metrics=metrics,
        check_targets=lambda y, num_outputs=None: _categorical_check(spec, y, num_outputs),
    )
