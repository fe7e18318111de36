"""Prediction with a trained state: the mode, the mean or a sample of the predicted distribution.

The notes describe a prediction as a summary of p(y | x, θ) = head(f_θ(x)):

    mode          argmax_y p(y | x)        (class id, ⌊λ⌋ of a Poisson, μ of a Gaussian)
    mean          E[y | x]                 (class probabilities, λ, μ)
    sample        y ~ p(y | x)             (example i draws from fold_in(key, i): independent of batching)
    distribution  the head's parameters    ({"loc": μ, "scale": σ}, {"logits", "probs"}, ...)

The inputs are padded to a multiple of ``batch_size`` and run through one compiled ``lax.scan``
(no dropout, running BatchNorm statistics), so one program serves every dataset of that shape.
With a ``standardizer`` (``fnlearn.data.Standardizer``, as a run directory stores it) the inputs
are standardised x̂ = (x − μ_x)/s_x first, and regression outputs are mapped back to the data's
units: y = ŷ·s_y + μ_y for modes, means, samples and location parameters, σ = σ̂·s_y for scales.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn import checks
from fnlearn.distributions import Head
from fnlearn.errors import FnlearnError
from fnlearn.inputs import check_state

__all__ = ["KINDS", "predict", "state_params"]

KINDS = ("mode", "mean", "sample", "distribution")
_LOCATIONS = ("loc", "locs")  # distribution parameters in the targets' units
_SCALES = ("scale", "scales")  # distribution parameters in the targets' scale


def state_params(state, use_ema: bool, owner: str):
    """The parameters to predict or evaluate with: ``state.params``, or their bias-corrected
    moving average (``fnlearn.ema``) when ``use_ema``."""
    checks.boolean(owner, "use_ema", use_ema)
    if not use_ema:
        return state.params
    from fnlearn import ema  # noqa: PLC0415 - a small module, needed only here

    if getattr(state, "ema", None) is None:
        raise FnlearnError(
            f"{owner}: use_ema=True, but this state keeps no moving average of its parameters. "
            "Train with fit(..., ema=0.999) (training.ema = 0.999 in a config), or pass use_ema=False."
        )
    return ema.averaged(state.ema, state.params)


def _check_call(state, x, head, kind, key, batch_size) -> np.ndarray:
    """The inputs as a float array of examples of the model's shape; one line for each mistake."""
    check_state(state, "predict")
    if not isinstance(head, Head):
        raise FnlearnError(
            f"predict: head must be a distribution head such as fl.distributions.get('categorical'), "
            f"got {checks.show(head)}."
        )
    if kind not in KINDS:
        raise FnlearnError(f"predict: kind must be one of {', '.join(map(repr, KINDS))}; got {kind!r}.")
    if kind == "sample" and key is None:
        raise FnlearnError("predict: kind='sample' draws random values and needs key=jax.random.key(0).")
    checks.positive_int("predict", "batch_size", batch_size)
    try:
        x = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise FnlearnError(f"predict: x must be an array of numbers, got {checks.show(x)}.") from None
    shape = tuple(state.model.input_shape)
    if x.ndim != len(shape) + 1 or x.shape[1:] != shape or len(x) == 0:
        raise FnlearnError(
            f"predict: x has shape {x.shape}, but the model takes a non-empty batch of examples of "
            f"shape {shape}, i.e. (n, {', '.join(map(str, shape))})."
        )
    if not np.all(np.isfinite(x)):
        row = int(np.argwhere(~np.isfinite(x.reshape(len(x), -1)))[0, 0])
        raise FnlearnError(f"predict: x has a NaN or infinite value in example {row}; clean or drop it.")
    return x


def _summarise(head: Head, kind: str, outputs, keys):
    if kind == "mode":
        return head.mode(outputs)
    if kind == "mean":
        return head.mean(outputs)
    if kind == "distribution":
        return dict(head.params(outputs))
    return jax.vmap(lambda k, o: head.sample(k, o[None])[0])(keys, outputs)


@functools.partial(jax.jit, static_argnames=("model", "head", "kind"))
def _predict_batches(params, model_state, xb, keys, *, model, head, kind):
    """Scan over [batches, batch_size, ...] inputs; the kind's summary of every batch, stacked."""

    def body(_, batch):
        x, k = batch
        outputs, _ = model.apply(params, model_state, x, train=False)
        return None, _summarise(head, kind, outputs.astype(jnp.float32), k)

    return jax.lax.scan(body, None, (xb, keys))[1]


def _to_units(result, kind: str, standardizer):
    """Regression outputs back in the data's units (identity without standardised targets)."""
    if standardizer is None or getattr(standardizer, "y_mean", None) is None:
        return result
    if kind != "distribution":
        return standardizer.inverse_y(result)
    out = {}
    for name, value in result.items():
        if name in _LOCATIONS:
            value = standardizer.inverse_y(value)
        elif name in _SCALES:
            value = standardizer.inverse_y_scale(value)
        out[name] = value
    return out


def predict(
    state,
    x,
    *,
    head: Head,
    kind: str = "mode",
    key=None,
    batch_size: int = 512,
    use_ema: bool = False,
    standardizer=None,
):
    """The ``kind`` of prediction (see the module docstring) for every example of ``x``.

    Returns an array with one row per example, or for ``kind="distribution"`` a dict of named
    arrays (the head's parameters). ``use_ema=True`` predicts with the moving average of the
    parameters (``fit(..., ema=...)``). ``standardizer`` standardises ``x`` and maps regression
    outputs back to the data's units (``fl.runs.load`` returns the run's one).
    """
    x = _check_call(state, x, head, kind, key, batch_size)
    params = state_params(state, use_ema, "predict")
    if standardizer is not None:
        x = ((x - standardizer.x_mean) / standardizer.x_scale).astype(np.float32)
    n = len(x)
    size = min(batch_size, n)
    batches = -(-n // size)
    padded = np.concatenate([x, np.repeat(x[:1], batches * size - n, axis=0)])
    xb = jnp.asarray(padded).reshape(batches, size, *x.shape[1:])
    base = jax.random.key(0) if key is None else key
    keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(batches * size))
    stacked = _predict_batches(
        params, state.model_state, xb, keys.reshape(batches, size), model=state.model, head=head, kind=kind
    )
    result = jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:])[:n], stacked)
    return _to_units(result, kind, standardizer)
