"""Synthetic problems from the lecture notes, generated on the host from a seed.

Every generator takes ``n`` (examples), ``noise`` and ``seed`` and is deterministic in them. The
noise-free function behind each regression problem is exposed as its own pure function so that an
experiment can plot the truth next to a fit.

* ``regression_1d``: y = f(x) + ε, ε ~ N(0, noise²), with f(x) = sin(2πx) on x ~ U[0, 1]
  (the notes write the model as y = f(X) + ε without fixing f).
* ``gabor``: the notes' non-convex Gabor model
  f[x, φ] = sin[φ₀ + 0.06·φ₁·x] · exp(−(φ₀ + 0.06·φ₁·x)² / 8.0), x ~ U[−15, 15], plus noise.
* ``heteroscedastic``: y = sin(2πx) + σ(x)·ε with σ(x) = noise·(0.1 + x) on x ~ U[0, 1]:
  the noise grows with x, the case for a head with a learned variance (σ² = softplus(z)).
* ``two_moons``: two interleaving half circles (the same points as scikit-learn's make_moons
  before noise), class 0 the upper moon.
* ``spirals``: K interleaved spiral arms, r ∈ [0, 1], θ = 2π·turns·r + 2πk/K, class k = arm.

Size rule: a generator holds its x and y in float64 and the dataset's float32 copy, n·(features +
targets)·12 bytes, and refuses an ``n`` whose estimate exceeds ``fnlearn.checks.memory_limit()``
before drawing anything.
"""

from __future__ import annotations

import numpy as np

from fnlearn import checks
from fnlearn.data.dataset import Dataset, from_arrays

__all__ = [
    "regression_1d",
    "regression_1d_mean",
    "gabor",
    "gabor_model",
    "heteroscedastic",
    "heteroscedastic_mean",
    "heteroscedastic_std",
    "two_moons",
    "spirals",
]


def regression_1d_mean(x):
    """f(x) = sin(2πx), the noise-free curve of ``regression_1d``."""
    return np.sin(2.0 * np.pi * np.asarray(x))


def regression_1d(*, n: int = 200, noise: float = 0.1, seed: int = 0) -> Dataset:
    """y = sin(2πx) + ε, x ~ U[0, 1], ε ~ N(0, noise²); x and y of shape [n, 1]."""
    _check_common("regression_1d", n, noise, seed, columns=2)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(n, 1))
    y = regression_1d_mean(x) + noise * rng.standard_normal((n, 1))
    return from_arrays(x, y, task="regression", name="regression_1d", feature_names=["x"])


def gabor_model(x, phi0: float, phi1: float):
    """f[x, φ] = sin[φ₀ + 0.06·φ₁·x] · exp(−(φ₀ + 0.06·φ₁·x)² / 8.0), as written in the notes."""
    z = phi0 + 0.06 * phi1 * np.asarray(x)
    return np.sin(z) * np.exp(-(z**2) / 8.0)


def gabor(
    *, n: int = 100, noise: float = 0.1, seed: int = 0, phi0: float = 0.0, phi1: float = 16.0
) -> Dataset:
    """Samples of the Gabor model at the true parameters (φ₀, φ₁), x ~ U[−15, 15], plus N(0, noise²)."""
    _check_common("gabor", n, noise, seed, columns=2)
    checks.finite("gabor", "phi0", phi0)
    checks.finite("gabor", "phi1", phi1)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-15.0, 15.0, size=(n, 1))
    y = gabor_model(x, phi0, phi1) + noise * rng.standard_normal((n, 1))
    return from_arrays(x, y, task="regression", name="gabor", feature_names=["x"])


def heteroscedastic_mean(x):
    """μ(x) = sin(2πx), the mean of ``heteroscedastic``."""
    return np.sin(2.0 * np.pi * np.asarray(x))


def heteroscedastic_std(x, noise: float = 0.5):
    """σ(x) = noise · (0.1 + x): the true standard deviation, growing with x on [0, 1]."""
    return noise * (0.1 + np.asarray(x))


def heteroscedastic(*, n: int = 500, noise: float = 0.5, seed: int = 0) -> Dataset:
    """y = μ(x) + σ(x)·ε, x ~ U[0, 1], ε ~ N(0, 1), σ(x) = noise·(0.1 + x); shapes [n, 1]."""
    _check_common("heteroscedastic", n, noise, seed, columns=2)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, size=(n, 1))
    y = heteroscedastic_mean(x) + heteroscedastic_std(x, noise) * rng.standard_normal((n, 1))
    return from_arrays(x, y, task="regression", name="heteroscedastic", feature_names=["x"])


def two_moons(*, n: int = 400, noise: float = 0.1, seed: int = 0) -> Dataset:
    """Two half circles: class 0 at (cos t, sin t), class 1 at (1 − cos t, 0.5 − sin t), t ∈ [0, π].

    ⌊n/2⌋ points on the upper moon, ⌈n/2⌉ on the lower (as make_moons splits them), t evenly
    spaced, then N(0, noise²) added to both coordinates and the rows shuffled with the seed.
    """
    _check_common("two_moons", n, noise, seed, columns=3)
    rng = np.random.default_rng(seed)
    n_upper, n_lower = n // 2, n - n // 2
    t_upper = np.linspace(0.0, np.pi, n_upper)
    t_lower = np.linspace(0.0, np.pi, n_lower)
    upper = np.stack([np.cos(t_upper), np.sin(t_upper)], axis=1)
    lower = np.stack([1.0 - np.cos(t_lower), 0.5 - np.sin(t_lower)], axis=1)
    x = np.concatenate([upper, lower]) + noise * rng.standard_normal((n, 2))
    y = np.concatenate([np.zeros(n_upper, np.int32), np.ones(n_lower, np.int32)])
    order = rng.permutation(n)
    return from_arrays(
        x[order], y[order], task="classification", num_classes=2, name="two_moons", feature_names=["x1", "x2"]
    )


def spirals(
    *, n: int = 400, noise: float = 0.05, seed: int = 0, classes: int = 2, turns: float = 1.0
) -> Dataset:
    """K spiral arms: r evenly in [0, 1], θ = 2π·turns·r + 2πk/K, x = r(cos θ, sin θ) + N(0, noise²).

    Arm k holds the examples of class k (sizes differ by at most one); rows shuffled with the seed.
    """
    _check_common("spirals", n, noise, seed, columns=3)
    classes = checks.int_at_least("spirals", "classes", classes, 2)
    checks.finite("spirals", "turns", turns)
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    r = np.empty(n)
    for k in range(classes):
        members = y == k
        r[members] = np.linspace(0.0, 1.0, int(members.sum()))
    theta = 2.0 * np.pi * turns * r + 2.0 * np.pi * y / classes
    x = r[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1) + noise * rng.standard_normal((n, 2))
    order = rng.permutation(n)
    return from_arrays(
        x[order],
        y[order],
        task="classification",
        num_classes=classes,
        name="spirals",
        feature_names=["x1", "x2"],
    )


def _check_common(owner: str, n, noise, seed, *, columns: int) -> None:
    """n a positive count that fits in memory (x and y: ``columns`` values a row), noise >= 0, seed >= 0."""
    n = checks.positive_int(owner, "n", n, "It is the number of examples, e.g. n=500.")
    checks.nonneg(owner, "noise", noise, "It is a standard deviation.")
    checks.nonneg_int(owner, "seed", seed, "For example seed=0.")
    checks.check_bytes(owner, f"n={n} examples", 12 * n * columns, "Use a smaller n.")
