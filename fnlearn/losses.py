"""Losses and metrics: the negative log-likelihood of a head, weight penalties, evaluation metrics.

Every training loss in fnlearn is ``nll(head)``: the mean of -log p(yᵢ | f(xᵢ)) under a
:mod:`fnlearn.distributions` head. Penalties are separate functions of the parameters, added by the
caller: ``loss = nll(head)(outputs, y) + l2(1e-4, mask=weights_only)(params)``.

Per-example weights wᵢ (e.g. 0 for the rows that pad the last batch) enter every reduction as
Σ wᵢ·vᵢ / Σ wᵢ, so a zero-weight row changes nothing. For sequences (outputs ``[n, T, K]``, targets
``[n, T]``) the entries are tokens: the NLL and ``accuracy`` are per-token means, weights are given
per example (repeated over its tokens) or per token (a mask); ``sequence_accuracy`` counts the
examples whose every token is right and ``perplexity`` is exp of the mean token NLL.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from fnlearn import checks
from fnlearn.distributions import Head
from fnlearn.errors import FnlearnError, unknown_name

__all__ = [
    "nll",
    "weighted_mean",
    "l2",
    "l1",
    "elastic_net",
    "weights_only",
    "accuracy",
    "sequence_accuracy",
    "perplexity",
    "per_example",
    "top_k_accuracy",
    "mse",
    "mae",
    "expected_calibration_error",
]

REDUCTIONS = ("mean", "sum", "none")
NOT_PENALISED = ("b", "scale", "shift")
"""Leaf names :func:`weights_only` leaves out: biases and normalisation parameters of ``fnlearn.nn``."""


def _check_weights(values: jax.Array, weights) -> jax.Array:
    """``weights`` broadcast to ``values``: one weight per example (``values.shape[:k]``, repeated
    over the remaining axes, e.g. the tokens of a sequence) or one per entry (``values.shape``)."""
    weights = jnp.asarray(weights, values.dtype)
    if weights.shape != values.shape[: weights.ndim]:
        raise FnlearnError(
            f"weights of shape {tuple(weights.shape)} do not match the {tuple(values.shape)} per-example "
            "values. Fix: pass one weight per example (shape = the batch shape), or one per token "
            f"(shape {tuple(values.shape)})."
        )
    return jnp.broadcast_to(
        weights.reshape(weights.shape + (1,) * (values.ndim - weights.ndim)), values.shape
    )


def weighted_mean(values: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """mean_w(v) = Σᵢ wᵢ·vᵢ / Σᵢ wᵢ over all entries (the plain mean when ``weights`` is None).

    ``weights`` has the shape of ``values`` or of its leading axes (one weight per example, the same
    for each of its tokens). Returns 0 when Σ w = 0 (an all-padding batch), not NaN.
    """
    values = jnp.asarray(values)
    if weights is None:
        return jnp.mean(values)
    weights = _check_weights(values, weights)
    total = jnp.sum(weights)
    safe = jnp.where(total > 0, total, 1.0)
    return jnp.where(total > 0, jnp.sum(weights * values) / safe, 0.0)


def nll(head: Head, reduction: str = "mean") -> Callable[..., jax.Array]:
    """The negative log-likelihood loss of ``head``: ``loss(outputs, y, weights=None)``.

    ℓᵢ = -log p(yᵢ | outputsᵢ) (summed over the event dimensions) for every leading position i of
    the outputs: an example, or a token of a sequence (outputs ``[n, T, K]``, targets ``[n, T]``).
    ``reduction``: ``"mean"`` → Σ wᵢℓᵢ / Σ wᵢ (1/n Σ ℓᵢ without weights; per token for sequences),
    ``"sum"`` → Σ wᵢℓᵢ, ``"none"`` → the wᵢℓᵢ. ``weights``: one per example (repeated over its
    tokens) or one per token, e.g. a 0/1 mask. Also the NLL *metric*: evaluate it on held-out data.
    """
    if not isinstance(head, Head):
        raise FnlearnError(
            f"nll() needs a distribution head, got {type(head).__name__}. Fix: nll(distributions.get('gaussian'))."
        )
    if reduction not in REDUCTIONS:
        raise unknown_name("reduction", reduction, REDUCTIONS)

    def loss(outputs, y, weights=None):
        per_example = -head.log_prob(outputs, y)
        if reduction == "mean":
            return weighted_mean(per_example, weights)
        if weights is not None:
            per_example = _check_weights(per_example, weights) * per_example
        return jnp.sum(per_example) if reduction == "sum" else per_example

    return loss


def perplexity(head: Head) -> Callable[..., jax.Array]:
    """``perplexity(head)(outputs, y, weights=None)`` = exp(mean token NLL) = exp(nll(head)(...)):
    the number of equally likely tokens the model is as unsure as (V for a uniform guess over V)."""
    mean_nll = nll(head)
    return lambda outputs, y, weights=None: jnp.exp(mean_nll(outputs, y, weights))


# ----------------------------------------------------------------------------------------------
# Penalties: functions of the parameters, with an optional mask choosing the penalised leaves.


def weights_only(params) -> object:
    """Mask that penalises every leaf except biases ("b") and normalisation parameters ("scale", "shift")."""
    return jax.tree_util.tree_map_with_path(lambda path, _: _leaf_name(path) not in NOT_PENALISED, params)


def _leaf_name(path) -> str:
    last = path[-1] if path else None
    for attr in ("key", "name", "idx"):
        if hasattr(last, attr):
            return str(getattr(last, attr))
    return str(last)


def _selected_leaves(params, mask) -> list[jax.Array]:
    """The leaves of ``params`` whose mask entry is True (all leaves when ``mask`` is None)."""
    leaves = jax.tree_util.tree_leaves(params)
    if mask is None:
        return leaves
    mask_tree = mask(params) if callable(mask) else mask
    try:
        flags = jax.tree_util.tree_structure(params).flatten_up_to(mask_tree)
    except (ValueError, TypeError) as error:
        raise FnlearnError(
            f"the penalty mask does not have the structure of the parameters ({error}). Fix: pass a "
            "pytree of bools shaped like the params, or a function params -> such a pytree (e.g. weights_only)."
        ) from None
    return [leaf for leaf, keep in zip(leaves, flags) if bool(keep)]


def _check_strength(owner: str, name: str, strength) -> float:
    if checks.is_array(strength):
        raise FnlearnError(f"{owner}: {name} must be a Python number >= 0, got an array; pass float(value).")
    return float(checks.nonneg(owner, name, strength, "It is the penalty's weight λ."))


def _sum_over(leaves, fn) -> jax.Array:
    return sum((jnp.sum(fn(x)) for x in leaves), jnp.zeros((), jnp.float32))


def l2(strength: float = 1.0, mask=None) -> Callable[[object], jax.Array]:
    """R(w) = λ · ½ Σ w² over the masked leaves (the ½ convention of the notes; ∇R = λ·w)."""
    strength = _check_strength("l2", "strength", strength)
    return lambda params: strength * 0.5 * _sum_over(_selected_leaves(params, mask), jnp.square)


def l1(strength: float = 1.0, mask=None) -> Callable[[object], jax.Array]:
    """R(w) = λ · Σ |w| over the masked leaves (prefers sparse weights)."""
    strength = _check_strength("l1", "strength", strength)
    return lambda params: strength * _sum_over(_selected_leaves(params, mask), jnp.abs)


def elastic_net(l1_strength: float, l2_strength: float, mask=None) -> Callable[[object], jax.Array]:
    """R(w) = λ₁ Σ |w| + λ₂ · ½ Σ w². The notes' |W| + β|W|² is λ₁ = 1, λ₂ = 2β."""
    _check_strength("elastic_net", "l1_strength", l1_strength)
    _check_strength("elastic_net", "l2_strength", l2_strength)
    l1_penalty = l1(l1_strength, mask)
    l2_penalty = l2(l2_strength, mask)
    return lambda params: l1_penalty(params) + l2_penalty(params)


# ----------------------------------------------------------------------------------------------
# Metrics (weighted means over examples; use head.metrics for per-example values).


def _labels(logits: jax.Array, labels) -> jax.Array:
    """Integer class ids from ids (``[...]`` or ``[..., 1]``) or one-hot rows (``[..., K]``)."""
    labels = jnp.asarray(labels)
    if labels.shape == logits.shape and logits.shape[-1] > 1:
        return jnp.argmax(labels, axis=-1)
    if labels.shape == logits.shape[:-1] + (1,):
        labels = labels[..., 0]
    if labels.shape != logits.shape[:-1]:
        raise FnlearnError(
            f"labels of shape {tuple(labels.shape)} do not fit logits of shape {tuple(logits.shape)}. Fix: pass class ids of shape {tuple(logits.shape[:-1])}."
        )
    return labels.astype(jnp.int32)


def _predicted_class(logits: jax.Array) -> jax.Array:
    """argmax over K logits, or 1[z > 0] for a single binary logit."""
    return (logits[..., 0] > 0).astype(jnp.int32) if logits.shape[-1] == 1 else jnp.argmax(logits, axis=-1)


def accuracy(logits, labels, weights=None) -> jax.Array:
    """mean_w 1[ŷᵢ = yᵢ] with ŷ = argmax logits (or 1[z > 0] for one binary logit)."""
    logits = jnp.asarray(logits)
    correct = _predicted_class(logits) == _labels(logits, labels)
    return weighted_mean(correct.astype(jnp.float32), weights)


def sequence_accuracy(logits, labels, weights=None) -> jax.Array:
    """mean_w over examples of 1[every token right]: logits ``[n, T..., K]``, labels ``[n, T...]``
    (or one-hot ``[n, T..., K]``), one weight per example."""
    logits = jnp.asarray(logits)
    correct = _predicted_class(logits) == _labels(logits, labels)
    return weighted_mean(jnp.all(correct.reshape(correct.shape[0], -1), axis=-1).astype(jnp.float32), weights)


def per_example(metrics: dict, batch_ndim: int = 1) -> dict:
    """Per-example values from per-position ones (a head's ``metrics`` over ``[n, T...]``): each
    metric's mean over the axes after the first ``batch_ndim``, and, where there are such token
    axes, ``sequence_accuracy`` = 1[every token right] from the per-token ``accuracy``."""
    out = {}
    for name, values in metrics.items():
        flat = values.reshape(values.shape[:batch_ndim] + (-1,))
        out[name] = jnp.mean(flat, axis=-1) if values.ndim > batch_ndim else values
        if values.ndim > batch_ndim and name.rsplit(".", 1)[-1] == "accuracy":
            out[name[: -len("accuracy")] + "sequence_accuracy"] = (jnp.min(flat, axis=-1) >= 1).astype(
                flat.dtype
            )
    return out


def top_k_accuracy(logits, labels, k: int = 5, weights=None) -> jax.Array:
    """mean_w 1[yᵢ among the k largest logits] = 1[#{j : z_j > z_y} < k] (ties count in favour)."""
    checks.positive_int("top_k_accuracy", "k", k)
    logits = jnp.asarray(logits)
    labels = _labels(logits, labels)
    true_logit = jnp.take_along_axis(logits, labels[..., None], axis=-1)
    rank = jnp.sum(logits > true_logit, axis=-1)
    return weighted_mean((rank < k).astype(jnp.float32), weights)


def _per_example(values: jax.Array, batch_ndim: int) -> jax.Array:
    return jnp.mean(values.reshape(values.shape[:batch_ndim] + (-1,)), axis=-1)


def _errors(predictions, targets, weights) -> tuple[jax.Array, int]:
    predictions, targets = jnp.asarray(predictions), jnp.asarray(targets)
    if predictions.shape != targets.shape:
        raise FnlearnError(
            f"predictions of shape {tuple(predictions.shape)} and targets of shape {tuple(targets.shape)} differ. Fix: pass arrays of the same shape."
        )
    batch_ndim = predictions.ndim if weights is None else jnp.ndim(weights)
    return predictions - targets, batch_ndim


def mse(predictions, targets, weights=None) -> jax.Array:
    """mean_w over examples of the mean over target dims of (ŷ - y)²."""
    err, batch_ndim = _errors(predictions, targets, weights)
    return weighted_mean(_per_example(jnp.square(err), batch_ndim), weights)


def mae(predictions, targets, weights=None) -> jax.Array:
    """mean_w over examples of the mean over target dims of |ŷ - y|."""
    err, batch_ndim = _errors(predictions, targets, weights)
    return weighted_mean(_per_example(jnp.abs(err), batch_ndim), weights)


def expected_calibration_error(logits, labels, num_bins: int = 15, weights=None) -> jax.Array:
    """ECE = Σ_b (W_b / W) · |acc_b - conf_b| over ``num_bins`` equal-width confidence bins.

    Confidence cᵢ = max_k softmax(zᵢ)_k (max(p, 1 - p) for one binary logit); example i falls in
    bin b when cᵢ ∈ ((b-1)/B, b/B]; acc_b and conf_b are the (weighted) mean correctness and
    confidence in bin b and W_b its total weight (Guo et al. 2017).
    """
    checks.positive_int("expected_calibration_error", "num_bins", num_bins)
    logits = jnp.asarray(logits, jnp.float32)
    labels = _labels(logits, labels)
    if logits.shape[-1] == 1:
        p = jax.nn.sigmoid(logits[..., 0])
        confidence = jnp.maximum(p, 1.0 - p)
    else:
        confidence = jnp.max(jax.nn.softmax(logits, axis=-1), axis=-1)
    correct = (_predicted_class(logits) == labels).astype(jnp.float32)
    w = jnp.ones_like(confidence) if weights is None else _check_weights(confidence, weights)
    bins = jnp.clip(jnp.ceil(confidence * num_bins).astype(jnp.int32) - 1, 0, num_bins - 1)
    in_bin = jax.nn.one_hot(bins.reshape(-1), num_bins) * w.reshape(-1, 1)  # [n, B] weights
    gap = jnp.abs(in_bin.T @ correct.reshape(-1) - in_bin.T @ confidence.reshape(-1))  # W_b·|acc_b - conf_b|
    total = jnp.sum(w)
    return jnp.where(total > 0, jnp.sum(gap) / jnp.where(total > 0, total, 1.0), 0.0)
