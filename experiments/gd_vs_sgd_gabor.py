"""Gradient descent vs stochastic gradient descent on the notes' Gabor model, from many starts.

The notes (non-convex case): f[x, φ] = sin[φ₀ + 0.06·φ₁·x]·exp(−(φ₀ + 0.06·φ₁·x)²/8),
L[φ] = Σ_i (f[x_i, φ] − y_i)². "Gradient descent gets to the global minimum if we start in the
right valley; otherwise it descends to a local minimum or gets stuck near a saddle point.
Solution: add noise — stochastic gradient descent."

Setup: 28 points of ``fl.data.load("gabor", n=28)`` (true φ = (0, 16), noise 0.1). The global
minimum φ* is found by a grid search refined with ``fl.optim.newton``. From a grid of starting
points over φ₀ ∈ [−5, 5], φ₁ ∈ [2.5, 22.5] (jax.vmap over the starts), both methods run the same
number of steps of ``fl.optim.sgd`` with the same cosine-decayed step size α:

* GD:  φ ← φ − α_t·∇L(φ) (full batch);
* SGD: φ ← φ − α_t·(N/B)·Σ_{i∈B_t} ∇ℓ_i(φ), a random batch of B = 4 (an unbiased estimate of
  ∇L), over several seeds (a second vmap).

A start "reaches the global minimum" when it ends within 0.5 of φ* (Euclidean, in (φ₀, φ₁)).
Reports the fraction for GD and the mean ± std over seeds for SGD. Writes ``gd_vs_sgd_gabor.png``
and ``gd_vs_sgd_gabor.json`` to ``--out`` (default out/gd_vs_sgd_gabor).
Run: ``python experiments/gd_vs_sgd_gabor.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _common import descend, main, sample_std

import fnlearn as fl
import fnlearn.optim as fo

PHI0_RANGE = (-5.0, 5.0)
PHI1_RANGE = (2.5, 22.5)
SUCCESS_RADIUS = 0.5


def gabor(x, phi):
    """f[x, φ] = sin[φ₀ + 0.06·φ₁·x]·exp(−(φ₀ + 0.06·φ₁·x)²/8) (jnp twin of fl.data.synthetic.gabor_model)."""
    z = phi[0] + 0.06 * phi[1] * x
    return jnp.sin(z) * jnp.exp(-(z**2) / 8.0)


def loss(phi, x, y):
    """L[φ] = Σ_i (f[x_i, φ] − y_i)² (the notes' sum, not a mean)."""
    return jnp.sum((gabor(x, phi) - y) ** 2)


def global_minimum(x, y):
    """φ* = argmin L: the best point of a 201 × 301 grid over φ₀ ∈ [−10, 10], φ₁ ∈ [0, 30], refined by Newton."""
    a, b = np.meshgrid(np.linspace(-10, 10, 201), np.linspace(0, 30, 301))
    grid = jnp.asarray(np.stack([a.ravel(), b.ravel()], 1), jnp.float32)
    values = np.asarray(jax.jit(jax.vmap(lambda p: loss(p, x, y)))(grid))
    start = grid[int(values.argmin())]
    objective = lambda p: loss(p, x, y)  # noqa: E731
    result = fo.minimize(objective, start, fo.newton(objective), tol=1e-4, max_steps=50)
    return result.params, float(result.loss)


def train_from(phi0, key, x, y, *, learning_rate, steps, batch_size):
    """``steps`` updates of fl.optim.sgd with a cosine-decayed rate; full batch when batch_size is None,
    else the gradient of a fresh mini-batch each step, scaled by n/batch_size (the notes' sum)."""
    n = x.shape[0]
    opt = fo.sgd(fo.schedules.cosine_decay_schedule(learning_rate, steps))

    def gradient(phi, k):
        if batch_size is None:
            return jax.grad(loss)(phi, x, y)
        idx = jax.random.choice(k, n, (batch_size,), replace=False)
        return jax.grad(loss)(phi, x[idx], y[idx]) * (n / batch_size)

    full = lambda phi, k: loss(phi, x, y)  # noqa: E731
    keys = jax.random.split(key, steps)
    phi, _ = descend(full, opt, phi0, keys=keys, gradient=gradient, record=lambda s: None)
    return phi


def run(quick: bool) -> dict:
    data = fl.data.load("gabor", n=28, seed=0)
    x, y = jnp.asarray(data.x[:, 0]), jnp.asarray(data.y[:, 0])
    phi_star, loss_star = global_minimum(x, y)

    side = 16 if quick else 32
    seeds = 4 if quick else 8
    steps = 1500
    rate, batch = 0.1, 4
    g0, g1 = np.meshgrid(np.linspace(*PHI0_RANGE, side), np.linspace(*PHI1_RANGE, side))
    starts = jnp.asarray(np.stack([g0.ravel(), g1.ravel()], 1), jnp.float32)

    t0 = time.perf_counter()
    kw = dict(learning_rate=rate, steps=steps)
    gd = jax.jit(jax.vmap(lambda p: train_from(p, jax.random.key(0), x, y, batch_size=None, **kw)))(starts)
    sgd_one_seed = jax.vmap(lambda p, k: train_from(p, k, x, y, batch_size=batch, **kw), in_axes=(0, None))
    keys = jax.random.split(jax.random.key(1), seeds)
    sgd = jax.jit(jax.vmap(sgd_one_seed, in_axes=(None, 0)))(starts, keys)  # [seeds, starts, 2]
    seconds = time.perf_counter() - t0

    gd_ok = np.linalg.norm(np.asarray(gd) - np.asarray(phi_star), axis=-1) < SUCCESS_RADIUS
    sgd_ok = np.linalg.norm(np.asarray(sgd) - np.asarray(phi_star), axis=-1) < SUCCESS_RADIUS
    final_loss = jax.vmap(lambda p: loss(p, x, y))
    sgd_fraction = sgd_ok.mean(axis=1)
    grid_a, grid_b = np.meshgrid(np.linspace(*PHI0_RANGE, 101), np.linspace(*PHI1_RANGE, 101))
    surface = jax.vmap(lambda p: loss(p, x, y))(
        jnp.asarray(np.stack([grid_a.ravel(), grid_b.ravel()], 1), jnp.float32)
    )
    return {
        "config": {
            "quick": quick,
            "n_points": int(x.shape[0]),
            "starts": int(starts.shape[0]),
            "sgd_seeds": seeds,
            "steps": steps,
            "learning_rate": rate,
            "schedule": "cosine decay",
            "batch_size": batch,
            "success_radius": SUCCESS_RADIUS,
            "phi0_range": PHI0_RANGE,
            "phi1_range": PHI1_RANGE,
        },
        "global_minimum": {"phi": np.asarray(phi_star).tolist(), "loss": loss_star},
        "fraction_global": {
            "gd": float(gd_ok.mean()),
            "sgd_mean": float(sgd_fraction.mean()),
            "sgd_std": sample_std(sgd_fraction),
            "sgd_per_seed": sgd_fraction.tolist(),
        },
        "starts_where_sgd_wins": int(np.sum(~gd_ok & (sgd_ok.mean(0) > 0.5))),
        "starts_where_gd_wins": int(np.sum(gd_ok & (sgd_ok.mean(0) < 0.5))),
        "median_final_loss": {
            "gd": float(np.median(final_loss(gd))),
            "sgd": float(np.median(jax.vmap(final_loss)(sgd))),
        },
        "seconds": seconds,
        "_plot": {
            "starts": np.asarray(starts),
            "gd_ok": gd_ok,
            "sgd_rate": sgd_ok.mean(0),
            "gd_end": np.asarray(gd),
            "sgd_end": np.asarray(sgd[0]),
            "grid": (grid_a, grid_b, np.asarray(surface).reshape(grid_a.shape)),
        },
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = result["_plot"]
    a, b, surface = p["grid"]
    star = result["global_minimum"]["phi"]
    frac = result["fraction_global"]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2), gridspec_kw={"width_ratios": [1, 1, 0.6]})
    levels = np.geomspace(surface.min(), surface.max(), 25)
    for ax, title, colour in (
        (axes[0], f"full-batch GD: {frac['gd']:.0%} of starts reach φ*", p["gd_ok"].astype(float)),
        (
            axes[1],
            f"SGD (batch {result['config']['batch_size']}): {frac['sgd_mean']:.0%} ± {frac['sgd_std']:.0%} reach φ*",
            p["sgd_rate"],
        ),
    ):
        ax.contour(a, b, surface, levels=levels, cmap="Greys_r", linewidths=0.6)
        sc = ax.scatter(
            p["starts"][:, 0],
            p["starts"][:, 1],
            c=colour,
            cmap="RdYlGn",
            vmin=0,
            vmax=1,
            s=14,
            edgecolors="none",
        )
        ax.plot(*star, "b*", ms=16, label="global minimum φ*")
        ax.set(xlabel="φ₀ (offset)", ylabel="φ₁ (frequency)", title=title)
        ax.legend(loc="lower left", fontsize=8)
    fig.colorbar(sc, ax=axes[1], label="fraction of seeds ending within 0.5 of φ* (GD: 0 or 1)")
    ax = axes[2]
    ax.bar(["GD"], [frac["gd"]], color="tab:blue")
    ax.bar(["SGD"], [frac["sgd_mean"]], yerr=[frac["sgd_std"]], capsize=6, color="tab:orange")
    ax.set(ylabel="fraction of starts reaching the global minimum", title="same steps, same cosine-decayed α")
    fig.suptitle(
        "Gabor model L[φ] = Σ(f[x_i, φ] − y_i)²: colour = start point's outcome (green: global minimum)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(result: dict) -> None:
    frac = result["fraction_global"]
    print(
        f"global minimum φ* = {np.round(result['global_minimum']['phi'], 3).tolist()}, L = {result['global_minimum']['loss']:.4f}"
    )
    print(
        f"fraction of {result['config']['starts']} starts reaching φ*: GD {frac['gd']:.3f}, "
        f"SGD {frac['sgd_mean']:.3f} ± {frac['sgd_std']:.3f} over {result['config']['sgd_seeds']} seeds"
    )
    print(
        f"starts where SGD (majority of seeds) wins: {result['starts_where_sgd_wins']}, where GD wins: {result['starts_where_gd_wins']}"
    )
    print(f"trained in {result['seconds']:.1f} s")


if __name__ == "__main__":
    main(run, plot, report)
