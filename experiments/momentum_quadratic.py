"""Momentum on an ill-conditioned quadratic: a smoother path and a wider range of stable step sizes.

The notes (after Goh, "Why momentum really works", Distill 2017): momentum "dampens oscillations",
"allows a larger range of step-sizes to be used, and creates its own oscillations". Measured on
``optimizer_paths.py``'s quadratic L(θ) = ½·θᵀAθ (eigenvalues 1 and 25, rotated by 30°) with
heavy-ball momentum ``fl.optim.sgd(η, momentum=β)``: m ← g + β·m, θ ← θ − η·m.

1. Path smoothness at the same effective step size η/(1 − β) = 0.07 (so every β moves equally fast
   along the flat direction; GD's steep-direction factor is 1 − 0.07·25 = −0.75, a zigzag), from
   64 starts on a circle of radius 5 (jax.vmap over starts), 100 steps each:
   * zigzags: sign changes of successive steps along the steep eigenvector (of 98 possible);
   * tortuosity: path length / net displacement (1 = a straight line);
   * loss total variation Σ|L_{t+1} − L_t| / (L_0 − L_T) (1 = the loss never goes up);
   * steps until L ≤ 10⁻⁶·L_0.
2. The largest stable η for β from 0 to 0.99, found with ``optimizer_paths.stable_rates`` (η whose
   loss still falls after 200 steps, vmapped over η), against the theory η < 2(1 + β)/λ_max.

Writes ``momentum_quadratic.png`` and ``momentum_quadratic.json`` to ``--out`` (default
out/momentum_quadratic). Run: ``python experiments/momentum_quadratic.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _common import descend, main, mean_std, pm, sibling

import fnlearn.optim as fo

EFFECTIVE_RATE = 0.07
STEPS = 100


def heavy_ball_paths(A, starts, beta: float, effective_rate: float, steps: int):
    """θ_0..θ_T and L(θ_t) of sgd(η = effective_rate·(1 − β), momentum=β) from every start (vmapped)."""
    opt = fo.sgd(effective_rate * (1 - beta), momentum=beta if beta > 0 else None)
    loss = lambda t: 0.5 * t @ A @ t  # noqa: E731

    def one(theta0):
        record = lambda s: (s.next_params, loss(s.next_params))  # noqa: E731
        _, (thetas, losses) = descend(loss, opt, theta0, steps, gradient=lambda t: A @ t, record=record)
        return jnp.vstack([theta0[None], thetas]), jnp.concatenate([loss(theta0)[None], losses])

    thetas, losses = jax.jit(jax.vmap(one))(starts)
    return np.asarray(thetas, np.float64), np.asarray(losses, np.float64)


def smoothness(thetas, losses, steep):
    """Per path: zigzag count, tortuosity, loss total-variation ratio, steps to L ≤ 1e-6·L_0."""
    steps = np.diff(thetas, axis=1)  # [S, T, 2]
    along = steps @ steep
    zigzags = np.sum(np.sign(along[:, 1:]) != np.sign(along[:, :-1]), axis=1)
    length = np.linalg.norm(steps, axis=-1).sum(1)
    tortuosity = length / np.linalg.norm(thetas[:, -1] - thetas[:, 0], axis=-1)
    total_variation = np.abs(np.diff(losses, axis=1)).sum(1) / (losses[:, 0] - losses[:, -1])
    reached = losses <= 1e-6 * losses[:, :1]
    to_tol = np.where(reached.any(1), reached.argmax(1), np.nan)  # NaN: not within the steps
    return {
        "zigzags": zigzags,
        "tortuosity": tortuosity,
        "loss_total_variation": total_variation,
        "steps_to_1e-6": to_tol,
    }


def summary(values):
    """Mean ± std over the paths that have a value (NaN = not reached), and how many have one."""
    values = np.asarray(values, float)
    ok = values[np.isfinite(values)]
    return {**(mean_std(ok) if ok.size else {"mean": None, "std": None}), "count": int(ok.size)}


def run(quick: bool) -> dict:
    paths = sibling("optimizer_paths")
    A = paths.A
    lam_max = float(paths.EIGENVALUES.max())
    steep = np.asarray(paths.ROTATION[:, int(paths.EIGENVALUES.argmax())])
    n_starts = 16 if quick else 64
    angles = np.linspace(0, 2 * np.pi, n_starts, endpoint=False)
    starts = jnp.asarray(5.0 * np.stack([np.cos(angles), np.sin(angles)], 1), jnp.float32)

    t0 = time.perf_counter()
    betas_path = [0.0, 0.3, 0.5, 0.7, 0.9]
    smooth, examples = {}, {}
    for beta in betas_path:
        thetas, losses = heavy_ball_paths(A, starts, beta, EFFECTIVE_RATE, STEPS)
        smooth[f"{beta:g}"] = {k: summary(v) for k, v in smoothness(thetas, losses, steep).items()}
        examples[f"{beta:g}"] = {
            "theta": thetas[n_starts // 8].tolist(),
            "loss": losses[n_starts // 8].tolist(),
        }

    betas = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]
    if quick:
        betas = [0.0, 0.5, 0.9, 0.99]
    rates = np.geomspace(1e-3, 1.0, 81 if quick else 481)
    stable = []
    for beta in betas:
        _, ok = paths.stable_rates(beta if beta > 0 else None, rates)
        stable.append(
            {
                "beta": beta,
                "measured_max_rate": float(rates[ok].max()),
                "theory_max_rate": 2 * (1 + beta) / lam_max,
            }
        )
    seconds = time.perf_counter() - t0
    return {
        "config": {
            "quick": quick,
            "eigenvalues": paths.EIGENVALUES.tolist(),
            "effective_rate": EFFECTIVE_RATE,
            "steps": STEPS,
            "starts": n_starts,
            "start_radius": 5.0,
            "stable_rate_steps": 200,
            "rate_grid": [float(rates[0]), float(rates[-1]), int(len(rates))],
        },
        "smoothness": smooth,
        "stable_rates": stable,
        "widening_at_0.9": next(s["measured_max_rate"] for s in stable if s["beta"] == 0.9)
        / stable[0]["measured_max_rate"],
        "seconds": seconds,
        "_plot": {"examples": examples, "A": np.asarray(A)},
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(21, 4.8))
    A = result["_plot"]["A"]
    a, b = np.meshgrid(np.linspace(-6, 6, 150), np.linspace(-6, 6, 150))
    grid = 0.5 * (A[0, 0] * a**2 + 2 * A[0, 1] * a * b + A[1, 1] * b**2)
    colors = dict(
        zip(result["smoothness"], plt.cm.viridis(np.linspace(0, 0.9, len(result["smoothness"]))), strict=True)
    )
    ax = axes[0]
    ax.contour(a, b, grid, levels=np.geomspace(0.05, grid.max(), 15), cmap="Greys_r", linewidths=0.6)
    for beta in ("0", "0.5", "0.9"):
        p = np.asarray(result["_plot"]["examples"][beta]["theta"])
        ax.plot(p[:40, 0], p[:40, 1], "-o", ms=2, lw=1, color=colors[beta], label=f"β = {beta}")
    ax.set(
        xlabel="θ₀",
        ylabel="θ₁",
        title=f"paths (first 40 steps), η/(1−β) = {EFFECTIVE_RATE}",
        aspect="equal",
        xlim=(-1.5, 5),
        ylim=(-1.5, 4.2),
    )
    ax.legend(fontsize=8)

    ax = axes[1]
    for beta in ("0", "0.5", "0.9"):
        ax.plot(result["_plot"]["examples"][beta]["loss"], color=colors[beta], label=f"β = {beta}")
    ax.set(yscale="log", xlabel="step", ylabel="loss ½θᵀAθ", title="loss curves of the same paths")
    ax.legend(fontsize=8)

    ax = axes[2]
    betas = [float(k) for k in result["smoothness"]]
    for key, label, color in (
        ("zigzags", "zigzags (sign changes along the steep axis)", "tab:red"),
        ("tortuosity", "tortuosity ×10 (path length / displacement)", "tab:blue"),
        ("loss_total_variation", "loss total variation ×10 (1 = monotone)", "tab:green"),
    ):
        scale = 1 if key == "zigzags" else 10
        m = np.array([v[key]["mean"] for v in result["smoothness"].values()]) * scale
        s = np.array([v[key]["std"] for v in result["smoothness"].values()]) * scale
        ax.errorbar(betas, m, yerr=s, marker="o", capsize=3, color=color, label=label)
    ax.set(
        xlabel="momentum β (η = 0.07·(1 − β))",
        ylabel="count / scaled ratio",
        title=f"smoothness over {result['config']['starts']} starts (mean ± std)",
    )
    ax.legend(fontsize=7)

    ax = axes[3]
    st = result["stable_rates"]
    bs = [s["beta"] for s in st]
    ax.plot(bs, [s["measured_max_rate"] for s in st], "o-", label="largest stable η (measured)")
    ax.plot(bs, [s["theory_max_rate"] for s in st], "k--", label="theory 2(1+β)/λ_max")
    ax.set(xlabel="momentum β", ylabel="largest stable learning rate η", title="range of stable step sizes")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(result: dict) -> None:
    print(
        f"same effective rate η/(1−β) = {EFFECTIVE_RATE}, {result['config']['starts']} starts (mean ± std):"
    )
    print("   β   zigzags      tortuosity   loss TV ratio  steps to 1e-6")
    for beta, v in result["smoothness"].items():
        print(
            f"  {beta:>4}  {pm(v['zigzags'], '5.1f')}  {pm(v['tortuosity'], '5.2f')}  {pm(v['loss_total_variation'], '6.2f')}"
            f"  {v['steps_to_1e-6']['mean'] or float('nan'):6.1f} ({v['steps_to_1e-6']['count']}/{result['config']['starts']} reached)"
        )
    print(
        "largest stable η:  "
        + ", ".join(
            f"β={s['beta']:g}: {s['measured_max_rate']:.4f} (theory {s['theory_max_rate']:.4f})"
            for s in result["stable_rates"]
        )
    )
    print(f"computed in {result['seconds']:.1f} s")


if __name__ == "__main__":
    main(run, plot, report)
