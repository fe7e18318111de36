"""Universal approximation: a shallow network's fit error falls as its hidden layer widens.

The notes' shallow network with D hidden units, y = φ₀ + Σ_d φ_d·a[θ_d0 + θ_d1·x] (a = ReLU), is
fitted to the notes' 1-D Gabor function f(x) = sin(z)·exp(−z²/8), z = 0.06·16·x, on x ∈ [−15, 15]
(noise-free samples, the input fed as x/15). For each D the seeds are trained together as vmapped
replicas (a vmapped full-batch Adam loop with cosine decay), and the
fit error is measured on a dense grid against the true function:

    RMSE(D) = √(mean_x (ŷ(x) − f(x))²),   max error(D) = max_x |ŷ(x) − f(x)|.

A ReLU network with D units is piecewise linear with at most D kinks; the best such interpolant of
a smooth f has error O(1/D²), so the error should keep falling with D (the theorem says only that
it can be made as small as we like). Reports mean ± std over the seeds.

Writes ``universal_approximation.png`` and ``universal_approximation.json`` to ``--out`` (default
out/universal_approximation). Run: ``python experiments/universal_approximation.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np
from _common import descend, main, sample_std

import fnlearn as fl
from fnlearn.data.synthetic import gabor_model

X_SCALE = 15.0  # x ∈ [−15, 15] is fed to the network as x / 15 ∈ [−1, 1]


def target(x):
    """f(x) = sin(0.96x)·exp(−(0.96x)²/8): the notes' Gabor model at φ = (0, 16)."""
    return gabor_model(x, 0.0, 16.0)


def train_replicas(width: int, seeds: int, x, y, steps: int):
    """Full-batch Adam on the mean squared error for ``seeds`` replicas of the 1-width-1 ReLU
    network, vmapped over the seeds: one compiled ``lax.scan`` per width.

    The biases start U(−1, 1), so the kinks x = −b/w of the hidden units are spread over the input
    range (with zero biases every kink would start at x = 0). Not ``fl.replicas.fit``: it logs once
    per epoch, and a full-batch epoch is one step, so a few thousand steps would be a few thousand
    host round trips; here the whole run is one device program.
    """
    model = fl.nn.mlp([1, width, 1], activation="relu", b_init=fl.init.uniform(1.0, symmetric=True))
    tx = fl.optim.adam(fl.optim.schedules.cosine_decay_schedule(1e-2, decay_steps=steps, alpha=0.01))

    def one(key):
        params, state = model.init(key)
        loss_fn = lambda p: fl.losses.mse(model.apply(p, state, x)[0], y)  # noqa: E731

        params, curve = descend(loss_fn, tx, params, steps)
        return params, state, curve

    keys = jax.random.split(jax.random.key(width), seeds)
    # XLA's backend optimisations cost seconds of compile time and buy nothing on a program this small
    program = jax.jit(jax.vmap(one)).lower(keys).compile({"xla_backend_optimization_level": 0})
    params, state, curves = program(keys)
    return model, params, state, curves


def fit_errors(model, params, state, x_grid, f_grid):
    """Per replica: RMSE and max |ŷ − f| on the grid (predictions vmapped over the replicas)."""
    predict = jax.vmap(lambda p, s: model.apply(p, s, x_grid)[0][:, 0])
    pred = np.asarray(predict(params, state), np.float64)
    err = pred - f_grid[None, :]
    return np.sqrt(np.mean(err**2, axis=1)), np.max(np.abs(err), axis=1), pred


def run(quick: bool) -> dict:
    widths = [2, 8, 32] if quick else [1, 2, 4, 8, 16, 32, 64, 128]
    seeds = 3 if quick else 4
    n, steps = (256, 1000) if quick else (256, 3000)
    x = np.linspace(-X_SCALE, X_SCALE, n)[:, None]
    train = ((x / X_SCALE).astype(np.float32), target(x).astype(np.float32))
    x_grid = np.linspace(-X_SCALE, X_SCALE, 2001)
    f_grid = target(x_grid)
    start = time.perf_counter()
    rows, curves = [], {}
    for width in widths:
        model, params, state, _ = train_replicas(width, seeds, *train, steps)
        rmse, max_err, pred = fit_errors(
            model, params, state, (x_grid[:, None] / X_SCALE).astype(np.float32), f_grid
        )
        rows.append(
            {
                "hidden_units": width,
                "parameters": 3 * width + 1,
                "rmse_mean": float(rmse.mean()),
                "rmse_std": sample_std(rmse),
                "max_error_mean": float(max_err.mean()),
                "max_error_std": sample_std(max_err),
                "rmse_per_seed": rmse.tolist(),
            }
        )
        curves[str(width)] = pred[0, ::4].tolist()
    return {
        "config": {
            "quick": quick,
            "widths": widths,
            "seeds": seeds,
            "n_train": n,
            "steps": steps,
            "function": "gabor f(x) = sin(0.96x)·exp(−(0.96x)²/8), x ∈ [−15, 15]",
            "model": "mlp [1, D, 1] relu",
            "optimizer": "full-batch adam 1e-2, cosine decay to 1e-4, MSE",
        },
        "rows": rows,
        "rmse_ratio_smallest_to_largest": rows[0]["rmse_mean"] / rows[-1]["rmse_mean"],
        "target_rms": float(np.sqrt(np.mean(f_grid**2))),
        "curves": {"x": x_grid[::4].tolist(), "f": f_grid[::4].tolist(), "fits_seed0": curves},
        "seconds": time.perf_counter() - start,
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - optional extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = result["rows"]
    d = np.array([r["hidden_units"] for r in rows])
    fig, (ax_fit, ax_err) = plt.subplots(1, 2, figsize=(13, 4.8))
    c = result["curves"]
    ax_fit.plot(c["x"], c["f"], "k", lw=2.5, label="target f(x) (Gabor)")
    shown = [w for w in c["fits_seed0"] if int(w) in (1, 4, 16, d.max())]
    for w in shown:
        ax_fit.plot(c["x"], c["fits_seed0"][w], lw=1.3, label=f"D = {w} hidden units")
    ax_fit.set(xlabel="x", ylabel="y", title="Shallow ReLU networks fitted to the Gabor function (seed 0)")
    ax_fit.legend(fontsize=8)
    for key, label, colour in (("rmse", "RMSE", "tab:blue"), ("max_error", "max |ŷ − f|", "tab:red")):
        mean = np.array([r[f"{key}_mean"] for r in rows])
        std = np.array([r[f"{key}_std"] for r in rows])
        lower = np.minimum(std, 0.9 * mean)  # a log axis cannot show mean − std ≤ 0
        ax_err.errorbar(
            d,
            mean,
            yerr=[lower, std],
            fmt="o-",
            capsize=3,
            color=colour,
            label=f"{label} (mean ± std, {result['config']['seeds']} seeds)",
        )
    ax_err.axhline(result["target_rms"], color="0.5", ls=":", label="RMS of f (error of predicting 0)")
    ax_err.set(
        xscale="log",
        yscale="log",
        xlabel="hidden units D",
        ylabel="fit error on a dense grid",
        title="Fit error against the number of hidden units",
    )
    ax_err.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(result: dict) -> None:
    print(f"{'D':>5} {'params':>7}   RMSE (mean ± std)      max error")
    for r in result["rows"]:
        print(
            f"{r['hidden_units']:>5} {r['parameters']:>7}   {r['rmse_mean']:.4f} ± {r['rmse_std']:.4f}    "
            f"{r['max_error_mean']:.3f} ± {r['max_error_std']:.3f}"
        )
    print(
        f"RMSE falls {result['rmse_ratio_smallest_to_largest']:.0f}× from D = {result['rows'][0]['hidden_units']} "
        f"to D = {result['rows'][-1]['hidden_units']}; trained in {result['seconds']:.1f} s"
    )


if __name__ == "__main__":
    main(run, plot, report)
