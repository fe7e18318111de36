"""Adam normalises the step of every parameter; SGD's steps are proportional to the gradients.

1. The notes' worked example, through ``fl.optim.scale_by_adam``: with m = [3, −2, 5] and
   v = [9, 4, 25], m/(√v + ε) = [1, −1, 1]. With b1 = b2 = 0 one update with g = [3, −2, 5] gives
   exactly the notes' m and v; with the default β's (0.9, 0.999) a constant gradient g gives
   m̂ = g and v̂ = g² at every step — the bias correction is what makes that true (without it the
   first step would be (1 − β₁)/√(1 − β₂) ≈ 3.16 times too big). Checked against optax.scale_by_adam.
2. Linear least squares whose five input features live on scales 10⁻², 10⁻¹, 1, 10, 10², so the
   gradients of the five weights differ by four orders of magnitude (w* = 1 for every weight, so
   every weight has about the same distance to travel; progress is measured towards the
   least-squares solution ŵ of each dataset). 16 datasets and initialisations (jax.vmap over
   seeds), 200 steps each of ``fl.optim.adam(0.02)`` and ``fl.optim.sgd(η)`` (η = 0.9/λ_max of the Hessian: the largest safe
   rate). Per parameter: the mean |gradient| and mean |step| over the first 10 steps, the slope of
   log|step| against log|gradient| across parameters (SGD: 1, Adam: ≈ 0), and the ratio of the
   largest to the smallest step (SGD ≈ 10⁴, Adam ≈ 1), and how far each weight got towards w*.

Writes ``adam_normalisation.png`` and ``adam_normalisation.json`` to ``--out`` (default
out/adam_normalisation). Run: ``python experiments/adam_normalisation.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _common import descend, main, mean_std

import fnlearn.optim as fo

SCALES = np.array([1e-2, 1e-1, 1.0, 1e1, 1e2], np.float32)


def worked_example() -> dict:
    """The notes' m = [3, −2, 5], v = [9, 4, 25] → [1, −1, 1], two ways, and optax's answer."""
    g = jnp.array([3.0, -2.0, 5.0])
    plain = fo.scale_by_adam(b1=0.0, b2=0.0)
    update, state = plain.update(g, plain.init(g))
    reference, _ = optax.scale_by_adam(b1=0.0, b2=0.0).update(g, optax.scale_by_adam(b1=0.0, b2=0.0).init(g))

    default = fo.scale_by_adam()
    d_state = default.init(g)
    steps = []
    for _ in range(5):
        u, d_state = default.update(g, d_state)
        steps.append(np.asarray(u).tolist())
    t = int(d_state.count)
    uncorrected = np.asarray(d_state.mu / (jnp.sqrt(d_state.nu) + 1e-8))
    first_uncorrected = (1 - 0.9) / np.sqrt(1 - 0.999)
    return {
        "m": np.asarray(state.mu).tolist(),
        "v": np.asarray(state.nu).tolist(),
        "update_b1_b2_0": np.asarray(update).tolist(),
        "optax_update_b1_b2_0": np.asarray(reference).tolist(),
        "default_betas_constant_gradient_updates": steps,
        "default_betas_without_bias_correction_after_5": uncorrected.tolist(),
        "first_step_factor_without_bias_correction": float(first_uncorrected),
        "steps_taken": t,
    }


def make_problem(key, n: int = 256):
    """x_ij = s_j·z_ij, y = x·w* + 0.1·ε with w* = 1; start w ~ N(0, 1)."""
    kz, kn, kw = jax.random.split(key, 3)
    x = jax.random.normal(kz, (n, SCALES.size)) * SCALES
    w_star = jnp.ones(SCALES.size)
    y = x @ w_star + 0.1 * jax.random.normal(kn, (n,))
    w0 = jax.random.normal(kw, (SCALES.size,))
    return x, y, w0, w_star


def loss(w, x, y):
    """L(w) = mean_i (x_i·w − y_i)²."""
    return jnp.mean((x @ w - y) ** 2)


def trajectory(optimizer, x, y, w0, steps: int):
    """Gradients, steps (Δw) and weights of ``steps`` updates, one scan."""

    record = lambda s: (s.grads, s.updates, s.params)  # noqa: E731
    _, (grads, updates, ws) = descend(lambda w: loss(w, x, y), optimizer, w0, steps, record=record)
    return grads, updates, ws


def slope(log_x, log_y):
    """Least-squares slope of log_y on log_x (per row)."""
    xc = log_x - log_x.mean(-1, keepdims=True)
    return (xc * (log_y - log_y.mean(-1, keepdims=True))).sum(-1) / (xc**2).sum(-1)


def run(quick: bool) -> dict:
    seeds = 4 if quick else 16
    steps, window, adam_rate = 1000, 10, 0.02
    t0 = time.perf_counter()
    keys = jax.random.split(jax.random.key(0), seeds)
    x, y, w0, _ = jax.jit(jax.vmap(make_problem))(keys)
    # SGD's largest safe rate: below 2/λ_max of the Hessian 2·xᵀx/n (per dataset; take the smallest).
    lam_max = float(np.min(np.linalg.eigvalsh(2 * np.einsum("sni,snj->sij", x, x) / x.shape[1])[:, -1]))
    sgd_rate = 0.9 / lam_max
    w_hat = np.stack(
        [
            np.linalg.lstsq(np.asarray(a, np.float64), np.asarray(b, np.float64), rcond=None)[0]
            for a, b in zip(x, y, strict=True)
        ]
    )
    results = {}
    for name, optimizer in {"sgd": fo.sgd(sgd_rate), "adam": fo.adam(adam_rate)}.items():
        grads, updates, ws = jax.jit(jax.vmap(lambda a, b, c, o=optimizer: trajectory(o, a, b, c, steps)))(
            x, y, w0
        )
        g = np.abs(np.asarray(grads[:, :window])).mean(1)  # [seeds, params]
        u = np.abs(np.asarray(updates[:, :window])).mean(1)
        w_end = np.asarray(ws[:, -1])
        final_loss = np.mean((np.einsum("sni,si->sn", np.asarray(x), w_end) - np.asarray(y)) ** 2, axis=1)
        progress = 1 - np.abs(w_end - w_hat) / np.abs(np.asarray(w0) - w_hat)
        s = slope(np.log(g), np.log(u))
        ratio = u.max(1) / u.min(1)
        results[name] = {
            "learning_rate": float(sgd_rate if name == "sgd" else adam_rate),
            "mean_abs_gradient": mean_std(g, axis=0),
            "mean_abs_step": mean_std(u, axis=0),
            "slope_log_step_vs_log_gradient": mean_std(s),
            "largest_over_smallest_step": mean_std(ratio),
            "progress_towards_least_squares_after_steps": mean_std(progress, axis=0),
            "final_loss": mean_std(final_loss),
        }
    return {
        "config": {
            "quick": quick,
            "feature_scales": SCALES.tolist(),
            "seeds": seeds,
            "steps": steps,
            "window_for_step_statistics": window,
            "n_examples": 256,
            "hessian_lambda_max": lam_max,
        },
        "worked_example": worked_example(),
        "regression": results,
        "seconds": time.perf_counter() - t0,
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    reg = result["regression"]
    idx = np.arange(len(SCALES))
    labels = [f"w{j} (s = {s:g})" for j, s in enumerate(SCALES)]
    ax = axes[0]
    for name, color in (("sgd", "tab:blue"), ("adam", "tab:orange")):
        g = np.asarray(reg[name]["mean_abs_gradient"]["mean"])
        u = np.asarray(reg[name]["mean_abs_step"]["mean"])
        ax.loglog(
            g,
            u,
            "o-",
            color=color,
            label=f"{name}: slope {reg[name]['slope_log_step_vs_log_gradient']['mean']:.2f}",
        )
    ax.set(
        xlabel="mean |gradient| of the weight (first 10 steps)",
        ylabel="mean |step| of the weight",
        title="step against gradient, one point per weight",
    )
    ax.legend(fontsize=8)
    ax = axes[1]
    for k, (name, color) in enumerate((("sgd", "tab:blue"), ("adam", "tab:orange"))):
        u = reg[name]["mean_abs_step"]
        ax.bar(
            idx + (k - 0.5) * 0.38,
            u["mean"],
            yerr=u["std"],
            width=0.38,
            color=color,
            label=f"{name} (largest/smallest {reg[name]['largest_over_smallest_step']['mean']:.3g})",
        )
    ax.set_yscale("log")
    ax.set_xticks(idx, labels, fontsize=8)
    ax.set(ylabel="mean |Δw| per step (mean ± std over seeds)", title="per-parameter step sizes")
    ax.legend(fontsize=8)
    ax = axes[2]
    for k, (name, color) in enumerate((("sgd", "tab:blue"), ("adam", "tab:orange"))):
        p = reg[name]["progress_towards_least_squares_after_steps"]
        ax.bar(idx + (k - 0.5) * 0.38, p["mean"], yerr=p["std"], width=0.38, color=color, label=name)
    ax.set_xticks(idx, labels, fontsize=8)
    ax.set(
        ylabel="1 − |w − ŵ| / |w₀ − ŵ|  (ŵ: least squares)",
        ylim=(-0.1, 1.1),
        title=f"progress of each weight after {result['config']['steps']} steps",
    )
    ax.legend(fontsize=8)
    ex = result["worked_example"]
    fig.suptitle(
        f"notes' example through fl.optim.scale_by_adam: m = {ex['m']}, v = {ex['v']} → {np.round(ex['update_b1_b2_0'], 6).tolist()}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(result: dict) -> None:
    ex = result["worked_example"]
    print(
        f"worked example: m = {ex['m']}, v = {ex['v']} -> {ex['update_b1_b2_0']} (optax {ex['optax_update_b1_b2_0']})"
    )
    print(
        f"default β's, constant g: every update {np.round(ex['default_betas_constant_gradient_updates'][-1], 6).tolist()}; "
        f"without bias correction the first step is {ex['first_step_factor_without_bias_correction']:.2f}× too big"
    )
    for name, r in result["regression"].items():
        print(
            f"{name:4s} (lr {r['learning_rate']:.3g}): slope log|step| vs log|grad| {r['slope_log_step_vs_log_gradient']['mean']:.3f} ± "
            f"{r['slope_log_step_vs_log_gradient']['std']:.3f}, largest/smallest step {r['largest_over_smallest_step']['mean']:.3g}, "
            f"progress per weight {np.round(r['progress_towards_least_squares_after_steps']['mean'], 3).tolist()}"
        )


if __name__ == "__main__":
    main(run, plot, report)
