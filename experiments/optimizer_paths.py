"""Where each optimizer goes: the notes' Gabor model and an ill-conditioned quadratic.

1. Paths of GD, SGD (mini-batches of 5), heavy-ball momentum (v ← βv + ηg), the notes' damped
   momentum (m ← βm + (1 − β)g), Nesterov, Adagrad, RMSprop and Adam on the loss surface of the
   Gabor model f(x, φ) = sin(φ₀ + 0.06·φ₁x)·exp(−(φ₀ + 0.06·φ₁x)²/8), L(φ) = Σ_i (f(x_i, φ) − y_i)²,
   and on L(θ) = ½·θᵀAθ with A's eigenvalues 1 and 25 (rotated): contours with the paths, and the
   loss against the step.
2. The range of stable learning rates on the quadratic, with and without momentum: the largest η
   whose loss still falls after 200 steps, against the theory η < 2/λ_max (GD) and
   η < 2(1 + β)/λ_max (heavy ball).
3. Second order: steps of Newton, L-BFGS and Adam to ‖∇L‖ ≤ 1e-6 on Rosenbrock and a logistic
   regression (float64), next to scipy's BFGS iterations.

Writes ``optimizer_paths.png`` and ``optimizer_paths.json`` to ``--out`` (default
out/optimizer_paths). Run: ``python experiments/optimizer_paths.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from _common import descend, main

import fnlearn.optim as fo

# ------------------------------------------------------------------------------ the two surfaces

PHI_TRUE = jnp.array([0.4, 15.0])


def gabor(x, phi):
    """f(x, φ) = sin(φ₀ + 0.06·φ₁·x)·exp(−(φ₀ + 0.06·φ₁·x)²/8)."""
    z = phi[0] + 0.06 * phi[1] * x
    return jnp.sin(z) * jnp.exp(-(z**2) / 8.0)


def gabor_data(n=28, seed=0):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-15, 15, n))
    y = np.asarray(gabor(jnp.asarray(x), PHI_TRUE)) + 0.1 * rng.standard_normal(n)
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)


def gabor_loss(phi, x, y):
    """L(φ) = Σ_i (f(x_i, φ) − y_i)²."""
    return jnp.sum((gabor(x, phi) - y) ** 2)


ANGLE = np.pi / 6
ROTATION = np.array([[np.cos(ANGLE), -np.sin(ANGLE)], [np.sin(ANGLE), np.cos(ANGLE)]])
EIGENVALUES = np.array([1.0, 25.0])
A = jnp.asarray(ROTATION @ np.diag(EIGENVALUES) @ ROTATION.T, jnp.float32)


def quadratic_loss(theta):
    """L(θ) = ½·θᵀAθ, eigenvalues 1 and 25 (condition number 25)."""
    return 0.5 * theta @ A @ theta


# ------------------------------------------------------------------------------ the optimizers


def gabor_optimizers():
    """name -> (optimizer, mini-batch size or None for full batch). Rates tuned by hand for the surface.

    The damped form with rate η/(1 − β) is given the heavy ball's η, so the two paths coincide:
    the figure shows the equivalence the docs state.
    """
    return {
        "GD": (fo.sgd(0.02), None),
        "SGD (batch 5)": (fo.sgd(0.02), 5),
        "momentum v←βv+ηg": (fo.sgd(0.01, momentum=0.9), None),
        "damped m←βm+(1−β)g": (fo.ema_momentum(0.1, beta=0.9), None),
        "Nesterov": (fo.sgd(0.01, momentum=0.9, nesterov=True), None),
        "Adagrad": (fo.adagrad(0.5), None),
        "RMSprop": (fo.rmsprop(0.05), None),
        "Adam": (fo.adam(0.1), None),
    }


def quadratic_optimizers():
    return {
        "GD": fo.sgd(0.07),
        "momentum v←βv+ηg": fo.sgd(0.03, momentum=0.7),
        "damped m←βm+(1−β)g": fo.ema_momentum(0.1, beta=0.7),
        "Nesterov": fo.sgd(0.03, momentum=0.7, nesterov=True),
        "Adagrad": fo.adagrad(0.8),
        "RMSprop": fo.rmsprop(0.05),
        "Adam": fo.adam(0.2),
    }


def run_path(optimizer, loss_fn, theta0, steps, batch_size=None, data=None, key=None):
    """θ_0 … θ_steps and the full loss along the way, in one jitted scan.

    With ``batch_size`` the gradient is the loss's on a fresh mini-batch each step (SGD); the
    Gabor loss takes data (x, y) as its last two arguments.
    """

    def full_loss(theta):
        return loss_fn(theta, *data) if data is not None else loss_fn(theta)

    def gradient(theta, k):
        if batch_size is None:
            return jax.grad(full_loss)(theta)
        idx = jax.random.choice(k, data[0].shape[0], (batch_size,), replace=False)
        return jax.grad(loss_fn)(theta, data[0][idx], data[1][idx]) * (data[0].shape[0] / batch_size)

    @jax.jit
    def path():
        keys = jax.random.split(key if key is not None else jax.random.PRNGKey(0), steps)
        record = lambda s: (s.next_params, full_loss(s.next_params))  # noqa: E731
        objective = lambda theta, k: full_loss(theta)  # noqa: E731
        _, (thetas, losses) = descend(
            objective, optimizer, theta0, keys=keys, gradient=gradient, record=record
        )
        return jnp.vstack([theta0[None], thetas]), jnp.concatenate([full_loss(theta0)[None], losses])

    thetas, losses = path()
    return np.asarray(thetas), np.asarray(losses)


# ------------------------------------------------------------------------------ stable learning rates


def stable_rates(momentum, rates, steps=200):
    """For each η: does L fall below its start after ``steps`` steps of sgd(η, momentum)? (vmapped)."""
    theta0 = jnp.array([1.0, 1.0])

    def final_loss(rate):
        optimizer = fo.sgd(rate, momentum=momentum)
        gradient = lambda theta: A @ theta  # noqa: E731
        theta, _ = descend(quadratic_loss, optimizer, theta0, steps, gradient=gradient, record=lambda s: None)
        return quadratic_loss(theta)

    losses = np.asarray(jax.jit(jax.vmap(final_loss))(jnp.asarray(rates, jnp.float32)))
    stable = np.isfinite(losses) & (losses < float(quadratic_loss(theta0)))
    return losses, stable


# ------------------------------------------------------------------------------ second order


def rosenbrock(p):
    return (1 - p["x"]) ** 2 + 100 * (p["y"] - p["x"] ** 2) ** 2


def logistic_problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 4))
    y = (X @ np.array([1.5, -2.0, 0.5, 0.0]) + 0.3 + rng.standard_normal(200) > 0).astype(float)

    def loss(p):
        logits = jnp.asarray(X) @ p["w"] + p["b"]
        return jnp.mean(jnp.logaddexp(0.0, logits) - jnp.asarray(y) * logits) + 0.01 * jnp.sum(p["w"] ** 2)

    return loss, {"w": jnp.zeros(4, jnp.float64), "b": jnp.zeros((), jnp.float64)}


def second_order_table(tol, max_steps):
    """Steps to ‖∇L‖ ≤ tol for Newton, L-BFGS and Adam, and scipy's BFGS iteration count."""
    import scipy.optimize
    from jax.flatten_util import ravel_pytree

    rows = []
    with jax.enable_x64(True):
        problems = {
            "rosenbrock": (
                rosenbrock,
                {"x": jnp.asarray(-1.2, jnp.float64), "y": jnp.asarray(1.0, jnp.float64)},
                0.01,
            ),
            "logistic": (*logistic_problem(), 0.05),
        }
        for name, (loss, params0, adam_rate) in problems.items():
            flat0, unravel = ravel_pytree(params0)
            f = jax.jit(lambda v, loss=loss, unravel=unravel: loss(unravel(v)))
            g = jax.jit(jax.grad(lambda v, loss=loss, unravel=unravel: loss(unravel(v))))
            ref = scipy.optimize.minimize(
                lambda v, f=f: float(f(v)),
                np.asarray(flat0),
                jac=lambda v, g=g: np.asarray(g(v)),
                method="BFGS",
                options={"gtol": tol},
            )
            row = {
                "problem": name,
                "scipy_bfgs_iterations": int(ref.nit),
                "scipy_optimum": ref.x.tolist(),
            }
            for method, optimizer in {
                "newton": fo.newton(loss),
                "lbfgs": fo.lbfgs(loss),
                "adam": fo.adam(adam_rate),
            }.items():
                result = fo.minimize(loss, params0, optimizer, tol=tol, max_steps=max_steps)
                found, _ = ravel_pytree(result.params)
                row[f"{method}_steps"] = int(result.steps)
                row[f"{method}_converged"] = bool(result.grad_norm <= tol)
                row[f"{method}_distance_to_scipy"] = float(np.max(np.abs(np.asarray(found) - ref.x)))
            rows.append(row)
    return rows


# ------------------------------------------------------------------------------ figure


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(17, 10))
    colors = dict(zip(results["gabor"]["paths"], plt.cm.tab10.colors, strict=False))

    for row, surface in enumerate(("gabor", "quadratic")):
        data = results[surface]
        ax = axes[row, 0]
        grid = data["grid"]
        values = np.asarray(grid["loss"])
        levels = np.geomspace(values.min() + 1e-3, values.max(), 25)
        ax.contour(grid["a"], grid["b"], values, levels=levels, cmap="Greys_r", linewidths=0.6)
        for name, run in data["paths"].items():
            p = np.asarray(run["theta"])
            ax.plot(p[:, 0], p[:, 1], "-", lw=1.2, color=colors[name], label=name, alpha=0.9)
            ax.plot(p[-1, 0], p[-1, 1], "o", ms=4, color=colors[name])
        ax.plot(*data["start"], "k*", ms=12, label="start")
        ax.set_xlabel(data["axes"][0])
        ax.set_ylabel(data["axes"][1])
        ax.set_title(data["title"])
        ax.legend(fontsize=7, loc="upper left" if surface == "gabor" else "lower right")
        ax = axes[row, 1]
        for name, run in data["paths"].items():
            ax.plot(run["loss"], color=colors[name], label=name, lw=1.2)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(f"{data['title']}: loss against step")
        ax.legend(fontsize=7)

    ax = axes[0, 2]
    sweep = results["stable_rates"]
    for label, key, color in (
        ("no momentum", "beta_0", "tab:blue"),
        ("heavy ball β = 0.9", "beta_0.9", "tab:red"),
    ):
        losses = np.asarray(sweep[key]["final_loss"], float)
        ax.plot(
            sweep["rates"],
            np.clip(np.nan_to_num(losses, nan=1e6, posinf=1e6), 1e-14, 1e6),
            "-",
            color=color,
            label=label,
        )
        ax.axvline(sweep[key]["theory_max_rate"], color=color, ls="--", lw=1)
        ax.axvline(sweep[key]["measured_max_rate"], color=color, ls=":", lw=2)
    ax.axhline(sweep["initial_loss"], color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate η")
    ax.set_ylabel("loss after 200 steps (clipped at 1e6)")
    ax.set_title(
        "stable learning rates on the quadratic\n(dashed: theory 2(1+β)/λmax, dotted: largest stable η found)"
    )
    ax.legend(fontsize=8)

    ax = axes[1, 2]
    table = results["second_order"]
    methods = ["newton", "lbfgs", "adam"]
    x = np.arange(len(table))
    for i, method in enumerate(methods):
        steps = [r[f"{method}_steps"] for r in table]
        ax.bar(x + (i - 1.5) * 0.2, steps, width=0.2, label=method)
    ax.bar(
        x + 1.5 * 0.2,
        [r["scipy_bfgs_iterations"] for r in table],
        width=0.2,
        label="scipy BFGS",
        color="grey",
    )
    ax.set_xticks(x, [r["problem"] for r in table])
    ax.set_yscale("log")
    ax.set_ylabel(f"steps to ‖∇L‖ ≤ {results['second_order_tol']:g}")
    ax.set_title("second order vs Adam (float64)")
    ax.legend(fontsize=8)

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------ main


def surface_grid(loss, a_range, b_range, n):
    a, b = np.meshgrid(np.linspace(*a_range, n), np.linspace(*b_range, n))
    points = jnp.asarray(np.stack([a.ravel(), b.ravel()], 1), jnp.float32)
    values = np.asarray(jax.jit(jax.vmap(loss))(points)).reshape(a.shape)
    return {"a": a.tolist(), "b": b.tolist(), "loss": values.tolist()}


def run(quick: bool) -> dict:
    start = time.perf_counter()
    steps = 150 if quick else 400
    grid_n = 60 if quick else 120

    x, y = gabor_data()
    gabor_start = jnp.array([-1.5, 6.0])
    gabor_paths = {}
    for name, (optimizer, batch) in gabor_optimizers().items():
        thetas, losses = run_path(
            optimizer, gabor_loss, gabor_start, steps, batch, (x, y), jax.random.PRNGKey(1)
        )
        gabor_paths[name] = {"theta": thetas.tolist(), "loss": losses.tolist()}

    quad_start = jnp.array([-4.0, 2.5])
    quad_paths = {}
    for name, optimizer in quadratic_optimizers().items():
        thetas, losses = run_path(optimizer, quadratic_loss, quad_start, steps // 2)
        quad_paths[name] = {"theta": thetas.tolist(), "loss": losses.tolist()}

    rates = np.geomspace(1e-3, 1.0, 61 if quick else 241)
    sweep = {"rates": rates.tolist(), "initial_loss": float(quadratic_loss(jnp.array([1.0, 1.0])))}
    for beta in (0.0, 0.9):
        losses, stable = stable_rates(beta if beta > 0 else None, rates)
        sweep[f"beta_{beta:g}"] = {
            "final_loss": [float(v) if np.isfinite(v) else None for v in losses],
            "measured_max_rate": float(rates[stable].max()),
            "theory_max_rate": 2 * (1 + beta) / EIGENVALUES.max(),
        }

    tol = 1e-6
    results = {
        "gabor": {
            "title": "Gabor model",
            "axes": ["φ₀ (offset)", "φ₁ (frequency)"],
            "start": gabor_start.tolist(),
            "true_phi": PHI_TRUE.tolist(),
            "grid": surface_grid(lambda p: gabor_loss(p, x, y), (-2.5, 2.5), (2.5, 22.5), grid_n),
            "paths": gabor_paths,
        },
        "quadratic": {
            "title": "quadratic, eigenvalues 1 and 25",
            "axes": ["θ₀", "θ₁"],
            "start": quad_start.tolist(),
            "grid": surface_grid(quadratic_loss, (-5, 5), (-4, 4), grid_n),
            "paths": quad_paths,
        },
        "stable_rates": sweep,
        "second_order_tol": tol,
        "second_order": second_order_table(tol, 20000),
        "seconds": time.perf_counter() - start,
    }
    return results


def report(results: dict) -> None:
    gabor_paths, quad_paths, sweep = (
        results["gabor"]["paths"],
        results["quadratic"]["paths"],
        results["stable_rates"],
    )
    tol = results["second_order_tol"]
    print("final loss (Gabor, quadratic):")
    for name in gabor_paths:
        quad = f"{quad_paths[name]['loss'][-1]:10.2e}" if name in quad_paths else "         —"
        print(f"  {name:22s} {gabor_paths[name]['loss'][-1]:10.4f}  {quad}")
    for beta in ("0", "0.9"):
        s = sweep[f"beta_{beta}"]
        print(
            f"largest stable η, β = {beta}: measured {s['measured_max_rate']:.4f}, theory {s['theory_max_rate']:.4f}"
        )
    print(f"steps to ‖∇L‖ ≤ {tol:g}:")
    for r in results["second_order"]:
        print(
            f"  {r['problem']:10s} newton {r['newton_steps']:5d}  lbfgs {r['lbfgs_steps']:5d}  "
            f"adam {r['adam_steps']:5d}{'' if r['adam_converged'] else ' (not converged)'}  scipy BFGS {r['scipy_bfgs_iterations']:4d}"
        )


if __name__ == "__main__":
    main(run, plot, report)
