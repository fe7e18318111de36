"""The loss landscape (Li et al., 2018): 2-D slices with filter-normalised directions, plain vs residual.

A deep ReLU MLP (``fl.nn.mlp``, L hidden layers of width W; L = 24, W = 32 in the full run) is trained
on two spirals (``fl.data.load("spirals", turns=1.5)``, standardised) with full-batch Adam, once plain
and once with ``residual=True`` (He weights scaled by 1/L so that the L residual blocks keep the
variance: (1 + 1/L)^L ≈ e instead of 2^L). At the trained θ* we plot

    f(α, β) = L(θ* + α·u + β·v),   α, β ∈ [−1, 1],

with u, v random Gaussian directions, **filter-normalised** as in Li et al.: for every dense weight
matrix W (fan_in × fan_out) and every neuron j (column), u[:, j] ← u[:, j] · ‖W[:, j]‖ / ‖u[:, j]‖, so a
step of α = 1 moves each neuron's weights by its own norm whatever the layer's scale. Biases are
not perturbed (direction 0), as Li et al. leave out biases and BatchNorm parameters. The grid is
evaluated with ``jax.vmap`` over (α, β) (in rows, ``lax.map`` of a ``vmap``).

Numbers (per network): the loss rise at radius 0.25 and 0.5 (mean over the grid points on that
ring), the fraction of grid points within radius 1 where the slice is not locally convex (a negative
eigenvalue of its finite-difference 2 × 2 Hessian), and the number of strict local minima on the grid.

Writes ``loss_landscape.png`` and ``loss_landscape.json`` to ``--out`` (default out/loss_landscape).
Run: ``python experiments/loss_landscape.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _common import descend, main

import fnlearn as fl

# XLA's backend optimisations cost seconds of compile time and buy little on these small arrays
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def stacked(model):
    """``(init, apply)`` for an ``fl.nn.mlp`` whose identical hidden blocks 2..L run as one ``lax.scan``
    over their stacked parameters (fnlearn's own layers; one block compiled instead of L)."""
    first, middle, last = model.layer.sublayers[0], model.layer.sublayers[1], model.layer.sublayers[-1]
    stack = lambda trees: jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)  # noqa: E731

    def init(key):
        params, state = model.init(key)
        return (params[0], stack(params[1:-1]), params[-1]), (state[0], stack(state[1:-1]), state[-1])

    def apply(params, state, x):
        h, _ = first.apply(params[0], state[0], x)
        h, _ = jax.lax.scan(lambda h, ps: (middle.apply(*ps, h)[0], None), h, (params[1], state[1]))
        return last.apply(params[2], state[2], h)[0]

    return init, apply


def filter_normalised_direction(key, params):
    """A Gaussian direction with each dense neuron's column rescaled to that neuron's weight norm:
    d[..., :, j] ← d[..., :, j] · ‖w[..., :, j]‖ / ‖d[..., :, j]‖ for every leaf named "w"; 0 elsewhere."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    keys = jax.random.split(key, len(leaves))
    out = []
    for (path, w), k in zip(leaves, keys, strict=True):
        if getattr(path[-1], "key", None) == "w":
            d = jax.random.normal(k, w.shape, w.dtype)
            norm = lambda a: jnp.linalg.norm(a, axis=-2, keepdims=True)  # noqa: E731 - per column (neuron)
            out.append(d * norm(w) / (norm(d) + 1e-12))
        else:
            out.append(jnp.zeros_like(w))
    return jax.tree_util.tree_unflatten(treedef, out)


def train(model, x, y, steps: int, seed: int = 0):
    """Full-batch Adam (1e-3) on the categorical NLL; returns (apply, θ*, model state, loss per step)."""
    init, apply = stacked(model)
    nll = fl.losses.nll(fl.distributions.get("categorical"))
    tx = fl.optim.adam(1e-3)
    params, state = init(jax.random.key(seed))
    loss_fn = lambda p: nll(apply(p, state, x), y)  # noqa: E731

    descent = jax.jit(lambda p: descend(loss_fn, tx, p, steps))
    params, curve = descent.lower(params).compile(FAST_COMPILE)(params)
    return apply, params, state, np.asarray(curve)


def landscape(apply, params, state, x, y, alphas, key):
    """f(α, β) = L(θ* + αu + βv) on the grid alphas × alphas (rows: β, columns: α)."""
    nll = fl.losses.nll(fl.distributions.get("categorical"))
    ku, kv = jax.random.split(key)
    u, v = filter_normalised_direction(ku, params), filter_normalised_direction(kv, params)

    def loss_at(a, b):
        moved = jax.tree.map(lambda p, du, dv: p + a * du + b * dv, params, u, v)
        return nll(apply(moved, state, x), y)

    grid = jnp.asarray(alphas, jnp.float32)
    surface = lambda g: jax.lax.map(lambda b: jax.vmap(lambda a: loss_at(a, b))(g), g)  # noqa: E731
    return np.asarray(jax.jit(surface).lower(grid).compile(FAST_COMPILE)(grid), np.float64)


def shape_numbers(surface, alphas) -> dict:
    """Loss rise on rings of radius 0.25 and 0.5, non-convex fraction within radius 1, local minima."""
    a, b = np.meshgrid(alphas, alphas)
    r = np.hypot(a, b)
    h = alphas[1] - alphas[0]
    centre = surface[len(alphas) // 2, len(alphas) // 2]
    ring = lambda rad: float(np.mean(surface[np.abs(r - rad) < h / 2 + 1e-9]) - centre)  # noqa: E731
    s = surface
    fxx = (s[1:-1, 2:] - 2 * s[1:-1, 1:-1] + s[1:-1, :-2]) / h**2
    fyy = (s[2:, 1:-1] - 2 * s[1:-1, 1:-1] + s[:-2, 1:-1]) / h**2
    fxy = (s[2:, 2:] - s[2:, :-2] - s[:-2, 2:] + s[:-2, :-2]) / (4 * h**2)
    min_eig = 0.5 * (fxx + fyy) - np.sqrt(0.25 * (fxx - fyy) ** 2 + fxy**2)
    inner = r[1:-1, 1:-1] <= 1.0
    interior = surface[1:-1, 1:-1]
    neighbours = np.stack(
        [
            surface[1 + dy : surface.shape[0] - 1 + dy, 1 + dx : surface.shape[1] - 1 + dx]
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if (dy, dx) != (0, 0)
        ]
    )
    return {
        "loss_at_minimum": float(centre),
        "rise_at_radius_0.25": ring(0.25),
        "rise_at_radius_0.5": ring(0.5),
        "nonconvex_fraction_r_le_1": float(np.mean(min_eig[inner] < 0)),
        "local_minima": int(np.sum(np.all(interior < neighbours, axis=0))),
        "max_loss_on_grid": float(surface.max()),
    }


def run(quick: bool) -> dict:
    depth, width, steps, n_grid = (10, 16, 300, 21) if quick else (24, 32, 1500, 41)
    data = fl.data.load("spirals", n=400, noise=0.05, turns=1.5, seed=0)
    parts, _ = fl.data.standardize(fl.data.split(data, val=0.0, test=0.0, seed=0))
    x, y = jnp.asarray(parts.train.x), jnp.asarray(parts.train.y)
    alphas = np.linspace(-1.0, 1.0, n_grid)
    nets = {
        "plain": {},
        "residual": {"residual": True, "w_init": fl.init.he_normal(gain=math.sqrt(2.0 / depth))},
    }
    start = time.perf_counter()
    out = {}
    for name, kwargs in nets.items():
        model = fl.nn.mlp([2] + [width] * depth + [2], activation="relu", **kwargs)
        apply, params, state, _ = train(model, x, y, steps)
        surface = landscape(apply, params, state, x, y, alphas, jax.random.key(7))
        logits = apply(params, state, x)
        nll = fl.losses.nll(fl.distributions.get("categorical"))
        out[name] = {
            "loss_at_theta_star": float(nll(logits, y)),
            "train_accuracy": float(fl.losses.accuracy(logits, y)),
            **shape_numbers(surface, alphas),
            "surface": surface.tolist(),
        }
    return {
        "config": {
            "quick": quick,
            "depth": depth,
            "width": width,
            "steps": steps,
            "grid": n_grid,
            "range": [-1.0, 1.0],
            "optimizer": "full-batch adam 1e-3",
            "data": "spirals n=400 turns=1.5",
            "directions": "Gaussian, filter-normalised per neuron (column) of each dense weight; biases 0",
        },
        "alphas": alphas.tolist(),
        "networks": out,
        "seconds": time.perf_counter() - start,
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - optional extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    alphas = np.asarray(result["alphas"])
    nets = result["networks"]
    fig = plt.figure(figsize=(16, 9))
    logs = [np.log10(np.asarray(r["surface"])) for r in nets.values()]
    levels = np.arange(np.floor(min(v.min() for v in logs)), np.ceil(max(v.max() for v in logs)) + 0.25, 0.5)
    for col, (name, r) in enumerate(nets.items()):
        surface = np.log10(np.asarray(r["surface"]))
        ax = fig.add_subplot(2, 2, col + 1)
        cs = ax.contourf(
            alphas, alphas, np.clip(surface, levels[0], levels[-1]), levels=levels, cmap="viridis"
        )
        ax.contour(alphas, alphas, surface, levels=levels[::2], colors="w", linewidths=0.4)
        ax.plot(0, 0, "r*", ms=12)
        ax.set(
            xlabel="α (direction u)",
            ylabel="β (direction v)",
            aspect="equal",
            title=f"{name}: log₁₀ L(θ* + αu + βv); non-convex {r['nonconvex_fraction_r_le_1']:.0%}, {r['local_minima']} strict local minima on the grid",
        )
        fig.colorbar(cs, ax=ax, label="log₁₀ training NLL")
        ax3 = fig.add_subplot(2, 2, col + 3, projection="3d")
        a, b = np.meshgrid(alphas, alphas)
        ax3.plot_surface(a, b, np.clip(surface, levels[0], levels[-1]), cmap="viridis", linewidth=0)
        ax3.set(
            xlabel="α",
            ylabel="β",
            zlabel="log₁₀ NLL",
            title=f"{name} ({result['config']['depth']} hidden layers)",
        )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(result: dict) -> None:
    cfg = result["config"]
    print(f"{cfg['depth']} hidden layers × {cfg['width']}, {cfg['grid']}² grid over α, β ∈ [−1, 1]")
    for name, r in result["networks"].items():
        print(
            f"{name:<9} L(θ*) {r['loss_at_minimum']:.4f} (acc {r['train_accuracy']:.3f}); rise at r=0.25 {r['rise_at_radius_0.25']:.3f}, "
            f"r=0.5 {r['rise_at_radius_0.5']:.3f}; non-convex {r['nonconvex_fraction_r_le_1']:.1%}; local minima {r['local_minima']}"
        )
    print(f"computed in {result['seconds']:.1f} s")


if __name__ == "__main__":
    main(run, plot, report)
