"""Bias–variance decomposition, measured: many models on datasets resampled from one distribution.

The lecture notes' decomposition of the expected squared error of h(x, D), a network trained on a
dataset D ~ p^N, over test pairs (x, y) ~ p and over datasets:

    E_{x,y,D}[(h(x, D) − y)²] = E_x[(h̄(x) − ȳ(x))²] + E_{x,D}[(h(x, D) − h̄(x))²] + E_{x,y}[(ȳ(x) − y)²]
                                 └──── bias² ─────┘   └────── variance ──────┘   └──── noise ────┘

with ȳ(x) = E[y | x] (here sin 2πx) and h̄(x) = E_D[h(x, D)] (estimated by the mean of R models).
The distribution is ``fl.data.load("regression_1d")``: x ~ U[0, 1], y = sin(2πx) + ε, ε ~ N(0, 0.3²);
each of the R replicas gets its own N = 20-point dataset and its own initialisation, and all R are
trained together as one vmapped full-batch Adam loop (``jax.vmap`` over datasets and seeds;
``fl.replicas.fit`` trains every replica on one dataset, so it cannot resample D per replica).
The capacity axis is the number D of hidden units of the notes' shallow ReLU network.

Each term is estimated on a fresh test set of (x, y) pairs, and the measured test error is compared
with bias² + variance + noise (they agree up to the sampling error of R models and the test set).

Writes ``bias_variance.png`` and ``bias_variance.json`` to ``--out`` (default out/bias_variance).
Run: ``python experiments/bias_variance.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _common import descend, main, sample_std

import fnlearn as fl
from fnlearn.data.synthetic import regression_1d_mean

NOISE = 0.3  # σ of ε: the irreducible error is σ² = 0.09
N_TRAIN = 20


def resampled_datasets(replicas: int, n: int, first_seed: int = 1000):
    """R independent datasets D_r ~ p^N from ``regression_1d``, stacked: x, y of shape [R, N, 1]."""
    sets = [fl.data.load("regression_1d", n=n, noise=NOISE, seed=first_seed + r) for r in range(replicas)]
    return np.stack([d.x for d in sets]).astype(np.float32), np.stack([d.y for d in sets]).astype(np.float32)


def features(x):
    """The network sees u = 2x − 1 ∈ [−1, 1]."""
    return 2.0 * x - 1.0


def train_on_each_dataset(width: int, xs, ys, x_test, steps: int, learning_rate: float = 3e-2):
    """Train one 1-width-1 ReLU network per dataset (replica r: dataset r, seed r), vmapped;
    returns the predictions h(x_test, D_r), shape [R, len(x_test)].

    Full-batch Adam (3e-2, cosine decay to 3e-4) on the mean squared error, ``steps`` steps, as one
    compiled ``lax.scan`` inside a ``jax.vmap`` over (dataset, seed). Biases start U(−1, 1) so that
    the kinks of the ReLU units are spread over the input range.
    """
    model = fl.nn.mlp([1, width, 1], activation="relu", b_init=fl.init.uniform(1.0, symmetric=True))
    tx = fl.optim.adam(fl.optim.schedules.cosine_decay_schedule(learning_rate, decay_steps=steps, alpha=0.01))

    def one(key, x, y):
        params, state = model.init(key)
        loss_fn = lambda p: fl.losses.mse(model.apply(p, state, x)[0], y)  # noqa: E731

        params, _ = descend(loss_fn, tx, params, steps, record=lambda s: None)
        return model.apply(params, state, x_test)[0][:, 0], loss_fn(params)

    keys = jax.random.split(jax.random.key(width), xs.shape[0])
    args = (keys, jnp.asarray(features(xs)), jnp.asarray(ys))
    # XLA's backend optimisations cost seconds of compile time and buy nothing on a program this small
    program = jax.jit(jax.vmap(one)).lower(*args).compile({"xla_backend_optimization_level": 0})
    predictions, train_mse = program(*args)
    return np.asarray(predictions, np.float64), np.asarray(train_mse, np.float64)


def decompose(h, y_bar, y_test):
    """Estimates of the notes' three terms and the test error from predictions h [R, T] at test
    inputs x_t with true means ȳ(x_t) [T] and sampled targets y_t [T]:

        bias² = mean_t (h̄_t − ȳ_t)²,  variance = mean_t mean_r (h_rt − h̄_t)²,  noise = mean_t (ȳ_t − y_t)²,
        test error = mean_r mean_t (h_rt − y_t)²,   h̄_t = mean_r h_rt.
    """
    h_bar = h.mean(axis=0)
    return {
        "bias2": float(np.mean((h_bar - y_bar) ** 2)),
        "variance": float(np.mean((h - h_bar) ** 2)),
        "noise": float(np.mean((y_bar - y_test) ** 2)),
        "test_error": float(np.mean((h - y_test) ** 2)),
    }


def run(quick: bool) -> dict:
    widths = [2, 6, 100] if quick else [1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128]
    replicas, steps = (32, 2500) if quick else (128, 4000)
    xs, ys = resampled_datasets(replicas, N_TRAIN)
    test = fl.data.load("regression_1d", n=2000, noise=NOISE, seed=1)
    x_test, y_test = test.x[:, 0], test.y[:, 0]
    y_bar = regression_1d_mean(x_test)
    x_in = jnp.asarray(features(test.x), jnp.float32)
    start = time.perf_counter()
    rows, fits = [], {}
    for width in widths:
        h, train_mse = train_on_each_dataset(width, xs, ys, x_in, steps)
        terms = decompose(h, y_bar, y_test)
        terms["sum_of_terms"] = terms["bias2"] + terms["variance"] + terms["noise"]
        per_model = np.mean((h - y_test) ** 2, axis=1)  # test error of each replica
        rows.append(
            {
                "hidden_units": width,
                "parameters": 3 * width + 1,
                **terms,
                "test_error_std_over_models": sample_std(per_model),
                "train_error_mean": float(train_mse.mean()),
                "train_error_std": sample_std(train_mse),
            }
        )
        order = np.argsort(x_test)[::20]
        fits[str(width)] = {
            "x": x_test[order].tolist(),
            "models": h[:8, order].tolist(),
            "mean": h.mean(0)[order].tolist(),
        }
    best = min(rows, key=lambda r: r["test_error"])
    return {
        "config": {
            "quick": quick,
            "widths": widths,
            "replicas": replicas,
            "n_train": N_TRAIN,
            "noise_std": NOISE,
            "steps": steps,
            "n_test": int(len(x_test)),
            "distribution": "regression_1d: y = sin(2πx) + N(0, 0.3²), x ~ U[0, 1]",
            "model": "mlp [1, D, 1] relu, biases U(−1, 1)",
            "optimizer": "full-batch adam 3e-2, cosine decay to 3e-4, MSE",
        },
        "rows": rows,
        "best_width": best["hidden_units"],
        "max_decomposition_gap": max(abs(r["test_error"] - r["sum_of_terms"]) for r in rows),
        "fits": fits,
        "seconds": time.perf_counter() - start,
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - optional extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = result["rows"]
    d = np.array([r["hidden_units"] for r in rows])
    col = lambda k: np.array([r[k] for r in rows])  # noqa: E731
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8), gridspec_kw={"width_ratios": [1.4, 1, 1]})
    ax = axes[0]
    ax.plot(d, col("test_error"), "ko-", lw=2, label="test error E[(h − y)²]")
    ax.plot(d, col("sum_of_terms"), "k:", lw=1.5, label="bias² + variance + noise")
    ax.plot(d, col("bias2"), "s-", color="tab:blue", label="bias²")
    ax.plot(d, col("variance"), "^-", color="tab:red", label="variance")
    ax.axhline(
        result["config"]["noise_std"] ** 2,
        color="0.5",
        ls="--",
        label=f"noise σ² = {result['config']['noise_std'] ** 2:.2f}",
    )
    ax.plot(
        d,
        col("train_error_mean"),
        "o--",
        color="tab:green",
        alpha=0.7,
        label="training error (mean over models)",
    )
    ax.axvline(result["best_width"], color="0.7", lw=8, alpha=0.3)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="hidden units D (capacity)",
        ylabel="squared error",
        title=f"Bias–variance over {result['config']['replicas']} resampled datasets (N = {result['config']['n_train']})",
    )
    ax.set_xticks(d, [str(v) for v in d])
    ax.legend(fontsize=8)
    small, large = str(d[0]), str(d[-1])
    for ax, w in ((axes[1], small), (axes[2], large)):
        f = result["fits"][w]
        x = np.asarray(f["x"])
        for i, m in enumerate(f["models"]):
            ax.plot(
                x,
                m,
                color="tab:red",
                alpha=0.35,
                lw=1,
                label="models h(x, D_r) on 8 datasets" if i == 0 else None,
            )
        ax.plot(x, f["mean"], "tab:blue", lw=2.5, label="average model h̄(x)")
        ax.plot(x, regression_1d_mean(x), "k--", lw=1.5, label="ȳ(x) = sin 2πx")
        ax.set(
            xlabel="x",
            ylabel="y",
            ylim=(-2, 2),
            title=f"D = {w}: " + ("high bias" if w == small else "high variance"),
        )
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(result: dict) -> None:
    print(f"{'D':>4}  {'bias²':>7} {'var':>7} {'noise':>7} {'sum':>7}  {'test':>7}  {'train':>7}")
    for r in result["rows"]:
        print(
            f"{r['hidden_units']:>4}  {r['bias2']:7.4f} {r['variance']:7.4f} {r['noise']:7.4f} {r['sum_of_terms']:7.4f}  "
            f"{r['test_error']:7.4f}  {r['train_error_mean']:7.4f}"
        )
    print(
        f"lowest test error at D = {result['best_width']}; |test − (bias² + var + noise)| ≤ {result['max_decomposition_gap']:.4f}; "
        f"{result['seconds']:.1f} s of training"
    )


if __name__ == "__main__":
    main(run, plot, report)
