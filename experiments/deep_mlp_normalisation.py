"""BatchNorm and residual connections train a deep MLP where the plain one stalls.

Two interleaved spirals (``fl.data.load("spirals", turns=1.5)``, 400 points, standardised) are fitted
by a ReLU MLP of L hidden layers of width W (L = 40, W = 32 in the full run; L = 30, W = 16 quick), built by
``fl.nn.mlp`` in four variants:

- plain:              dense → ReLU blocks, He initialisation;
- batch_norm:         ``norm="batch_norm"``: dense → BatchNorm → ReLU;
- residual:           ``residual=True``: h ← h + ReLU(dense(h)); with He weights each block would double
                      the variance (2^L in all), so the weights are He-scaled by 1/L
                      (``w_init=fl.init.he_normal(gain=√(2/L))``): Var grows by (1 + 1/L)^L ≈ e;
- batch_norm+residual: both, He initialisation.

The quick run (the test's) trains only plain and batch_norm+residual, the two its claim compares: BatchNorm
alone or residual alone are the full run's question (their two compiles were half the quick run's time).

Each variant trains S seeds as vmapped replicas in one compiled loop (``jax.vmap``
over the seeds of a ``lax.scan`` of full-batch SGD with momentum 0.9, η = 0.01; BatchNorm's running statistics are carried as model state, and
the batch statistics of the full batch are used while training). The training NLL per step is
recorded; the claim is measured as the final training NLL and accuracy (mean ± std over the seeds)
and the number of steps each variant needs to bring the NLL below half of log 2 (chance).

Writes ``deep_mlp_normalisation.png`` and ``deep_mlp_normalisation.json`` to ``--out`` (default
out/deep_mlp_normalisation). Run: ``python experiments/deep_mlp_normalisation.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _common import descend, main, mean_std, pm

import fnlearn as fl


def variants(depth: int) -> dict:
    """name -> keyword arguments of ``fl.nn.mlp``."""
    return {
        "plain": {},
        "batch_norm": {"norm": "batch_norm"},
        "residual": {"residual": True, "w_init": fl.init.he_normal(gain=math.sqrt(2.0 / depth))},
        "batch_norm+residual": {"norm": "batch_norm", "residual": True},
    }


def stacked(model):
    """``(init, apply)`` for an ``fl.nn.mlp`` whose identical hidden blocks 2..L run as one ``lax.scan``.

    The blocks are fnlearn's own layers (``model.layer.sublayers``); only their parameters and
    states are stacked along a leading axis, so XLA compiles one block instead of L unrolled ones
    (minutes → seconds on two cores). The maths is the model's: apply = output ∘ block_L ∘ … ∘ block_1.
    """
    first, middle, last = model.layer.sublayers[0], model.layer.sublayers[1], model.layer.sublayers[-1]
    stack = lambda trees: jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)  # noqa: E731

    def init(key):
        params, state = model.init(key)
        return (params[0], stack(params[1:-1]), params[-1]), (state[0], stack(state[1:-1]), state[-1])

    def apply(params, state, x, train):
        h, s0 = first.apply(params[0], state[0], x, train=train)

        def block(h, ps):
            h, s = middle.apply(*ps, h, train=train)
            return h, s

        h, s_mid = jax.lax.scan(block, h, (params[1], state[1]))
        y, s_last = last.apply(params[2], state[2], h, train=train)
        return y, (s0, s_mid, s_last)

    return init, apply


def train_replicas(model, x, y, seeds: int, steps: int, learning_rate: float):
    """Full-batch SGD with momentum 0.9 on the categorical NLL for ``seeds`` replicas (vmapped); returns the
    per-step training NLL [S, steps] and the final evaluation-mode NLL and accuracy [S]."""
    nll = fl.losses.nll(fl.distributions.get("categorical"))
    tx = fl.optim.sgd(learning_rate, momentum=0.9)
    init, apply = stacked(model)

    def one(key):
        params, state = init(key)

        def loss_fn(p, s):
            logits, s = apply(p, s, x, True)
            return nll(logits, y), s

        params, state, curve = descend(loss_fn, tx, params, steps, state=state)
        logits, _ = apply(params, state, x, False)
        return curve, nll(logits, y), fl.losses.accuracy(logits, y)

    keys = jax.random.split(jax.random.key(0), seeds)
    # XLA's backend optimisations cost seconds of compile time and buy little on these small arrays
    program = jax.jit(jax.vmap(one)).lower(keys).compile({"xla_backend_optimization_level": 0})
    curve, final_nll, acc = program(keys)
    return np.asarray(curve, np.float64), np.asarray(final_nll, np.float64), np.asarray(acc, np.float64)


def finite_or_none(values):
    """A list for strict JSON: non-finite values become None (null)."""
    return [float(v) if np.isfinite(v) else None for v in values]


def steps_to(curve, level: float):
    """First step whose loss is below ``level`` (None if never)."""
    below = np.flatnonzero(curve < level)
    return int(below[0]) + 1 if below.size else None


def run(quick: bool) -> dict:
    depth, width, seeds, steps = (30, 16, 2, 120) if quick else (40, 32, 3, 400)
    learning_rate = 1e-2
    data = fl.data.load("spirals", n=400, noise=0.05, turns=1.5, seed=0)
    parts, _ = fl.data.standardize(fl.data.split(data, val=0.0, test=0.0, seed=0))
    x, y = jnp.asarray(parts.train.x), jnp.asarray(parts.train.y)
    level = 0.5 * math.log(2.0)
    start = time.perf_counter()
    results = {}
    quick_only = ("plain", "batch_norm+residual")  # the two the quick run's claim compares
    for name, kwargs in variants(depth).items():
        if quick and name not in quick_only:
            continue
        model = fl.nn.mlp([2] + [width] * depth + [2], activation="relu", **kwargs)
        curve, final_nll, acc = train_replicas(model, x, y, seeds, steps, learning_rate)
        finite = np.isfinite(curve).all(1) & np.isfinite(final_nll)
        ok = final_nll[finite]  # mean ± std over the seeds that did not diverge (counted below)
        results[name] = {
            "final_train_nll": {
                **(mean_std(ok) if ok.size else {"mean": None, "std": None}),
                "per_seed": [float(v) if f else None for v, f in zip(final_nll, finite, strict=True)],
            },
            "train_accuracy": {**mean_std(acc), "per_seed": acc.tolist()},
            "steps_to_half_chance": [
                steps_to(c, level) for c in curve
            ],  # seed by seed, diverged ones included
            "curve_mean": finite_or_none(curve[finite].mean(0)) if finite.any() else None,
            "curve_std": finite_or_none(curve[finite].std(0, ddof=1)) if finite.sum() > 1 else None,
            "diverged_seeds": int((~finite).sum()),
        }
    return {
        "config": {
            "quick": quick,
            "depth": depth,
            "width": width,
            "seeds": seeds,
            "steps": steps,
            "learning_rate": learning_rate,
            "optimizer": "full-batch sgd, momentum 0.9",
            "data": "spirals n=400 turns=1.5 noise=0.05",
            "half_chance_nll": level,
        },
        "variants": results,
        "seconds": time.perf_counter() - start,
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - optional extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    cfg = result["config"]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    colours = {
        "plain": "k",
        "batch_norm": "tab:blue",
        "residual": "tab:orange",
        "batch_norm+residual": "tab:green",
    }
    for name, r in result["variants"].items():
        colour = colours[name]
        if r["curve_mean"] is None:
            continue
        mean = np.array([np.nan if v is None else v for v in r["curve_mean"]])
        std = np.array([np.nan if v is None else v for v in r["curve_std"] or [None] * len(mean)])
        steps = np.arange(1, len(mean) + 1)
        acc = r["train_accuracy"]
        note = f", {r['diverged_seeds']} diverged seed(s) left out" if r["diverged_seeds"] else ""
        ax.plot(
            steps,
            mean,
            color=colour,
            lw=2,
            label=f"{name}: final acc {pm(acc, '.2f')}{note}",
        )
        ax.fill_between(steps, np.maximum(mean - std, 1e-4), mean + std, color=colour, alpha=0.2)
    ax.axhline(math.log(2.0), color="0.5", ls=":", label="chance, log 2")
    ax.set(
        yscale="log",
        xlabel="full-batch SGD step (momentum 0.9, η = 0.01)",
        ylabel="training NLL (mean ± std over seeds)",
        title=f"{cfg['depth']} hidden layers × {cfg['width']} units on two spirals ({cfg['seeds']} seeds as vmapped replicas)",
    )
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(result: dict) -> None:
    cfg = result["config"]
    print(f"{cfg['depth']} hidden layers × {cfg['width']}, {cfg['steps']} steps, {cfg['seeds']} seeds")
    print(f"{'variant':<22} {'final NLL':>16} {'accuracy':>14}  steps to NLL < ½·log 2")
    for name, r in result["variants"].items():
        f, a = r["final_train_nll"], r["train_accuracy"]
        nll = "diverged" if f["mean"] is None else pm(f, "8.4f")
        print(
            f"{name:<22} {nll:>17} {pm(a, '6.3f')}  {r['steps_to_half_chance']}"
            + (f"  ({r['diverged_seeds']} seeds diverged)" if r["diverged_seeds"] else "")
        )
    print(f"trained in {result['seconds']:.1f} s")


if __name__ == "__main__":
    main(run, plot, report)
