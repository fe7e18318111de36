"""Learning the noise: a fixed-variance and a learned-variance Gaussian head on the same MLP.

The data: x ~ U(0, 2), y = sin(3x) + σ(x)·ε with ε ~ N(0, 1) and noise that grows with x,
σ(x) = 0.05 + 0.4·x. Two models share the architecture (MLP 1-64-64-out, tanh) and the optimizer
(full-batch Adam):

- fixed:   ``gaussian()`` — μ(x) only, σ = 1 during training, i.e. least squares (½·MSE + const).
           Evaluated twice: with σ = 1 as trained, and with the best constant σ̂ (the RMS of the
           training residuals), which is the most a homoscedastic model can do.
- learned: ``gaussian(scale="learned")`` — [μ(x), z(x)] with σ²(x) = softplus(z(x)) + 1e-6, the
           heteroscedastic NLL of the lecture notes.

Reports the test NLL of each (the learned one must be lowest), the fitted σ(x) against the true
one, and plots the mean ± 2σ bands over the data. Writes ``heteroscedastic_regression.png`` and
``heteroscedastic_regression.json`` to ``--out`` (default out/heteroscedastic_regression).
Run: ``python experiments/heteroscedastic_regression.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import descend, main

from fnlearn import distributions, losses, nn

X_RANGE = (0.0, 2.0)


def true_mean(x):
    return np.sin(3.0 * x)


def true_sigma(x):
    return 0.05 + 0.4 * x


def make_data(n: int, seed: int):
    """x ~ U(0, 2) as an [n, 1] column, y = sin(3x) + σ(x)·ε as an [n] vector."""
    r = np.random.default_rng(seed)
    x = r.uniform(*X_RANGE, size=(n, 1)).astype(np.float32)
    y = (true_mean(x[:, 0]) + true_sigma(x[:, 0]) * r.normal(size=n)).astype(np.float32)
    return x, y


def fit(head, x, y, steps: int, seed: int = 0, learning_rate: float = 5e-3):
    """Full-batch Adam on nll(head) for an MLP 1-64-64-head.num_outputs(1); one compiled scan."""
    model = nn.mlp([1, 64, 64, head.num_outputs(1)], activation="tanh")
    params, state = model.init(jax.random.PRNGKey(seed))
    opt = optax.adam(optax.cosine_decay_schedule(learning_rate, steps, alpha=0.05))
    loss_fn = lambda p: losses.nll(head)(model.apply(p, state, x)[0], y)  # noqa: E731

    params, curve = jax.jit(lambda p: descend(loss_fn, opt, p, steps))(params)
    return (lambda x_new: model.apply(params, state, x_new)[0]), np.asarray(curve)


def run(quick: bool) -> dict:
    steps = 1500 if quick else 4000
    x_train, y_train = make_data(500 if quick else 1000, seed=0)
    x_test, y_test = make_data(5000, seed=1)
    fixed_head, learned_head = distributions.gaussian(), distributions.gaussian(scale="learned")

    t0 = time.perf_counter()
    predict_fixed, curve_fixed = fit(fixed_head, x_train, y_train, steps)
    predict_learned, curve_learned = fit(learned_head, x_train, y_train, steps)
    seconds = time.perf_counter() - t0

    # The best homoscedastic σ̂ for the least-squares fit: RMS of its training residuals.
    sigma_hat = float(np.sqrt(np.mean((np.asarray(predict_fixed(x_train))[:, 0] - y_train) ** 2)))
    nll = lambda head, outputs: float(losses.nll(head)(outputs, y_test))  # noqa: E731
    test_nll = {
        "fixed_sigma_1": nll(fixed_head, predict_fixed(x_test)),
        "fixed_best_constant_sigma": nll(distributions.gaussian(scale=sigma_hat), predict_fixed(x_test)),
        "learned": nll(learned_head, predict_learned(x_test)),
    }
    # The Bayes limit: the NLL of the true conditional distribution on the same test set.
    truth = np.stack([true_mean(x_test[:, 0]), np.log(np.expm1(true_sigma(x_test[:, 0]) ** 2 - 1e-6))], -1)
    test_nll["true_distribution"] = nll(learned_head, jnp.asarray(truth, jnp.float32))

    grid = np.linspace(*X_RANGE, 201, dtype=np.float32)[:, None]
    fitted = learned_head.params(predict_learned(grid))
    sigma_fit = np.asarray(fitted["scale"])[:, 0]
    inner = (grid[:, 0] >= 0.1) & (grid[:, 0] <= 1.9)  # away from the edges of the data
    rel_err = np.abs(sigma_fit - true_sigma(grid[:, 0])) / true_sigma(grid[:, 0])
    return {
        "config": {
            "quick": quick,
            "steps": steps,
            "n_train": int(len(y_train)),
            "n_test": int(len(y_test)),
            "model": "mlp 1-64-64-out tanh",
            "optimizer": "adam 5e-3 cosine",
            "variance_floor": 1e-6,
        },
        "test_nll": test_nll,
        "sigma_hat_constant": sigma_hat,
        "sigma_relative_error": {
            "median": float(np.median(rel_err[inner])),
            "max_inner": float(np.max(rel_err[inner])),
        },
        "final_train_loss": {"fixed": float(curve_fixed[-1]), "learned": float(curve_learned[-1])},
        "train_seconds": seconds,
        "curves": {
            "x": grid[:, 0].tolist(),
            "sigma_true": true_sigma(grid[:, 0]).tolist(),
            "sigma_learned": sigma_fit.tolist(),
            "mean_learned": np.asarray(fitted["loc"])[:, 0].tolist(),
            "mean_fixed": np.asarray(predict_fixed(grid))[:, 0].tolist(),
        },
        "_data": (x_train[:, 0], y_train),
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = {k: np.asarray(v) for k, v in result["curves"].items()}
    x_train, y_train = result["_data"]
    s_hat, nll = result["sigma_hat_constant"], result["test_nll"]
    fig, (ax, ax_s) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.6, 1]})
    ax.scatter(x_train, y_train, s=4, color="0.6", alpha=0.6, label="training data")
    ax.plot(
        c["x"],
        c["mean_fixed"],
        color="tab:orange",
        label=f"fixed σ: μ ± 2σ̂ (σ̂ = {s_hat:.2f}), test NLL {nll['fixed_best_constant_sigma']:.3f}",
    )
    for sign in (-2, 2):
        ax.plot(c["x"], c["mean_fixed"] + sign * s_hat, color="tab:orange", ls=":", lw=1.5)
    ax.plot(
        c["x"],
        c["mean_learned"],
        color="tab:blue",
        label=f"learned σ(x): μ ± 2σ(x), test NLL {nll['learned']:.3f}",
    )
    ax.fill_between(
        c["x"],
        c["mean_learned"] - 2 * c["sigma_learned"],
        c["mean_learned"] + 2 * c["sigma_learned"],
        color="tab:blue",
        alpha=0.25,
    )
    ax.plot(c["x"], true_mean(c["x"]), "k--", lw=1, label="true mean sin(3x)")
    ax.set(xlabel="x", ylabel="y", title="Noise that grows with x: mean ± 2σ bands")
    ax.legend(loc="lower left", fontsize=8)
    ax_s.plot(c["x"], c["sigma_true"], "k--", label="true σ(x) = 0.05 + 0.4x")
    ax_s.plot(c["x"], c["sigma_learned"], color="tab:blue", label="learned σ(x) = √(softplus(z(x)) + 1e-6)")
    ax_s.axhline(s_hat, color="tab:orange", label="best constant σ̂ (fixed-variance model)")
    ax_s.set(xlabel="x", ylabel="σ", title="Fitted noise level against the truth", ylim=(0, None))
    ax_s.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(result: dict) -> None:

    nll = result["test_nll"]
    print("test NLL (per example, lower is better):")
    for name, value in nll.items():
        print(f"  {name:<26} {value:8.4f}")
    err = result["sigma_relative_error"]
    print(f"σ(x) relative error on x in [0.1, 1.9]: median {err['median']:.1%}, max {err['max_inner']:.1%}")
    print(f"trained both models in {result['train_seconds']:.1f} s")
    if not nll["learned"] < nll["fixed_best_constant_sigma"]:
        raise SystemExit("the learned-variance model did not beat the fixed-variance one on test NLL")


if __name__ == "__main__":
    main(run, plot, report)
