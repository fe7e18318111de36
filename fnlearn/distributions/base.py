"""The :class:`Head` record and what every head shares: output/target shapes, host-side target
checks, the builder of heads with independent target dimensions, option parsing."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn import checks
from fnlearn.errors import FnlearnError

LOG_2PI = math.log(2.0 * math.pi)

DEFAULT_FLOOR = 1e-6
"""Added after every softplus link so variances, scales and concentrations stay > 0.

softplus(z) underflows to exactly 0 for z ≲ -100 in float32; without the floor log σ² would be
-inf there. 1e-6 is far below the noise level of standardised targets (σ² ≈ 1) so it never binds
in a well-posed fit, and it caps the loss at ≈ (y - μ)² / 2e-6 instead of infinity.
"""


@dataclasses.dataclass(frozen=True)
class Head:
    """A distribution over targets, parametrised by raw network outputs (see the module docstring)."""

    name: str
    spec: str
    num_outputs: Callable[[int], int]
    target_size: Callable[[int], int]
    params: Callable[[jax.Array], dict]
    log_prob: Callable[[jax.Array, jax.Array], jax.Array]
    mode: Callable[[jax.Array], Any]
    mean: Callable[[jax.Array], Any]
    sample: Callable[..., Any]
    metrics: Callable[[jax.Array, jax.Array], dict]
    check_targets: Callable[..., None]

    def __repr__(self) -> str:
        return f"Head({self.spec})"


# ----------------------------------------------------------------------------------------------
# Shape handling shared by every head (static: runs once at trace time).


def _width_error(spec: str, expected: int, actual: int, why: str) -> FnlearnError:
    return FnlearnError(
        f"{spec} expects {expected} raw outputs per example ({why}), but the outputs have width "
        f"{actual}. Fix: give the model's last layer head.num_outputs(event_size) = {expected} units."
    )


def _split(spec: str, outputs: jax.Array, blocks: int) -> list[jax.Array]:
    """Split ``[..., blocks·d]`` outputs into ``blocks`` arrays of shape ``[..., d]``."""
    width = outputs.shape[-1] if outputs.ndim else 0
    if width == 0 or width % blocks:
        raise FnlearnError(
            f"{spec} reads {blocks} raw output(s) per target dimension, so the output width must be "
            f"a positive multiple of {blocks}; got outputs of shape {tuple(outputs.shape)}. Fix: give "
            f"the model's last layer head.num_outputs(d) = {blocks}·d units for d-dimensional targets."
        )
    d = width // blocks
    return [outputs[..., i * d : (i + 1) * d] for i in range(blocks)]


def _event_targets(
    spec: str, outputs: jax.Array, y, num_outputs: Callable[[int], int], rule: str
) -> jax.Array:
    """Targets as ``[..., d]`` in the outputs' dtype, checked against the outputs' width.

    ``num_outputs(d)`` is the width the head needs for ``d`` target dimensions; ``rule`` says why.
    """
    y = jnp.asarray(y)
    batch = outputs.shape[:-1]
    if y.shape == batch:
        y = y[..., None]
    if y.shape[:-1] != batch:
        raise FnlearnError(
            f"{spec}: targets of shape {tuple(y.shape)} do not fit outputs of shape "
            f"{tuple(outputs.shape)}; expected targets of shape {tuple(batch)} + (d,). Fix: pass one "
            "target row per output row."
        )
    expected = num_outputs(y.shape[-1])
    if outputs.shape[-1] != expected:
        raise _width_error(spec, expected, outputs.shape[-1], f"{rule}, targets have d = {y.shape[-1]}")
    return y.astype(outputs.dtype)


def _wrap_angle(theta: jax.Array) -> jax.Array:
    """θ mapped to [-π, π): atan2(sin θ, cos θ)."""
    return jnp.arctan2(jnp.sin(theta), jnp.cos(theta))


def _positive(z: jax.Array, floor: float) -> jax.Array:
    """The softplus link with a floor: softplus(z) + floor = log(1 + eᶻ) + floor > 0."""
    return jax.nn.softplus(z) + floor


def _regression_metrics(point: jax.Array, y: jax.Array) -> dict:
    """Per-example squared and absolute error, averaged over the event dimensions."""
    err = point - y
    return {"mse": jnp.mean(jnp.square(err), axis=-1), "mae": jnp.mean(jnp.abs(err), axis=-1)}


# ----------------------------------------------------------------------------------------------
# Host-side target validation (numpy, before compilation).


def _host_targets(spec: str, y) -> np.ndarray:
    try:
        y = np.asarray(y)
    except (ValueError, TypeError) as error:
        raise FnlearnError(
            f"{spec}: targets are not a rectangular array ({str(error).splitlines()[0]}). Fix: one row per "
            "example."
        ) from None
    if y.dtype == bool:
        y = y.astype(np.int64)
    if np.issubdtype(y.dtype, np.complexfloating):
        raise FnlearnError(
            f"{spec}: targets hold complex numbers (dtype {y.dtype}); the imaginary parts would be dropped. "
            "Fix: pass real targets."
        )
    if not np.issubdtype(y.dtype, np.number):
        raise FnlearnError(
            f"{spec}: targets must be numeric, got an array of dtype {y.dtype}. Fix: encode them as numbers."
        )
    bad = np.atleast_1d(~np.isfinite(y))
    if bad.any():
        rows = np.nonzero(bad.reshape(bad.shape[0], -1).any(axis=-1))[0]
        raise FnlearnError(
            f"{spec}: {int(bad.sum())} target value(s) are NaN or infinite (first rows: "
            f"{rows[:5].tolist()}). Fix: drop or impute those rows before training."
        )
    return y


def _require(ok: np.ndarray, spec: str, y: np.ndarray, what: str, fix: str) -> None:
    if not np.all(ok):
        bad = np.unique(y[~ok])
        raise FnlearnError(f"{spec}: targets must be {what}; found {bad[:5].tolist()}. Fix: {fix}")


def _check_width(spec: str, num_outputs, expected: int, why: str) -> None:
    if num_outputs is not None and int(num_outputs) != expected:
        raise _width_error(spec, expected, int(num_outputs), why)


def _any_real(y: np.ndarray, spec: str) -> None:
    """Real-valued targets: nothing beyond the finiteness check of ``_host_targets``."""
    del y, spec


def _binary(y: np.ndarray, spec: str) -> None:
    _require(
        (y == 0) | (y == 1),
        spec,
        y,
        "0 or 1",
        "map the two classes to 0 and 1 (or use the categorical head).",
    )


def _counts(y: np.ndarray, spec: str) -> None:
    _require(
        (y >= 0) & (y == np.round(y)),
        spec,
        y,
        "non-negative integer counts",
        "pass counts (0, 1, 2, ...); for real-valued targets use gaussian or laplace.",
    )


# ----------------------------------------------------------------------------------------------
# Heads with independent dimensions: the generic builder.


def _elementwise_head(
    name: str,
    spec: str,
    blocks: int,
    to_params: Callable[..., dict],
    log_density: Callable[..., jax.Array],
    mode: Callable[[dict], jax.Array],
    mean: Callable[[dict], jax.Array],
    sample: Callable[[jax.Array, dict, tuple], jax.Array],
    metrics: Callable[[dict, jax.Array], dict],
    check_values: Callable[[np.ndarray, str], None],
) -> Head:
    """A head whose target dimensions are independent given the outputs.

    log p(y | outputs) = Σ_d log_density(outputs_block_1[d], ..., outputs_block_B[d], y_d).
    """

    def params(outputs):
        return to_params(*_split(spec, jnp.asarray(outputs), blocks))

    def log_prob(outputs, y):
        outputs = jnp.asarray(outputs)
        y = _event_targets(spec, outputs, y, lambda d: blocks * d, f"{blocks} per target dimension")
        return jnp.sum(log_density(*_split(spec, outputs, blocks), y), axis=-1)

    def sample_fn(key, outputs, shape=()):
        return sample(key, params(outputs), tuple(shape))

    def metrics_fn(outputs, y):
        outputs = jnp.asarray(outputs)
        y = _event_targets(spec, outputs, y, lambda d: blocks * d, f"{blocks} per target dimension")
        return metrics(params(outputs), y)

    def check_targets(y, num_outputs=None):
        y = _host_targets(spec, y)
        d = 1 if y.ndim <= 1 else y.shape[-1]
        _check_width(spec, num_outputs, blocks * d, f"{blocks} per target dimension, targets have {d}")
        check_values(y, spec)

    return Head(
        name=name,
        spec=spec,
        num_outputs=lambda event_size=1: blocks * int(event_size),
        target_size=lambda event_size=1: int(event_size),
        params=params,
        log_prob=log_prob,
        mode=lambda outputs: mode(params(outputs)),
        mean=lambda outputs: mean(params(outputs)),
        sample=sample_fn,
        metrics=metrics_fn,
        check_targets=check_targets,
    )


def _spec(name: str, **options) -> str:
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in options.items())})"


def _scale_option(spec: str, option: str, value) -> float | None:
    """``"learned"`` → None (a softplus output); a positive number → that fixed value."""
    if value == "learned":
        return None
    if checks.is_number(value) and value > 0 and math.isfinite(value):
        return float(value)
    raise FnlearnError(f"{spec}: {option} must be a positive number or 'learned', got {checks.show(value)}.")


def _floor_option(spec: str, floor) -> float:
    return float(
        checks.open_unit_interval(spec, "floor", floor, f"A small positive number (default {DEFAULT_FLOOR}).")
    )
