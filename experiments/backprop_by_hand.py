"""Backpropagation by hand: the notes' toy function and an MLP, against jax.grad and finite differences.

1. The notes' toy model f[x, φ] = β₃ + ω₃·cos[β₂ + ω₂·exp[β₁ + ω₁·sin[β₀ + ω₀·x]]] with the
   least-squares loss ℓᵢ = (f[xᵢ, φ] − yᵢ)². The forward pass stores the intermediates

       f₀ = β₀ + ω₀·xᵢ,  h₁ = sin[f₀],  f₁ = β₁ + ω₁·h₁,  h₂ = exp[f₁],
       f₂ = β₂ + ω₂·h₂,  h₃ = cos[f₂],  f₃ = β₃ + ω₃·h₃,  ℓᵢ = (f₃ − yᵢ)²;

   the backward pass computes ∂ℓᵢ/∂f₃, ∂ℓᵢ/∂h₃, ∂ℓᵢ/∂f₂, …, ∂ℓᵢ/∂f₀ in reverse order by the chain
   rule, then ∂ℓᵢ/∂βₖ = ∂ℓᵢ/∂fₖ and ∂ℓᵢ/∂ωₖ = hₖ·∂ℓᵢ/∂fₖ (h₀ = xᵢ). Compared with jax.grad and
   with the notes' closed form of ∂ℓᵢ/∂ω₀, over many random (φ, x, y) drawn with jax.vmap.
2. The same recipe for an MLP built by ``fl.nn.mlp`` (params ``[[{"w", "b"}, {}], …, {"w", "b"}]``,
   row vectors, so the notes' Ωₖ is Wₖᵀ): fₖ = hₖWₖ + bₖ, hₖ₊₁ = a[fₖ], L = Σᵢ ‖f_K(xᵢ) − yᵢ‖²;
   backwards ∂L/∂f_K = 2(f_K − y), ∂L/∂Wₖ = hₖᵀ·∂L/∂fₖ, ∂L/∂bₖ = Σᵢ ∂L/∂fₖ, ∂L/∂hₖ = ∂L/∂fₖ·Wₖᵀ,
   ∂L/∂fₖ₋₁ = a′[fₖ₋₁] ⊙ ∂L/∂hₖ. Compared with jax.grad (float32 and float64, relu and tanh,
   vmapped over initialisations) and with central finite differences (float64) over a range of ε.

Writes ``backprop_by_hand.png`` and ``backprop_by_hand.json`` to ``--out`` (default
out/backprop_by_hand). Run: ``python experiments/backprop_by_hand.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _common import main
from jax.flatten_util import ravel_pytree

import fnlearn as fl

# ------------------------------------------------------------------------------------------------
# 1. the toy function


def toy_forward(phi: dict, x):
    """The forward pass, keeping every intermediate: f₀, h₁, f₁, h₂, f₂, h₃, f₃ (the output)."""
    beta, omega = phi["beta"], phi["omega"]
    f0 = beta[0] + omega[0] * x
    h1 = jnp.sin(f0)
    f1 = beta[1] + omega[1] * h1
    h2 = jnp.exp(f1)
    f2 = beta[2] + omega[2] * h2
    h3 = jnp.cos(f2)
    f3 = beta[3] + omega[3] * h3
    return {"f0": f0, "h1": h1, "f1": f1, "h2": h2, "f2": f2, "h3": h3, "f3": f3}


def toy_loss(phi: dict, x, y):
    """L = Σᵢ ℓᵢ = Σᵢ (f[xᵢ, φ] − yᵢ)², the composition written in one line (what jax.grad sees)."""
    beta, omega = phi["beta"], phi["omega"]
    f = beta[3] + omega[3] * jnp.cos(
        beta[2] + omega[2] * jnp.exp(beta[1] + omega[1] * jnp.sin(beta[0] + omega[0] * x))
    )
    return jnp.sum((f - y) ** 2)


def toy_backward(phi: dict, x, y, cache: dict) -> dict:
    """∂L/∂βₖ and ∂L/∂ωₖ from the stored intermediates, derivatives taken in reverse order.

    ∂ℓ/∂f₃ = 2(f₃ − y); ∂ℓ/∂h₃ = ω₃·∂ℓ/∂f₃; ∂ℓ/∂f₂ = −sin[f₂]·∂ℓ/∂h₃; ∂ℓ/∂h₂ = ω₂·∂ℓ/∂f₂;
    ∂ℓ/∂f₁ = exp[f₁]·∂ℓ/∂h₂; ∂ℓ/∂h₁ = ω₁·∂ℓ/∂f₁; ∂ℓ/∂f₀ = cos[f₀]·∂ℓ/∂h₁. Then
    ∂ℓ/∂βₖ = ∂ℓ/∂fₖ (∂fₖ/∂βₖ = 1) and ∂ℓ/∂ωₖ = hₖ·∂ℓ/∂fₖ (∂fₖ/∂ωₖ = hₖ, h₀ = x); summed over i.
    """
    omega = phi["omega"]
    d_f3 = 2.0 * (cache["f3"] - y)
    d_h3 = omega[3] * d_f3
    d_f2 = -jnp.sin(cache["f2"]) * d_h3
    d_h2 = omega[2] * d_f2
    d_f1 = jnp.exp(cache["f1"]) * d_h2  # = h₂·∂ℓ/∂h₂
    d_h1 = omega[1] * d_f1
    d_f0 = jnp.cos(cache["f0"]) * d_h1
    d_f = (d_f0, d_f1, d_f2, d_f3)
    h = (x, cache["h1"], cache["h2"], cache["h3"])
    return {
        "beta": jnp.stack([jnp.sum(d) for d in d_f]),
        "omega": jnp.stack([jnp.sum(hk * d) for hk, d in zip(h, d_f, strict=True)]),
    }


def notes_d_omega0(phi: dict, x, y):
    """The notes' closed form: ∂ℓᵢ/∂ω₀ = −2(f − yᵢ)·ω₁ω₂ω₃·xᵢ·cos[f₀]·exp[f₁]·sin[f₂], summed over i."""
    c = toy_forward(phi, x)
    w = phi["omega"]
    return jnp.sum(
        -2.0 * (c["f3"] - y) * w[1] * w[2] * w[3] * x * jnp.cos(c["f0"]) * jnp.exp(c["f1"]) * jnp.sin(c["f2"])
    )


def random_toy_problem(key, n: int = 16):
    """φ with β, ω ~ N(0, 0.5²) (so exp stays moderate), x ~ U[−2, 2], y ~ N(0, 1)."""
    kb, kw, kx, ky = jax.random.split(key, 4)
    phi = {"beta": 0.5 * jax.random.normal(kb, (4,)), "omega": 0.5 * jax.random.normal(kw, (4,))}
    return phi, jax.random.uniform(kx, (n,), minval=-2.0, maxval=2.0), jax.random.normal(ky, (n,))


def toy_comparison(key, draws: int, dtype=jnp.float32) -> dict:
    """Hand backward pass vs jax.grad vs the notes' ∂ℓ/∂ω₀ over ``draws`` random problems (vmapped).

    Relative errors are elementwise, |a − b|/|b|: a gradient that nearly cancels over the batch
    shows float32 rounding of the summands (hence also float64).
    """

    def one(k):
        phi, x, y = jax.tree.map(lambda a: a.astype(dtype), random_toy_problem(k))
        hand = toy_backward(phi, x, y, toy_forward(phi, x))
        auto = jax.grad(toy_loss)(phi, x, y)
        return hand, auto, notes_d_omega0(phi, x, y)

    hand, auto, closed = jax.tree.map(np.asarray, jax.jit(jax.vmap(one))(jax.random.split(key, draws)))
    rel = lambda a, b: float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))  # noqa: E731
    return {
        "draws": draws,
        "dtype": jnp.dtype(dtype).name,
        "max_rel_err_beta": rel(hand["beta"], auto["beta"]),
        "max_rel_err_omega": rel(hand["omega"], auto["omega"]),
        "max_rel_err_notes_omega0": rel(closed, auto["omega"][:, 0]),
    }


def toy_example(key) -> dict:
    """One problem's eight gradients, hand and jax.grad, for the figure and the printout."""

    def both(k):
        phi, x, y = random_toy_problem(k)
        return toy_backward(phi, x, y, toy_forward(phi, x)), jax.grad(toy_loss)(phi, x, y)

    hand, auto = jax.tree.map(np.asarray, jax.jit(both)(key))
    names = [f"{p}{k}" for k in range(4) for p in ("β", "ω")]
    pick = lambda g: [float(g[p][k]) for k in range(4) for p in ("beta", "omega")]  # noqa: E731
    return {"names": names, "hand": pick(hand), "jax_grad": pick(auto)}


# ------------------------------------------------------------------------------------------------
# 2. an MLP built by fl.nn.mlp

ACTIVATION_DERIVATIVES = {
    "relu": (jax.nn.relu, lambda f: (f > 0).astype(f.dtype)),  # a′[f] = 𝟙[f > 0]
    "tanh": (jnp.tanh, lambda f: 1.0 - jnp.tanh(f) ** 2),  # a′[f] = 1 − tanh²[f]
}


def mlp_forward(params, x, activation: str):
    """Forward pass over mlp's params, keeping the layer inputs hₖ and pre-activations fₖ."""
    a, _ = ACTIVATION_DERIVATIVES[activation]
    hs, fs, h = [], [], x
    for layer in [block[0] for block in params[:-1]] + [params[-1]]:
        hs.append(h)
        fs.append(h @ layer["w"] + layer["b"])
        h = a(fs[-1])
    return hs, fs  # the output is fs[-1] (no activation after the last layer)


def mlp_backward(params, x, y, activation: str):
    """∂L/∂(every w and b) for L = Σᵢ ‖f(xᵢ) − yᵢ‖², in mlp's params layout (see module docstring)."""
    _, a_prime = ACTIVATION_DERIVATIVES[activation]
    hs, fs = mlp_forward(params, x, activation)
    layers = [block[0] for block in params[:-1]] + [params[-1]]
    d_f = 2.0 * (fs[-1] - y)  # ∂L/∂f_K
    grads = [None] * len(layers)
    for k in reversed(range(len(layers))):
        grads[k] = {"w": hs[k].T @ d_f, "b": jnp.sum(d_f, axis=0)}
        if k > 0:
            d_h = d_f @ layers[k]["w"].T  # ∂L/∂hₖ
            d_f = a_prime(fs[k - 1]) * d_h  # ∂L/∂fₖ₋₁
    return [[g, {}] for g in grads[:-1]] + [grads[-1]]


def mlp_loss(model, state):
    """L(params, x, y) = Σᵢ ‖f(xᵢ) − yᵢ‖² through the library's own ``model.apply``."""

    def loss(params, x, y):
        out, _ = model.apply(params, state, x)
        return jnp.sum((out - y) ** 2)

    return loss


def per_layer_errors(a, b) -> list[float]:
    """‖a − b‖ / ‖b‖ for each leaf (w₀, b₀, w₁, b₁, …) of stacked gradients, worst over the stack
    (numpy on the host: eager jax would compile each small op for each leaf shape)."""
    out = []
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
        axes = tuple(range(1, u.ndim))
        err = np.sqrt(np.sum((u - v) ** 2, axis=axes)) / np.maximum(np.sqrt(np.sum(v**2, axis=axes)), 1e-30)
        out.append(float(err.max()))
    return out


def leaf_names(params) -> list[str]:
    return [fl.tree.path_str(path) for path, _ in jax.tree_util.tree_leaves_with_path(params)]


def with_random_biases(key, params, std: float = 0.1):
    """mlp's zero biases replaced by N(0, std²) draws, so that the bias gradients are tested at
    non-zero biases too."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    keys = jax.random.split(key, len(leaves))
    new = [
        std * jax.random.normal(k, p.shape, p.dtype) if fl.tree.path_str(path).endswith("b") else p
        for k, (path, p) in zip(keys, leaves, strict=True)
    ]
    return jax.tree_util.tree_unflatten(treedef, new)


def mlp_comparison(sizes, activation: str, inits: int, dtype) -> dict:
    """Hand backward vs jax.grad for ``inits`` initialisations of ``mlp(sizes)`` (vmapped)."""
    model = fl.nn.mlp(sizes, activation=activation)
    state = jax.eval_shape(model.init, jax.random.key(0))[1]  # an mlp without norm has no arrays in its state
    assert not jax.tree.leaves(state)
    loss = mlp_loss(model, state)
    x = jax.random.normal(jax.random.key(1), (32, sizes[0]), dtype)
    y = jax.random.normal(jax.random.key(2), (32, sizes[-1]), dtype)

    def one(key):
        params = with_random_biases(
            jax.random.fold_in(key, 1), jax.tree.map(lambda p: p.astype(dtype), model.init(key)[0])
        )
        return mlp_backward(params, x, y, activation), jax.grad(loss)(params, x, y)

    hand, auto = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(3), inits))
    names = leaf_names(jax.eval_shape(model.init, jax.random.key(0))[0])
    errs = per_layer_errors(hand, auto)
    return {
        "sizes": list(sizes),
        "activation": activation,
        "dtype": jnp.dtype(dtype).name,
        "inits": inits,
        "per_leaf": dict(zip(names, errs, strict=True)),
        "max_rel_err": max(errs),
    }


def finite_differences(sizes, activation: str, epsilons, directions: int) -> dict:
    """Central differences (L(θ + εv) − L(θ − εv))/2ε against ⟨∂L/∂θ (hand), v⟩, float64.

    Truncation error shrinks like ε², rounding error grows like 1/ε: the error is V-shaped in ε.
    Also a coordinate-wise check of 10 single weights at ε = 1e-6.
    """
    with jax.enable_x64(True):
        model = fl.nn.mlp(sizes, activation=activation)
        params, state = model.init(jax.random.key(4))
        params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), params)
        x = jax.random.normal(jax.random.key(5), (32, sizes[0]), jnp.float64)
        y = jax.random.normal(jax.random.key(6), (32, sizes[-1]), jnp.float64)
        flat_g, _ = ravel_pytree(jax.jit(mlp_backward, static_argnums=3)(params, x, y, activation))
        flat_p, unravel = ravel_pytree(params)
        loss = mlp_loss(model, state)

        @jax.jit
        @jax.vmap
        def central(eps, v):
            return (loss(unravel(flat_p + eps * v), x, y) - loss(unravel(flat_p - eps * v), x, y)) / (2 * eps)

        rng = np.random.default_rng(7)
        v = rng.standard_normal((directions, flat_p.size))
        g = np.asarray(flat_g)
        exact = v @ g
        errors = []
        for eps in epsilons:
            fd = np.asarray(central(jnp.full((directions,), eps), jnp.asarray(v)))
            errors.append(float(np.max(np.abs(fd - exact) / np.abs(exact))))
        coords = rng.choice(flat_p.size, 10, replace=False)
        fd = np.asarray(central(jnp.full((10,), 1e-6), jnp.asarray(np.eye(flat_p.size)[coords])))
        coord_err = (np.abs(fd - g[coords]) / np.maximum(np.abs(g[coords]), 1e-12)).tolist()
    best = int(np.argmin(errors))
    return {
        "sizes": list(sizes),
        "activation": activation,
        "epsilons": list(epsilons),
        "max_rel_err": errors,
        "best_epsilon": epsilons[best],
        "best_rel_err": errors[best],
        "coordinate_rel_err_eps_1e-6": max(coord_err),
    }


# ------------------------------------------------------------------------------------------------


def plot(results, path: Path):
    import matplotlib  # noqa: PLC0415 - optional extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, 3, figsize=(18, 5))
    ax = axes[0]
    ex = results["toy"]["example"]
    pos = np.arange(len(ex["names"]))
    ax.bar(pos - 0.2, ex["hand"], 0.4, label="hand backward pass")
    ax.bar(pos + 0.2, ex["jax_grad"], 0.4, label="jax.grad")
    ax.set_xticks(pos, [f"∂L/∂{n}" for n in ex["names"]], fontsize=8)
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.set_ylabel("gradient (symlog scale)")
    toy = results["toy"]["comparison"]
    worst = max(toy["max_rel_err_beta"], toy["max_rel_err_omega"])
    ax.set_title(
        f"toy f = β₃ + ω₃cos(β₂ + ω₂exp(β₁ + ω₁sin(β₀ + ω₀x)))\n"
        f"max rel. error over {toy['draws']} random problems: {worst:.1e} (float32)"
    )
    ax.legend(fontsize=8)
    ax = axes[1]
    floor = 1e-19
    for i, run in enumerate(results["mlp"]):
        names = list(run["per_leaf"])
        vals = np.maximum(list(run["per_leaf"].values()), floor)
        ax.semilogy(
            np.arange(len(names)) + 0.08 * (i - 1.5), vals, "o", label=f"{run['activation']}, {run['dtype']}"
        )
    ax.text(0.02, 0.1, "points on the floor: bit-identical to jax.grad", transform=ax.transAxes, fontsize=8)
    ax.set_ylim(floor / 3, 1e-5)
    ax.set_xticks(np.arange(len(names)), names, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("‖hand − jax.grad‖ / ‖jax.grad‖ (worst init)")
    ax.set_xlabel("parameter leaf (block/layer/name)")
    ax.set_title(f"MLP {results['mlp'][0]['sizes']}: hand backward pass vs jax.grad")
    ax.axhline(np.finfo(np.float32).eps, color="0.5", ls=":", label="float32 eps")
    ax.axhline(np.finfo(np.float64).eps, color="0.5", ls="--", label="float64 eps")
    ax.legend(fontsize=8)
    ax = axes[2]
    fd = results["finite_differences"]
    ax.loglog(fd["epsilons"], fd["max_rel_err"], "o-", label="central difference vs hand gradient")
    eps = np.asarray(fd["epsilons"])
    ax.loglog(eps, fd["max_rel_err"][0] * (eps / eps[0]) ** 2, "k:", label="∝ ε² (truncation)")
    ax.set_xlabel("ε")
    ax.set_ylabel("max relative error of ⟨∂L/∂θ, v⟩")
    ax.set_title(
        f"central differences, float64 {fd['activation']} MLP\nbest {fd['best_rel_err']:.1e} at ε = {fd['best_epsilon']:.0e}"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def run(quick: bool) -> dict:
    start = time.perf_counter()
    draws, inits = (64, 4) if quick else (1024, 16)
    sizes = [5, 16, 16, 16, 3]
    results = {
        "toy": {
            "comparison": toy_comparison(jax.random.key(0), draws),
            "example": toy_example(jax.random.key(1)),
        },
        "mlp": [
            mlp_comparison(sizes, act, inits, jnp.float32)
            for act in (("relu",) if quick else ("relu", "tanh"))
        ],
        "finite_differences": finite_differences(
            sizes, "tanh", [10.0**-k for k in range(1, 10)], 4 if quick else 16
        ),
    }
    with jax.enable_x64(True):
        results["toy"]["comparison_float64"] = toy_comparison(jax.random.key(0), draws, jnp.float64)
    if not quick:  # the MLP in float64 is covered by the unit tests in CI
        with jax.enable_x64(True):
            results["mlp"] += [mlp_comparison(sizes, act, inits, jnp.float64) for act in ("relu", "tanh")]
    results["seconds"] = time.perf_counter() - start
    return results


def report(results: dict) -> None:
    for toy in (results["toy"]["comparison"], results["toy"]["comparison_float64"]):
        print(
            f"toy function, {toy['draws']} random problems ({toy['dtype']}): max rel. error hand vs jax.grad "
            f"β {toy['max_rel_err_beta']:.1e}, ω {toy['max_rel_err_omega']:.1e}; notes' closed-form ∂ℓ/∂ω₀ vs jax.grad "
            f"{toy['max_rel_err_notes_omega0']:.1e}"
        )
    for run in results["mlp"]:
        print(
            f"MLP {run['sizes']} {run['activation']:>4} {run['dtype']}: max rel. error hand vs jax.grad {run['max_rel_err']:.1e}"
        )
    fd = results["finite_differences"]
    print(
        f"finite differences (float64): best rel. error {fd['best_rel_err']:.1e} at ε = {fd['best_epsilon']:.0e}; "
        f"10 single weights at ε = 1e-6: {fd['coordinate_rel_err_eps_1e-6']:.1e}"
    )


if __name__ == "__main__":
    main(run, plot, report)
