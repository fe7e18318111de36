"""How many linear regions does a 1-input ReLU network make? Counted exactly, against the notes' bound.

The lecture notes (after Prince, *Understanding Deep Learning*, ch. 4): a network with one input,
K hidden layers of D ReLU units and one output has

    3D + 1 + (K − 1)·D·(D + 1)        parameters,

and "could create a function with (D + 1)^K linear regions". This experiment counts the regions
of real networks **exactly** and sets them against both numbers:

* exact count — every hidden unit's pre-activation z(x) is piecewise linear in the input x, with
  its kinks at the zero crossings of the units of the earlier layers. So the kinks are found layer
  by layer: with the kinks t₁ < … < t_m of layers < k known, each unit of layer k is linear between
  two neighbours, and its zero on a segment [a, b] is r = a − z(a)·(b − a)/(z(b) − z(a)) when z
  changes sign there (on the two unbounded end pieces the same line is extended). Every crossing is
  a kink of the activation pattern; the *activation regions* are the pieces between them, the
  *linear regions* are what is left after merging neighbouring pieces on which f has the same
  slope (a kink that does not bend f). Both are ≤ (D + 1)^K: a layer splits each piece into at
  most D + 1. Cross-checked against a vmapped grid count of activation-pattern changes.
* networks counted — (a) fnlearn's default initialisation (He weights, **zero** biases); (b) He
  weights with biases b ~ N(0, 1); (c) the default initialisation trained with Adam on
  regression_1d (sin 2πx on [0, 1]) as vmapped replicas; (d) a hand-built sawtooth network
  (every layer a D-piece zigzag of [0, 1] onto itself, Montúfar et al. 2014, Telgarsky 2016) with
  D^K regions on [0, 1]: exponential in depth, as the bound says is possible.
* the parameter count of ``fl.nn.mlp([1, D, …, D, 1])`` against the formula, for every (K, D).

Writes ``linear_regions.png`` and ``linear_regions.json`` to ``--out`` (default out/linear_regions).
Run: ``python experiments/linear_regions.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _common import main, mean_std, pm

import fnlearn as fl

BIAS_STD = 1.0  # (b): the biases' standard deviation at a random initialisation with random biases


def param_count_formula(K: int, D: int) -> int:
    """The notes' count for 1 input, K hidden layers of D units, 1 output: 3D + 1 + (K − 1)·D·(D + 1)."""
    return 3 * D + 1 + (K - 1) * D * (D + 1)


def build(K: int, D: int, b_init=None) -> fl.nn.Model:
    """The network of the claim: ``mlp([1, D × K, 1])`` with ReLU (He weights by default)."""
    return fl.nn.mlp([1] + [D] * K + [1], b_init=b_init)


def forward(params, x) -> tuple[list[np.ndarray], np.ndarray]:
    """Pre-activations z_k(x) of every hidden layer and the output f(x), in float64 numpy.

    The same numbers as ``fl.nn.intermediates``' ``dense_*`` outputs and ``model.apply`` for a plain
    ``mlp`` (no norm, dropout or residual; tested equal), evaluated on the host in float64 because
    the kinks are found many times on inputs of changing length (jax would compile each length).
    ``params`` is mlp's layout: ``[[{"w", "b"}, {}], …, {"w", "b"}]``; z_k = h_{k−1}·W_k + b_k,
    h_k = relu(z_k), h_0 = x, f = h_K·W_out + b_out.
    """
    h = np.asarray(x, np.float64)[:, None]
    zs = []
    for block in params[:-1]:
        z = h @ np.asarray(block[0]["w"], np.float64) + np.asarray(block[0]["b"], np.float64)
        zs.append(z)
        h = np.maximum(z, 0.0)
    return zs, (h @ np.asarray(params[-1]["w"], np.float64) + np.asarray(params[-1]["b"], np.float64))[:, 0]


def probe_points(knots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points p₀ < … < p_s with one point on each unbounded end piece, and each segment's validity.

    Segment i = [pᵢ, pᵢ₊₁] lies inside one linear piece; the line through it is valid on
    (loᵢ, hiᵢ): the segment itself, extended to −∞ for the first and to +∞ for the last.
    """
    p = (
        np.array([0.0, 1.0])
        if knots.size == 0
        else np.concatenate([[knots[0] - 1.0], knots, [knots[-1] + 1.0]])
    )
    lo, hi = p[:-1].copy(), p[1:].copy()
    lo[0], hi[-1] = -np.inf, np.inf
    return p, lo, hi


def segment_roots(p, z, lo, hi) -> np.ndarray:
    """Zeros of functions linear on each segment: z has shape (len(p), units).

    On [pᵢ, pᵢ₊₁] the root is r = pᵢ − zᵢ·(pᵢ₊₁ − pᵢ)/(zᵢ₊₁ − zᵢ), kept when loᵢ < r < hiᵢ (a zero
    exactly at a probe point is a kink that is already known).
    """
    za, zb = z[:-1], z[1:]
    dp = (p[1:] - p[:-1])[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = p[:-1, None] - za * dp / (zb - za)
    ok = np.isfinite(r) & (r > lo[:, None]) & (r < hi[:, None])
    return r[ok]


def kinks(params, tol: float = 1e-12) -> np.ndarray:
    """All points of ℝ where some hidden unit's pre-activation changes sign, sorted (exact, float64)."""
    knots = np.zeros(0)
    for k in range(len(params) - 1):
        p, lo, hi = probe_points(knots)
        z = forward(params, p)[0][k]
        knots = np.unique(np.concatenate([knots, segment_roots(p, z, lo, hi)]))
        if knots.size > 1:  # one kink found twice through rounding (e.g. all units of layer 1 at x = 0)
            keep = np.diff(knots) > tol * np.maximum(1.0, np.abs(knots[1:]))
            knots = knots[np.concatenate([[True], keep])]
    return knots


def count_regions(params, lo: float = -np.inf, hi: float = np.inf, slope_tol: float = 1e-9) -> dict:
    """Activation regions and linear regions of f on (lo, hi).

    Activation regions: 1 + the number of kinks inside. Linear regions: 1 + the number of those
    kinks at which the slope of f changes, |s₊ − s₋| > slope_tol·max(1, |s₋|, |s₊|).
    """
    t = kinks(params)
    t = t[(t > lo) & (t < hi)]
    if t.size == 0:
        return {"activation_regions": 1, "linear_regions": 1, "kinks": []}
    left = max(lo, t[0] - 1.0) if np.isfinite(lo) else t[0] - 1.0
    right = min(hi, t[-1] + 1.0) if np.isfinite(hi) else t[-1] + 1.0
    p = np.concatenate([[left], t, [right]])
    f = forward(params, p)[1]
    slopes = np.diff(f) / np.diff(p)
    jump = np.abs(np.diff(slopes)) > slope_tol * np.maximum(
        1.0, np.maximum(np.abs(slopes[1:]), np.abs(slopes[:-1]))
    )
    return {"activation_regions": int(t.size + 1), "linear_regions": int(jump.sum() + 1), "kinks": t.tolist()}


def grid_activation_regions(model, params, xs):
    """Grid estimate (vmappable): 1 + the number of neighbouring grid points whose ReLU on/off
    patterns differ. Never above the exact count; equal when no region is narrower than the grid."""
    state = model.init(jax.random.key(0))[1]
    zs = [
        h for name, h in fl.nn.intermediates(model, params, state, xs[:, None]) if name.startswith("dense_")
    ]
    pattern = jnp.concatenate([z > 0 for z in zs], axis=1)
    return 1 + jnp.sum(jnp.any(pattern[1:] != pattern[:-1], axis=1))


def sawtooth_params(K: int, D: int) -> list:
    """Weights in ``mlp([1, D × K, 1])``'s layout making f = g∘…∘g (K times) on [0, 1].

    g(u) = Σ_j c_j·relu(u − j/D), c₀ = D, c_j = 2D·(−1)^j: a zigzag of D pieces of slope ±D, each
    mapping onto [0, 1]. Layer 1 computes relu(x − j/D); layer k > 1 computes relu(g(h) − j/D) with
    g(h) = Σ c_j h_j, i.e. W[i, j] = c_i, b_j = −j/D. f has D^K linear pieces on [0, 1].
    """
    c = np.array([D] + [2 * D * (-1) ** j for j in range(1, D)], np.float64)
    b = -np.arange(D) / D
    blocks = [[{"w": np.ones((1, D)), "b": b}, {}]]
    blocks += [[{"w": np.tile(c[:, None], (1, D)), "b": b}, {}] for _ in range(K - 1)]
    return blocks + [{"w": c[:, None], "b": np.zeros(1)}]


def sawtooth_regions(K: int, D: int) -> int:
    """Exact count of linear regions of the sawtooth network on [0, 1]."""
    return count_regions(sawtooth_params(K, D), 0.0, 1.0)["linear_regions"]


def count_stack(stacked_params, lo=-np.inf, hi=np.inf) -> np.ndarray:
    """Exact counts [activation, linear] of every network in a stack (leading axis)."""
    host = jax.tree.map(np.asarray, stacked_params)
    n = jax.tree.leaves(host)[0].shape[0]
    counts = [count_regions(jax.tree.map(lambda a, i=i: a[i], host), lo, hi) for i in range(n)]
    return np.asarray([[c["activation_regions"], c["linear_regions"]] for c in counts])


def spread(values) -> dict:
    """``mean_std`` (sample std) of the values, with their min and max."""
    values = np.asarray(values, np.float64)
    return {**mean_std(values), "min": float(values.min()), "max": float(values.max())}


def train_replicas(K: int, D: int, seeds: int, epochs: int, data):
    """fnlearn's default network trained with Adam on regression_1d: S seeds as one vmapped program.

    Returns the stacked parameters and each replica's final training MSE.
    """
    tx = fl.optim.adam(1e-2)
    states, info = fl.replicas.create(build(K, D), tx, seeds=range(seeds))
    states, history = fl.replicas.fit(
        states,
        (data.x, data.y),
        loss=fl.distributions.get("gaussian"),
        epochs=epochs,
        batch_size=20,
        info=info,
        progress=False,
        driver="scan",  # dense layers: the scan is the faster driver (docs/speed.md), no probe
    )
    last = max(r["epoch"] for r in history)
    return states.params, [r["train_mse"] for r in history if r["epoch"] == last]


def summarise(counts: dict) -> dict:
    """mean ± std (and min, max) of the activation and linear region counts of each group of nets."""
    return {
        f"{name}_{kind}": spread(c[:, j])
        for name, c in counts.items()
        for j, kind in enumerate(("activation", "linear"))
    }


def measure(K: int, D: int, seeds: int, epochs: int | None, data, grid=None) -> tuple[dict, object]:
    """Counts for one (K, D): default init, random-bias init, trained (when ``epochs``), and the
    grid count of the random-bias nets on [0, 1] (when ``grid`` is given).

    Returns the row of numbers and the trained parameters (or None).
    """
    keys = jax.random.split(jax.random.key(100 * K + D), seeds)
    default = build(K, D)
    biased = build(K, D, b_init=fl.init.normal(BIAS_STD))
    p_default, _ = jax.vmap(default.init)(keys)
    p_biased, _ = jax.vmap(biased.init)(keys)
    counts = {
        "init_zero_bias_R": count_stack(p_default),
        "init_random_bias_R": count_stack(p_biased),
        "init_random_bias_01": count_stack(p_biased, 0.0, 1.0),
    }
    row = {
        "K": K,
        "D": D,
        "bound": (D + 1) ** K,
        "sawtooth_01": sawtooth_regions(K, D),
        "params_formula": param_count_formula(K, D),
        "params_mlp": fl.tree.num_params(default.init(keys[0])[0]),
    }
    p_trained = None
    if epochs:
        p_trained, mse = train_replicas(K, D, seeds, epochs, data)
        counts |= {"trained_R": count_stack(p_trained), "trained_01": count_stack(p_trained, 0.0, 1.0)}
        row["train_mse"] = spread(mse)
    row |= summarise(counts)
    row["max_over_all_nets"] = int(max(c.max() for c in counts.values()))
    if grid is not None:  # one compilation per shape: done for the largest shape only
        grid_counts = np.asarray(
            jax.jit(jax.vmap(lambda p: grid_activation_regions(biased, p, grid)))(p_biased)
        )
        exact = counts["init_random_bias_01"][:, 0]
        row["grid_vs_exact_01"] = {
            "grid_points": int(grid.size),
            "exact": exact.tolist(),
            "grid": grid_counts.tolist(),
        }
    return row, p_trained


def plot(results, path: Path):
    example = results["_example"]
    import matplotlib  # noqa: PLC0415 - optional extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = results["configs"]
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.2))
    ax = axes[0]
    D_show = max(r["D"] for r in rows)
    sel = sorted((r for r in rows if r["D"] == D_show), key=lambda r: r["K"])
    Ks = [r["K"] for r in sel]
    ax.semilogy(Ks, [r["bound"] for r in sel], "k--", label="bound (D+1)^K")
    ax.semilogy(Ks, [r["sawtooth_01"] for r in sel], "k:", marker="s", label="sawtooth D^K (constructed)")
    for key, label, style in (
        ("trained_01_linear", "trained, on [0, 1]", "o-"),
        ("init_random_bias_R_linear", f"He init, b~N(0,{BIAS_STD:g}²), on ℝ", "^-"),
        ("init_zero_bias_R_linear", "He init, zero biases (default), on ℝ", "v-"),
    ):
        have = [r for r in sel if key in r]
        ax.errorbar(
            [r["K"] for r in have],
            [r[key]["mean"] for r in have],
            yerr=[r[key]["std"] for r in have],
            fmt=style,
            capsize=3,
            label=label,
        )
    ax.set_xlabel("hidden layers K")
    ax.set_ylabel("linear regions (mean ± std over seeds)")
    ax.set_title(f"D = {D_show} units per layer")
    ax.set_xticks(Ks)
    ax.legend(fontsize=8)
    ax = axes[1]
    for D in sorted({r["D"] for r in rows}):
        sel = sorted((r for r in rows if r["D"] == D), key=lambda r: r["K"])
        line = ax.loglog([r["params_formula"] for r in sel], [r["bound"] for r in sel], "--", alpha=0.6)[0]
        sel = [r for r in sel if "trained_01_linear" in r]
        ax.errorbar(
            [r["params_formula"] for r in sel],
            [r["trained_01_linear"]["mean"] for r in sel],
            yerr=[r["trained_01_linear"]["std"] for r in sel],
            fmt="o-",
            color=line.get_color(),
            capsize=3,
            label=f"D = {D}: trained (dashed: bound)",
        )
        for r in sel:
            ax.annotate(
                f"K={r['K']}",
                (r["params_formula"], r["trained_01_linear"]["mean"]),
                fontsize=7,
                textcoords="offset points",
                xytext=(4, -8),
            )
    ax.set_xlabel("parameters 3D + 1 + (K−1)·D·(D+1)")
    ax.set_ylabel("linear regions")
    ax.set_title("regions against parameter count")
    ax.legend(fontsize=8)
    ax = axes[2]
    ax.plot(example["data_x"], example["data_y"], ".", color="0.7", label="regression_1d data")
    ax.plot(example["x"], example["f"], "C0-", label=f"trained K={example['K']}, D={example['D']}")
    ax.plot(
        example["kinks"],
        example["f_kinks"],
        "C3|",
        markersize=14,
        label=f"{len(example['kinks'])} kinks in [0, 1]",
    )
    ax.set_xlabel("x")
    ax.set_ylabel("f(x)")
    ax.set_title("a trained network and its kinks (exact)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def example_function(K: int, D: int, stacked_params, data) -> dict:
    """The first trained replica's function on [0, 1] with its exact kinks, for the figure."""
    params = jax.tree.map(lambda a: np.asarray(a[0]), stacked_params)
    t = np.asarray(count_regions(params, 0.0, 1.0)["kinks"])
    xs = np.linspace(0, 1, 400)
    return {
        "K": K,
        "D": D,
        "x": xs.tolist(),
        "f": forward(params, xs)[1].tolist(),
        "kinks": t.tolist(),
        "f_kinks": forward(params, t)[1].tolist() if t.size else [],
        "data_x": np.asarray(data.x)[:, 0].tolist(),
        "data_y": np.asarray(data.y)[:, 0].tolist(),
    }


def run(quick: bool) -> dict:
    start = time.perf_counter()
    # quick: training only (K, D) = (2, 8) -- each shape is a compilation of the replica program
    if quick:
        Ds, Ks, seeds, epochs, trained = (4, 8), (1, 2, 3), 4, 60, {(2, 8)}
    else:
        Ds, Ks, seeds, epochs = (4, 8, 16), (1, 2, 3, 4, 5), 8, 300
        trained = {(K, D) for K in Ks for D in Ds}
    example_shape = (2, 8) if quick else (3, 16)
    data = fl.data.load("regression_1d")
    grid = jnp.linspace(0.0, 1.0, 2**14 if quick else 2**16)
    configs, example = [], None
    for D in Ds:
        for K in Ks:
            check = grid if (K, D) == (max(Ks), max(Ds)) else None
            row, p_trained = measure(K, D, seeds, epochs if (K, D) in trained else None, data, check)
            configs.append(row)
            if (K, D) == example_shape:
                example = example_function(K, D, p_trained, data)
    return {
        "seeds": seeds,
        "epochs": epochs,
        "bias_std": BIAS_STD,
        "configs": configs,
        "all_within_bound": all(c["max_over_all_nets"] <= c["bound"] for c in configs),
        "param_formula_matches_mlp": all(c["params_formula"] == c["params_mlp"] for c in configs),
        "example": {k: example[k] for k in ("K", "D", "kinks")},
        "seconds": time.perf_counter() - start,
        "_example": example,  # for the figure only (not written to the JSON)
    }


def report(results: dict) -> None:
    print(
        f"linear regions (mean ± std over {results['seeds']} seeds); init on ℝ, trained on [0, 1]; bound (D+1)^K"
    )
    print(
        f"{'K':>2} {'D':>3} {'params':>6} {'bound':>9} {'sawtooth':>8} {'init b=0':>9} {'init b~N':>12} {'trained':>12}"
    )
    for c in results["configs"]:
        fmt = lambda s: pm(s, ".1f").replace(" ", "") if s else "—"  # noqa: E731
        print(
            f"{c['K']:>2} {c['D']:>3} {c['params_formula']:>6} {c['bound']:>9} {c['sawtooth_01']:>8} "
            f"{fmt(c['init_zero_bias_R_linear']):>9} {fmt(c['init_random_bias_R_linear']):>12} {fmt(c.get('trained_01_linear')):>12}"
        )
    print(
        f"every count within the bound: {results['all_within_bound']}; parameter formula = mlp's count: "
        f"{results['param_formula_matches_mlp']}"
    )


if __name__ == "__main__":
    main(run, plot, report)
