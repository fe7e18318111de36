"""Does the initialisation keep the signal? The lecture notes' experiment, forwards and backwards.

1. An MLP with 5 hidden layers of 100 units on standardised inputs, for identity, tanh and ReLU
   activations under N(0, 1), N(0, 0.01²), LeCun (1/fan_in), Xavier (2/(fan_in + fan_out)) and He
   (2/fan_in) weights: the variance of every layer's activations (forward) and of the loss gradient
   with respect to every layer's pre-activations (backward), and histograms of the tanh activations.
2. A 50-layer ReLU network of width 256: the second moment of the pre-activations per layer, mean
   over 16 vmapped initialisations, under He, N(0, 0.01²) and N(0, 1).
2b. The same for a plain 20-layer CNN (3×3 convolutions, ReLU, no pooling, normalisation or skip
   connection) on 32×32 images of 64 channels, 16 initialisations: He over the receptive field
   keeps E[z²], N(0, 0.01²) loses it.
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


def deep_cnn_experiment(quick: bool):
    """Part 2b: the same claim for a plain CNN: 20 conv layers (3×3, "SAME", ReLU; no pooling,
    normalisation or skip connection) of ``nn.conv``, E[z²] of each layer's pre-activations.

    He over the receptive field (Var w = 2/(9·C)) keeps E[z²] up to what the zero padding loses at
    the border (a 3-tap row keeps on average (1 + 2cos(π/(n+1)))/3 of the energy of n pixels: 0.99
    a layer at n = 16, 0.997 at n = 32); N(0, 0.01²) multiplies it by 9·C·10⁻⁴/2 a layer
    (0.029 for C = 64; the 1/2 is ReLU's). E[z²] is averaged over the batch, the positions, the channels and the seeds;
    a single initialisation of C channels wanders by a factor of a few over 20 layers (each
    layer's gain is random, its log-variance ∝ 1/C), so the mean over seeds is noisy. One compiled
    layer is driven from Python over the layers and seeds: XLA:CPU runs convolutions inside a
    ``lax.scan`` several times slower (jax-ml/jax#12868).
    """
    depth, size, channels, seeds, batch = (20, 16, 64, 8, 4) if quick else (20, 32, 64, 16, 8)
    shape = (size, size, channels)
    x = jax.random.normal(jax.random.key(6), (batch, *shape))
    conv = nn.conv(channels, 3)  # only its apply is used: the weights come from each rule below

    @jax.jit
    def layer(h, params):
        z = conv.apply(params, {}, h)[0]  # zero biases
        return jax.nn.relu(z), jnp.mean(z**2)

    out = {}
    for name, w_init in {"He": init.he_normal(), "N(0,0.01²)": init.normal(0.01)}.items():
        draw = nn.conv(channels, 3, w_init=w_init).init  # eager: each draw reuses one compiled kernel
        moments = []
        for key in jax.random.split(jax.random.key(7), seeds):
            h = x
            for layer_key in jax.random.split(key, depth):
                h, m = layer(h, draw(layer_key, shape)[1])
                moments.append(m)
        per_seed = np.asarray(jnp.stack(moments), np.float64).reshape(seeds, depth)
        out[name] = {stat: getattr(per_seed, stat)(0).tolist() for stat in ("mean", "min", "max")}
    return {"depth": depth, "image": list(shape), "seeds": seeds, "batch": batch, "second_moment": out}


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
    keeps = {"forward": "LeCun keeps it", "backward": "He(fan_out) keeps it; Xavier sits between"}
    for col, (key, title) in enumerate((("forward_variance", "forward"), ("backward_variance", "backward"))):
        ax = axes[3, col]
        for name, stats in comp["variances"].items():
            ax.semilogy(np.arange(1, len(stats[key]) + 1), stats[key], "o-", label=name)
        ax.set_title(f"linear net, widths {'-'.join(map(str, comp['widths']))}: {title}\n{keeps[title]}")
        ax.set_xlabel("hidden layer")
        ax.legend(fontsize=8)
    plot_deep_cnn(axes[3, 2], results["deep_cnn"])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_deep_cnn(ax, cnn):
    """E[z²] per conv layer of the plain CNN: mean and min–max over the initialisations."""
    for name, stats in cnn["second_moment"].items():
        mean, low, high = (np.asarray(stats[s], np.float64) for s in ("mean", "min", "max"))
        layers = np.arange(1, len(mean) + 1)
        ax.semilogy(layers, np.where(mean > 0, mean, np.nan), "o-", label=name)
        ax.fill_between(layers, np.where(low > 0, low, np.nan), np.where(high > 0, high, np.nan), alpha=0.2)
    h, w, c = cnn["image"]
    ax.set_title(
        f"{cnn['depth']}-layer plain CNN (3×3, ReLU), {h}×{w}×{c}: E[z²] per layer\n"
        f"(mean, min–max over {cnn['seeds']} inits)"
    )
    ax.set_xlabel("conv layer")
    ax.legend(fontsize=8)


def run(quick: bool) -> dict:
    start = time.perf_counter()
    shallow, histograms = shallow_experiment(quick)
    return {
        "shallow": shallow,
        "deep_relu": deep_relu_experiment(quick),
        "deep_cnn": deep_cnn_experiment(quick),
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
    cnn = results["deep_cnn"]["second_moment"]
    print(
        f"{results['deep_cnn']['depth']}-layer plain CNN: E[z²] last/first layer: "
        + ", ".join(f"{name} {stats['mean'][-1] / stats['mean'][0]:.3g}" for name, stats in cnn.items())
    )


if __name__ == "__main__":
    main(run, plot, report)
