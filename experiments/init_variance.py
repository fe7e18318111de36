"""Does the initialisation keep the signal? The lecture notes' experiment, forwards and backwards.

1. An MLP with 5 hidden layers of 100 units on standardised inputs, for identity, tanh and ReLU
   activations under N(0, 1), N(0, 0.01²), LeCun (1/fan_in), Xavier (2/(fan_in + fan_out)) and He
   (2/fan_in) weights: the variance of every layer's activations (forward) and of the loss gradient
   with respect to every layer's pre-activations (backward), and histograms of the tanh activations.
2. A 50-layer ReLU network of width 256: the second moment of the pre-activations per layer, mean
   over 16 vmapped initialisations, under He, N(0, 0.01²) and N(0, 1).
3. Xavier's compromise: a linear network whose widths change (100-50-200-50-200-50-100). LeCun keeps
   the forward variance, He with mode="fan_out" (gain 1) the backward one, Xavier sits in between.

Writes ``init_variance.png`` and ``init_variance.json`` to ``--out`` (default out/init_variance).
Run: ``python experiments/init_variance.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _common import main

from fnlearn import init, nn

INITS = {
    "N(0,1)": init.normal(1.0),
    "N(0,0.01²)": init.normal(0.01),
    "LeCun": init.lecun_normal(),
    "Xavier": init.xavier_normal(),
    "He": init.he_normal(),
}
ACTIVATIONS = {"identity": lambda z: z, "tanh": jnp.tanh, "relu": jax.nn.relu}


def layer_statistics(widths, activation, w_init, x, key):
    """Forward and backward variances per hidden layer of an MLP built by ``nn.mlp``.

    Forward: Var(h_l) of each hidden layer's activations h_l = f(z_l), z_l = h_{l-1} W_l + b_l.
    Backward: Var(∂L/∂z_l) for L = Σ y ⊙ g with a fixed random g, found by differentiating with
    respect to a zero perturbation added to every z_l (so the backward pass is jax's own).
    """
    model = nn.mlp(widths, activation=activation, w_init=w_init)
    params, _ = model.init(key)
    f = ACTIVATIONS[activation]
    hidden, output = params[:-1], params[-1]
    g = jax.random.normal(jax.random.fold_in(key, 1), (x.shape[0], widths[-1]))

    def forward(perturbations):
        h, activations = x, []
        for block, eps in zip(hidden, perturbations, strict=True):
            h = f(h @ block[0]["w"] + block[0]["b"] + eps)
            activations.append(h)
        y = h @ output["w"] + output["b"]
        return jnp.sum(y * g), activations

    zeros = [jnp.zeros((x.shape[0], w)) for w in widths[1:-1]]
    grads, activations = jax.grad(forward, has_aux=True)(zeros)
    return (
        jnp.stack([jnp.var(h) for h in activations]),
        jnp.stack([jnp.var(d) for d in grads]),
        activations,
    )


def shallow_experiment(quick: bool):
    """Part 1: five hidden layers of 100 units."""
    n = 200 if quick else 1000
    x = jax.random.normal(jax.random.key(0), (n, 100))  # standardised inputs
    widths = [100] * 6 + [10]
    result, histograms = {}, {}
    for activation in ACTIVATIONS:
        result[activation] = {}
        for name, w_init in INITS.items():
            # eager: fifteen small networks run faster op by op than compiled one by one
            fwd, bwd, acts = layer_statistics(widths, activation, w_init, x, jax.random.key(1))
            result[activation][name] = {
                "forward_variance": np.asarray(fwd).tolist(),
                "backward_variance": np.asarray(bwd).tolist(),
            }
            if activation == "tanh" and name in ("N(0,1)", "Xavier", "LeCun"):
                histograms[name] = [np.asarray(a).ravel() for a in acts]
    return result, histograms


def deep_relu_experiment(quick: bool):
    """Part 2: the second moment of the pre-activations through 50 ReLU layers of width 256.

    The layers are identical, so their weights are drawn as one stack (the same initialiser,
    vmapped over layer keys) and the forward pass is a ``lax.scan``: one small compilation instead
    of fifty unrolled layers (tests/test_nn.py checks the same claim through ``nn.mlp``).
    """
    depth, width, seeds = (20, 128, 8) if quick else (50, 256, 16)
    x = jax.random.normal(jax.random.key(2), (64, width))
    out = {}
    for name, w_init in {
        "He": init.he_normal(),
        "N(0,0.01²)": init.normal(0.01),
        "N(0,1)": init.normal(1.0),
    }.items():

        def moments(key, w_init=w_init):
            weights = jax.vmap(lambda k: w_init(k, (width, width)))(jax.random.split(key, depth))

            def layer(h, w):
                z = h @ w  # zero biases
                return jax.nn.relu(z), jnp.mean(z**2)

            return jax.lax.scan(layer, x, weights)[1]

        per_seed = np.asarray(
            jax.jit(jax.vmap(moments))(jax.random.split(jax.random.key(3), seeds)), np.float64
        )
        finite = np.isfinite(per_seed).all(0)
        # float32 overflow is stored as null: strict JSON has no Infinity
        out[name] = {
            stat: [float(v) if ok else None for v, ok in zip(getattr(per_seed, stat)(0), finite, strict=True)]
            for stat in ("mean", "min", "max")
        } | {
            "first_overflow_layer": int(np.argmin(finite)) + 1 if not finite.all() else None,
        }
    return {"depth": depth, "width": width, "seeds": seeds, "second_moment": out}


def xavier_compromise():
    """Part 3: a linear network of changing widths; which variance does each rule keep?"""
    widths = [100, 50, 200, 50, 200, 50, 100]
    x = jax.random.normal(jax.random.key(4), (500, widths[0]))
    rules = {
        "LeCun (fan_in)": init.lecun_normal(),
        "Xavier (fan_avg)": init.xavier_normal(),
        "He fan_out, gain 1": init.he_normal(1.0, mode="fan_out"),
    }
    out = {}
    for name, w_init in rules.items():
        fwd, bwd, _ = layer_statistics(widths + [widths[-1]], "identity", w_init, x, jax.random.key(5))
        out[name] = {
            "forward_variance": np.asarray(fwd).tolist(),
            "backward_variance": np.asarray(bwd).tolist(),
        }
    return {"widths": widths, "variances": out}


def plot(results, path: Path):
    histograms = results["_histograms"]
    import matplotlib  # noqa: PLC0415 - optional extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(4, 3, figsize=(15, 16))
    layers = np.arange(1, 6)
    for col, activation in enumerate(ACTIVATIONS):
        for row, key, label in (
            (0, "forward_variance", "Var(activations)"),
            (1, "backward_variance", "Var(∂L/∂pre-activation)"),
        ):
            ax = axes[row, col]
            for name, stats in results["shallow"][activation].items():
                values = np.asarray(stats[key], np.float64)
                ax.semilogy(layers, np.where(values > 0, values, np.nan), "o-", label=name)
            ax.set_title(f"{activation}: {'forward' if row == 0 else 'backward'}")
            ax.set_xlabel("hidden layer")
            ax.set_ylabel(label)
            ax.set_xticks(layers)
    axes[0, 0].legend(fontsize=8)
    for col, name in enumerate(("N(0,1)", "Xavier")):
        ax = axes[2, col]
        for layer, values in enumerate(histograms[name], start=1):
            ax.hist(values, bins=60, range=(-1, 1), histtype="step", density=True, label=f"layer {layer}")
        ax.set_title(f"tanh activations, {name} weights")
        ax.legend(fontsize=7)
    ax = axes[2, 2]
    deep = results["deep_relu"]
    for name, stats in deep["second_moment"].items():
        mean, low, high = (np.asarray(stats[s], np.float64) for s in ("mean", "min", "max"))  # None -> nan
        steps = np.arange(1, len(mean) + 1)
        ax.semilogy(steps, np.where(mean > 0, mean, np.nan), label=name)
        ax.fill_between(steps, low, high, alpha=0.2)
    ax.set_ylim(1e-30, 1e30)
    ax.set_title(
        f"{deep['depth']}-layer ReLU, width {deep['width']}: E[z²] per layer\n(mean, min–max over {deep['seeds']} inits)"
    )
    ax.set_xlabel("layer")
    ax.legend(fontsize=8)
    comp = results["xavier_compromise"]
    for col, (key, title) in enumerate((("forward_variance", "forward"), ("backward_variance", "backward"))):
        ax = axes[3, col]
        for name, stats in comp["variances"].items():
            ax.semilogy(np.arange(1, len(stats[key]) + 1), stats[key], "o-", label=name)
        ax.set_title(f"linear net, widths {'-'.join(map(str, comp['widths']))}: {title}")
        ax.set_xlabel("hidden layer")
        ax.legend(fontsize=8)
    axes[3, 2].axis("off")
    axes[3, 2].text(
        0.0,
        0.5,
        "LeCun keeps the forward variance,\nHe(fan_out) the backward one;\nXavier's 2/(fan_in+fan_out)\nis the compromise between them.\n\n(Rows 1-2: all widths are 100, so LeCun\nand Xavier coincide there.)",
        fontsize=12,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run(quick: bool) -> dict:
    start = time.perf_counter()
    shallow, histograms = shallow_experiment(quick)
    return {
        "shallow": shallow,
        "deep_relu": deep_relu_experiment(quick),
        "xavier_compromise": xavier_compromise(),
        "seconds": time.perf_counter() - start,
        "_histograms": histograms,  # for the figure only (not written to the JSON)
    }


def report(results: dict) -> None:
    shallow = results["shallow"]
    print("5 hidden layers of 100 units: Var(activations) in the last hidden layer")
    print(f"{'init':>12} " + " ".join(f"{a:>10}" for a in ACTIVATIONS))
    for name in INITS:
        print(
            f"{name:>12} "
            + " ".join(f"{shallow[a][name]['forward_variance'][-1]:10.3g}" for a in ACTIVATIONS)
        )
    deep = results["deep_relu"]["second_moment"]
    he = np.asarray(deep["He"]["mean"])
    print(
        f"{results['deep_relu']['depth']}-layer ReLU: E[z²] last/first layer: He {he[-1] / he[0]:.2f}, "
        f"N(0,0.01²) {deep['N(0,0.01²)']['mean'][-1] / deep['N(0,0.01²)']['mean'][0]:.3g}; "
        f"N(0,1) overflows float32 at layer {deep['N(0,1)']['first_overflow_layer']}"
    )


if __name__ == "__main__":
    main(run, plot, report)
