"""Variance-preserving initialisers: one ``variance_scaling`` rule and its named presets.

Every initialiser has the call shape of ``jax.nn.initializers``: a factory returns
``init(key, shape, dtype=jnp.float32) -> Array``. A dense weight has shape ``(fan_in, fan_out)``;
for higher-rank kernels the remaining axes are the receptive field and multiply both fans.

The rule (lecture notes, "Parameter initialisation"): choose Var(w) so that the variance of the
pre-activations is the same in every layer, forwards (Var(w) = gain²/fan_in) or backwards
(Var(w) = gain²/fan_out); Xavier/Glorot compromises with the harmonic mean 2/(fan_in + fan_out).

Normal or truncated normal?  The named ``*_normal`` presets draw from a **plain** normal by default,
as the lecture notes and PyTorch do (``torch.nn.init.kaiming_normal_``). Pass ``truncated=True`` for
the truncated normal that jax, flax and Keras use (cut at ±2σ, rescaled so that its standard
deviation is still the target one); with it the presets agree with ``jax.nn.initializers`` draw for
draw.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn import checks
from fnlearn.errors import FnlearnError, unknown_name

__all__ = [
    "Initializer",
    "variance_scaling",
    "lecun_normal",
    "lecun_uniform",
    "xavier_normal",
    "xavier_uniform",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "kaiming_normal",
    "kaiming_uniform",
    "normal",
    "uniform",
    "zeros",
    "ones",
    "constant",
    "orthogonal",
    "gain",
    "compute_fans",
]

Initializer = Callable[..., jax.Array]

MODES = ("fan_in", "fan_out", "fan_avg")
DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")
TRUNCATION = 2.0


def _truncated_std(a: float) -> float:
    """Standard deviation of N(0, 1) truncated to [-a, a]: sqrt(1 - 2aφ(a) / (2Φ(a) - 1))."""
    pdf = math.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
    mass = math.erf(a / math.sqrt(2))  # 2Φ(a) - 1
    return math.sqrt(1.0 - 2.0 * a * pdf / mass)


# 0.8796256610342398 for a = 2, the constant jax and Keras hard-code.
TRUNCATED_STD = _truncated_std(TRUNCATION)


def _as_axes(axis: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim for a in axes)


def compute_fans(shape: Sequence[int], in_axis=-2, out_axis=-1) -> tuple[float, float]:
    """(fan_in, fan_out) of a weight shape.

    fan_in = Π shape[in_axis] · receptive field, fan_out = Π shape[out_axis] · receptive field, where
    the receptive field is the product of the remaining axes (1 for a dense weight).
    """
    shape = tuple(shape)
    if len(shape) < 2:
        raise FnlearnError(
            f"variance-scaling initialisers need a weight of rank >= 2 to know its fans, got shape "
            f"{shape}. Use zeros()/constant() for biases, or pass a (fan_in, fan_out) shape."
        )
    ins, outs = _as_axes(in_axis, len(shape)), _as_axes(out_axis, len(shape))
    size = math.prod(shape)
    in_size = math.prod(shape[a] for a in ins)
    out_size = math.prod(shape[a] for a in outs)
    receptive = size / in_size / out_size
    return in_size * receptive, out_size * receptive


def variance_scaling(
    scale: float,
    mode: str,
    distribution: str,
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    dtype=jnp.float32,
) -> Initializer:
    """Zero-mean weights with Var(w) = scale / n.

    n = fan_in, fan_out or (fan_in + fan_out)/2 for ``mode`` = "fan_in", "fan_out", "fan_avg".
    ``distribution``:
      * "normal":           w ~ N(0, scale/n);
      * "truncated_normal": w = σ/0.8796·t with t ~ N(0, 1) cut to [-2, 2], so that Std(w) = σ;
      * "uniform":          w ~ U(-a, a) with a = sqrt(3·scale/n), so that Var(w) = a²/3 = scale/n.
    """
    checks.positive("variance_scaling", "scale", scale, "It is the variance times the fan, e.g. 2.0 for He.")
    if not isinstance(mode, str) or mode not in MODES:
        raise unknown_name("variance_scaling mode", mode, MODES)
    if not isinstance(distribution, str) or distribution not in DISTRIBUTIONS:
        raise unknown_name("variance_scaling distribution", distribution, DISTRIBUTIONS)
    _check_axes("variance_scaling", in_axis=in_axis, out_axis=out_axis)
    default_dtype = dtype

    def init(key, shape, dtype=default_dtype):
        fan_in, fan_out = compute_fans(shape, in_axis, out_axis)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = jnp.asarray(scale / n, dtype)
        if distribution == "normal":
            return jax.random.normal(key, shape, dtype) * jnp.sqrt(variance)
        if distribution == "truncated_normal":
            stddev = jnp.sqrt(variance) / jnp.asarray(TRUNCATED_STD, dtype)
            return jax.random.truncated_normal(key, -TRUNCATION, TRUNCATION, shape, dtype) * stddev
        return jax.random.uniform(key, shape, dtype, -1) * jnp.sqrt(3 * variance)

    return init


def _check_axes(owner: str, **axes) -> None:
    """Each axis an integer or a sequence of integers."""
    for name, axis in axes.items():
        for a in axis if isinstance(axis, (tuple, list)) else (axis,):
            checks.integer(owner, name, a, "Pass an axis index or a tuple of them.")


def _preset(owner: str, gain: float, truncated: bool = False, mode: str = "fan_in") -> None:
    """The arguments of a named preset, reported under its own name."""
    checks.positive(owner, "gain", gain, "Use fnlearn.init.gain('relu') etc.")
    checks.boolean(owner, "truncated", truncated)
    if not isinstance(mode, str) or mode not in MODES:
        raise unknown_name(f"{owner} mode", mode, MODES)


def _normal_or_truncated(truncated: bool) -> str:
    return "truncated_normal" if truncated else "normal"


def lecun_normal(*, truncated: bool = False, in_axis=-2, out_axis=-1) -> Initializer:
    """LeCun normal: Var(w) = 1/fan_in (variance-preserving for linear and SELU networks)."""
    _preset("lecun_normal", 1.0, truncated)
    return variance_scaling(1.0, "fan_in", _normal_or_truncated(truncated), in_axis, out_axis)


def lecun_uniform(*, in_axis=-2, out_axis=-1) -> Initializer:
    """LeCun uniform: w ~ U(-a, a), a = sqrt(3/fan_in), so Var(w) = 1/fan_in."""
    return variance_scaling(1.0, "fan_in", "uniform", in_axis, out_axis)


def xavier_normal(gain: float = 1.0, *, truncated: bool = False, in_axis=-2, out_axis=-1) -> Initializer:
    """Xavier/Glorot normal: Var(w) = gain² · 2/(fan_in + fan_out), the harmonic-mean compromise
    between keeping the forward (1/fan_in) and the backward (1/fan_out) variance."""
    _preset("xavier_normal", gain, truncated)
    return variance_scaling(gain**2, "fan_avg", _normal_or_truncated(truncated), in_axis, out_axis)


def xavier_uniform(gain: float = 1.0, *, in_axis=-2, out_axis=-1) -> Initializer:
    """Xavier/Glorot uniform: w ~ U(-a, a), a = gain·sqrt(6/(fan_in + fan_out))."""
    _preset("xavier_uniform", gain)
    return variance_scaling(gain**2, "fan_avg", "uniform", in_axis, out_axis)


def he_normal(
    gain: float = math.sqrt(2.0), *, mode: str = "fan_in", truncated: bool = False, in_axis=-2, out_axis=-1
) -> Initializer:
    """He/Kaiming normal: Var(w) = gain²/fan_in, gain² = 2 for ReLU (``gain("relu")``).

    ReLU zeroes half of a symmetric pre-activation, halving its second moment; doubling Var(w)
    restores it. ``mode="fan_out"`` preserves the backward variance instead, as in PyTorch.
    """
    _preset("he_normal", gain, truncated, mode)
    return variance_scaling(gain**2, mode, _normal_or_truncated(truncated), in_axis, out_axis)


def he_uniform(gain: float = math.sqrt(2.0), *, mode: str = "fan_in", in_axis=-2, out_axis=-1) -> Initializer:
    """He/Kaiming uniform: w ~ U(-a, a), a = gain·sqrt(3/fan_in), so Var(w) = gain²/fan_in."""
    _preset("he_uniform", gain, mode=mode)
    return variance_scaling(gain**2, mode, "uniform", in_axis, out_axis)


glorot_normal = xavier_normal
glorot_uniform = xavier_uniform
kaiming_normal = he_normal
kaiming_uniform = he_uniform


def normal(stddev: float = 1e-2) -> Initializer:
    """w ~ N(0, stddev²), whatever the shape (the notes' fixed-variance baseline)."""
    checks.nonneg("normal", "stddev", stddev)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.normal(key, shape, dtype) * jnp.asarray(stddev, dtype)

    return init


def uniform(scale: float = 1e-2, *, symmetric: bool = False) -> Initializer:
    """w ~ U[0, scale) as ``jax.nn.initializers.uniform``; with ``symmetric=True``, U(-scale, scale)."""
    checks.nonneg("uniform", "scale", scale)
    checks.boolean("uniform", "symmetric", symmetric)
    low = -scale if symmetric else 0.0

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, low, scale)

    return init


def constant(value: float) -> Initializer:
    """Every entry equal to ``value``."""
    checks.finite("constant", "value", value)

    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.full(shape, value, dtype)

    return init


def zeros() -> Initializer:
    """All zeros (the usual bias initialiser)."""
    return constant(0.0)


def ones() -> Initializer:
    """All ones (the usual normalisation scale)."""
    return constant(1.0)


def orthogonal(scale: float = 1.0, column_axis: int = -1) -> Initializer:
    """A (semi-)orthogonal matrix times ``scale`` (Saxe et al., 2014).

    With the shape flattened to (rows, cols) around ``column_axis``: A ~ N(0, 1) of shape
    (max, min), A = QR, Q ← Q·sign(diag R) (so Q is Haar-distributed); the columns are orthonormal
    when rows ≥ cols, otherwise the rows are.
    """
    checks.finite("orthogonal", "scale", scale)
    checks.integer("orthogonal", "column_axis", column_axis)

    def init(key, shape, dtype=jnp.float32):
        shape = tuple(shape)
        if len(shape) < 2:
            raise FnlearnError(f"orthogonal needs a shape of rank >= 2, got {shape}.")
        axis = column_axis % len(shape)
        cols = shape[axis]
        rows = math.prod(shape) // cols
        a = jax.random.normal(key, (max(rows, cols), min(rows, cols)), jnp.float32)
        q, r = jnp.linalg.qr(a)
        q = q * jnp.sign(jnp.diag(r))
        if rows < cols:
            q = q.T
        moved = [s for i, s in enumerate(shape) if i != axis] + [cols]
        return jnp.moveaxis((scale * q).reshape(moved), -1, axis).astype(dtype)

    return init


def _second_moment_gain(f: Callable[[np.ndarray], np.ndarray]) -> float:
    """1/sqrt(E[f(z)²]) for z ~ N(0, 1), by 96-point Gauss–Hermite quadrature.

    The rule that gives sqrt(2) for ReLU: a layer with Var(w) = gain²/fan_in maps pre-activations
    z of unit variance to pre-activations of variance fan_in · Var(w) · E[f(z)²] = 1.
    """
    nodes, weights = np.polynomial.hermite_e.hermegauss(96)
    second_moment = np.sum(weights * f(nodes) ** 2) / np.sqrt(2 * np.pi)
    return float(1.0 / np.sqrt(second_moment))


def _gelu(z):
    """Exact GELU, z·Φ(z)."""
    return 0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))


def _phi_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _elu_gain(alpha: float) -> float:
    """1/sqrt(E[elu(z)²]) in closed form, from ∫_{z<0} e^{tz} φ(z) dz = e^{t²/2} Φ(−t):

    E[elu(z)²] = 1/2 + α²·(e²Φ(−2) − 2·e^{1/2}Φ(−1) + 1/2).
    """
    negative_part = math.exp(2.0) * _phi_cdf(-2.0) - 2.0 * math.exp(0.5) * _phi_cdf(-1.0) + 0.5
    return 1.0 / math.sqrt(0.5 + alpha * alpha * negative_part)


def gain(activation: str, param: float | None = None) -> float:
    """The variance-preserving gain of an activation, for Var(w) = gain²/fan_in.

    ===============  ==============================  ==========================================
    activation       gain                            where it comes from
    ===============  ==============================  ==========================================
    identity/linear  1                               nothing to compensate
    sigmoid          1                               PyTorch's convention
    tanh             5/3                             PyTorch's convention (tanh' ≈ 1 near 0,
                                                     5/3 offsets the saturation)
    relu             sqrt(2)                         E[relu(z)²] = 1/2 for z ~ N(0, 1)
    leaky_relu       sqrt(2 / (1 + a²)), a = 0.01    E[leaky(z)²] = (1 + a²)/2
    selu             3/4                             PyTorch's convention (use with LeCun:
                                                     self-normalising nets want gain 1)
    gelu, elu        1/sqrt(E[f(z)²]), z ~ N(0, 1)   the ReLU rule applied to f (elu in closed
                                                     form, gelu by Gauss–Hermite quadrature):
                                                     gelu ≈ 1.5335, elu(α=1) ≈ 1.2452
    ===============  ==============================  ==========================================
    """
    if not isinstance(activation, str):
        raise FnlearnError(f"gain: activation must be a name such as 'relu', got {checks.show(activation)}.")
    if param is not None:
        checks.finite("gain", "param", param)
    name = activation.lower()
    if name in ("identity", "linear", "sigmoid"):
        return 1.0
    if name == "tanh":
        return 5.0 / 3.0
    if name == "relu":
        return math.sqrt(2.0)
    if name == "leaky_relu":
        a = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1.0 + a * a))
    if name == "selu":
        return 0.75
    if name == "gelu":
        return _second_moment_gain(_gelu)
    if name == "elu":
        return _elu_gain(1.0 if param is None else float(param))
    raise unknown_name(
        "activation for gain()",
        activation,
        ["identity", "linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu", "gelu", "elu"],
    )
