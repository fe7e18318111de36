"""Maximum likelihood: MSE, binary and multiclass cross-entropy are NLLs of Gaussian, Bernoulli and
categorical heads — computed both ways, side by side — and the heteroscedastic fit.

The notes: choose a distribution for the target, let the network predict its parameters, minimise
the negative log-likelihood. For a Gaussian with σ = 1, −log N(y | μ, 1) = ½(y − μ)² + ½ log 2π
("mean squared error!"); for a Bernoulli with p = sigmoid(z), −log p(y) = −[y log p + (1 − y)
log(1 − p)] (binary cross-entropy); for a categorical with π = softmax(z), −Σ_d y_d log π_d
(cross-entropy).

1. The same predictions: random outputs and targets (n = 4096) through ``fl.losses.nll(head)``
   and through the classical losses (½·``fl.losses.mse`` + ½ log 2π; optax's
   ``sigmoid_binary_cross_entropy``; optax's ``softmax_cross_entropy_with_integer_labels``), plus
   the notes' textbook formulas written out with log(sigmoid) / log(softmax).
2. The same trained models: an MLP trained with ``fl.fit`` on each task (``regression_1d`` with the
   Gaussian head, ``two_moons`` with the Bernoulli head, ``spirals`` with 3 arms with the
   categorical head), its test outputs evaluated both ways. And a model trained on plain MSE
   against the same model trained on the Gaussian NLL (same seed, Adam, whose steps do not depend
   on the gradient's scale): the largest difference between their predictions.
3. The heteroscedastic fit, from ``experiments/heteroscedastic_regression.py`` (imported and run,
   not duplicated): test NLL of the fixed-σ and the learned-σ(x) Gaussian heads.

Writes ``mle_losses.png`` and ``mle_losses.json`` to ``--out`` (default out/mle_losses).
Run: ``python experiments/mle_losses.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import main, sibling

import fnlearn as fl
from fnlearn import distributions, losses

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


# ------------------------------------------------------------------------------ the two ways


def gaussian_both_ways(outputs, y):
    """(mean NLL of gaussian(), ½·MSE + ½ log 2π, per-example NLL, per-example ½(y − μ)² + ½ log 2π)."""
    head = distributions.gaussian()
    per_classic = 0.5 * (y - outputs[:, 0]) ** 2 + HALF_LOG_2PI
    classic = 0.5 * losses.mse(outputs[:, 0], y) + HALF_LOG_2PI
    return losses.nll(head)(outputs, y), classic, -head.log_prob(outputs, y), per_classic


def bernoulli_both_ways(logits, y):
    """(mean NLL of bernoulli(), optax BCE, per-example NLL, per-example optax BCE)."""
    head = distributions.bernoulli()
    per_classic = optax.sigmoid_binary_cross_entropy(logits[:, 0], y.astype(logits.dtype))
    return losses.nll(head)(logits, y), jnp.mean(per_classic), -head.log_prob(logits, y), per_classic


def categorical_both_ways(logits, y):
    """(mean NLL of categorical(), optax CE, per-example NLL, per-example optax CE)."""
    head = distributions.categorical()
    per_classic = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return losses.nll(head)(logits, y), jnp.mean(per_classic), -head.log_prob(logits, y), per_classic


def textbook(kind, outputs, y):
    """The notes' formulas written out: ½(y − μ)² + ½ log 2π via scipy's normal log-density,
    −[y log p + (1−y) log(1−p)] and −Σ_d y_d log π_d."""
    if kind == "bernoulli":
        p_log, q_log = jax.nn.log_sigmoid(outputs[:, 0]), jax.nn.log_sigmoid(-outputs[:, 0])
        return -jnp.mean(y * p_log + (1 - y) * q_log)
    if kind == "categorical":
        one_hot = jax.nn.one_hot(y, outputs.shape[-1])
        return -jnp.mean(jnp.sum(one_hot * jax.nn.log_softmax(outputs), -1))
    return jnp.mean(-jax.scipy.stats.norm.logpdf(y, outputs[:, 0], 1.0))


BOTH_WAYS = {
    "gaussian": gaussian_both_ways,
    "bernoulli": bernoulli_both_ways,
    "categorical": categorical_both_ways,
}
CLASSIC_NAME = {
    "gaussian": "½·MSE + ½ log 2π",
    "bernoulli": "binary cross-entropy (optax)",
    "categorical": "cross-entropy (optax)",
}


def row(kind, outputs, y):
    """One table row (both ways and the textbook formula, compiled together) and the per-example values."""
    compute = jax.jit(lambda o, t: (*BOTH_WAYS[kind](o, t), textbook(kind, o, t)))
    nll, classic, per_nll, per_classic, book = compute(jnp.asarray(outputs), jnp.asarray(y))
    return {
        "head": kind,
        "nll": float(nll),
        "classic_loss": float(classic),
        "classic_name": CLASSIC_NAME[kind],
        "textbook_formula": float(book),
        "abs_difference": abs(float(nll) - float(classic)),
        "max_abs_difference_per_example": float(jnp.max(jnp.abs(per_nll - per_classic))),
    }, (per_nll, per_classic)


# ------------------------------------------------------------------------------ part 1: random predictions


def random_predictions(n: int = 4096):
    """Outputs and targets drawn at random (numpy, seed 0): the losses are compared, not learned."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    return {
        "gaussian": (rng.normal(size=(n, 1)).astype(f32), (1.5 * rng.normal(size=n)).astype(f32)),
        "bernoulli": ((3 * rng.normal(size=(n, 1))).astype(f32), (rng.random(n) < 0.4).astype(f32)),
        "categorical": ((2 * rng.normal(size=(n, 10))).astype(f32), rng.integers(0, 10, n).astype(np.int32)),
    }


# ------------------------------------------------------------------------------ part 2: trained models


TASKS = {
    "gaussian": ("regression_1d", {"n": 400}, "tanh"),
    "bernoulli": ("two_moons", {"n": 600, "noise": 0.2}, "relu"),
    "categorical": ("spirals", {"n": 900, "classes": 3}, "relu"),
}


def train(kind, epochs: int, loss=None, seed: int = 0):
    """fit an MLP in-32-32-out with Adam on the task's training split; (state, test split, head)."""
    name, options, activation = TASKS[kind]
    data = fl.data.load(name, seed=0, **options)
    parts, _ = fl.data.standardize(fl.data.split(data, val=0.0, test=0.25, seed=0))
    head = distributions.get(kind)
    width = head.num_outputs(1 if kind != "categorical" else 3)
    model = fl.nn.mlp([parts.train.x.shape[1], 32, 32, width], activation=activation)
    state = fl.TrainState.create(model, fl.optim.adam(1e-2), jax.random.key(seed))
    state, _ = fl.fit(
        state, (parts.train.x, parts.train.y), loss=loss or head, epochs=epochs, batch_size=32, progress=False
    )
    return state, parts.test, head


def predict(state, x):
    return state.model.apply(state.params, state.model_state, jnp.asarray(x))[0]


def mse_loss(outputs, y, weights):
    """Plain mean squared error Σ w(y − f)² / Σ w (no likelihood anywhere)."""
    return jnp.sum(weights * (y[:, 0] - outputs[:, 0]) ** 2) / jnp.maximum(jnp.sum(weights), 1.0)


def run(quick: bool) -> dict:
    t0 = time.perf_counter()
    same_predictions = [row(kind, *data)[0] for kind, data in random_predictions().items()]

    epochs = 3 if quick else 60
    trained, scatter, states = [], {}, {}
    for kind in TASKS:
        state, test, _ = states[kind] = train(kind, epochs)
        y = jnp.asarray(test.y if kind != "gaussian" else test.y[:, 0])
        r, per = row(kind, predict(state, test.x), y)
        r["task"] = TASKS[kind][0]
        r["test_examples"] = int(len(test))
        trained.append(r)
        scatter[kind] = [np.asarray(v).tolist() for v in per]

    # minimising MSE and minimising the Gaussian NLL give the same model
    state_nll, test, _ = states["gaussian"]  # trained above: the same data, seed and loss
    state_mse, _, _ = train("gaussian", epochs, loss=mse_loss)
    pred_nll, pred_mse = predict(state_nll, test.x)[:, 0], predict(state_mse, test.x)[:, 0]
    same_argmin = {
        "max_abs_prediction_difference": float(jnp.max(jnp.abs(pred_nll - pred_mse))),
        "prediction_scale": float(jnp.std(pred_nll)),
        "test_mse_nll_model": float(losses.mse(pred_nll, jnp.asarray(test.y[:, 0]))),
        "test_mse_mse_model": float(losses.mse(pred_mse, jnp.asarray(test.y[:, 0]))),
    }

    hetero = sibling("heteroscedastic_regression").run(quick)
    hetero.pop("_data")
    return {
        "config": {
            "quick": quick,
            "epochs": epochs,
            "model": "mlp in-32-32-out",
            "optimizer": "adam 1e-2, batch 32",
            "tasks": {k: {"dataset": v[0], **v[1], "activation": v[2]} for k, v in TASKS.items()},
        },
        "same_predictions": same_predictions,
        "trained_models": trained,
        "mse_vs_gaussian_nll_training": same_argmin,
        "heteroscedastic": {
            "test_nll": hetero["test_nll"],
            "sigma_hat_constant": hetero["sigma_hat_constant"],
            "sigma_relative_error": hetero["sigma_relative_error"],
            "config": hetero["config"],
        },
        "seconds": time.perf_counter() - t0,
        "_scatter": scatter,
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(22, 4.8), gridspec_kw={"width_ratios": [1, 1, 1, 1.1]})
    colors = {"gaussian": "tab:blue", "bernoulli": "tab:orange", "categorical": "tab:green"}
    for ax, r in zip(axes[:3], result["trained_models"], strict=True):
        nll, classic = (np.asarray(v) for v in result["_scatter"][r["head"]])
        ax.scatter(classic, nll, s=6, color=colors[r["head"]], alpha=0.6)
        lim = [0, max(nll.max(), classic.max()) * 1.05]
        ax.plot(lim, lim, "k--", lw=0.8, label="y = x")
        ax.set(
            xlabel=f"{r['classic_name']} per test example",
            ylabel=f"−log p under the {r['head']} head",
            title=f"{r['task']} ({r['test_examples']} test points)\nmean: NLL {r['nll']:.5f} vs {r['classic_loss']:.5f}",
        )
        ax.legend(fontsize=8, loc="upper left")
    ax = axes[3]
    h = result["heteroscedastic"]["test_nll"]
    names = {
        "fixed_sigma_1": "fixed σ = 1\n(= ½MSE + c)",
        "fixed_best_constant_sigma": "fixed best\nconstant σ̂",
        "learned": "learned σ(x)",
        "true_distribution": "true σ(x)\n(Bayes limit)",
    }
    ax.bar(range(len(names)), [h[k] for k in names], color=["tab:gray", "tab:orange", "tab:blue", "k"])
    for i, k in enumerate(names):
        ax.text(i, h[k] + 0.01, f"{h[k]:.3f}", ha="center", fontsize=9)
    ax.set_xticks(range(len(names)), list(names.values()), fontsize=8)
    ax.set(ylabel="test NLL per example", title="heteroscedastic_regression.py: Gaussian heads")
    fig.suptitle("Losses are negative log-likelihoods: each trained model's test outputs scored both ways")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(result: dict) -> None:
    for title, rows in (
        ("same random predictions", result["same_predictions"]),
        ("trained models, test set", result["trained_models"]),
    ):
        print(f"{title}:")
        print(
            f"  {'head':12s} {'NLL':>10s} {'classic loss':>13s} {'textbook':>10s}  max |Δ| per example  (classic = ...)"
        )
        for r in rows:
            print(
                f"  {r['head']:12s} {r['nll']:10.5f} {r['classic_loss']:13.5f} {r['textbook_formula']:10.5f}  "
                f"{r['max_abs_difference_per_example']:.2e}  ({r['classic_name']})"
            )
    s = result["mse_vs_gaussian_nll_training"]
    print(
        f"trained on MSE vs on Gaussian NLL: max |Δ prediction| {s['max_abs_prediction_difference']:.2e} "
        f"(predictions' std {s['prediction_scale']:.2f}); test MSE {s['test_mse_mse_model']:.4f} vs {s['test_mse_nll_model']:.4f}"
    )
    print(
        "heteroscedastic test NLL: "
        + ", ".join(f"{k} {v:.3f}" for k, v in result["heteroscedastic"]["test_nll"].items())
    )
    print(f"computed in {result['seconds']:.1f} s")


if __name__ == "__main__":
    main(run, plot, report)
