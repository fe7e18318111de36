"""Second order: Newton and L-BFGS against Adam on small logistic regressions, steps and time.

The notes: Newton's method θ ← θ − γ·H⁻¹∇L steps to the minimum of the local quadratic model;
"it is usually prohibitively expensive to compute the Hessian (p × p) and its inverse, so most
modern methods (e.g. L-BFGS) use approximations". Two L2-regularised logistic regressions
(mean logistic loss + 0.01·‖w‖², float64):

* ``synthetic``: ``optimizer_paths.logistic_problem`` (200 × 4, imported, not copied);
* ``breast_cancer``: ``fl.data.load("breast_cancer")`` standardised (569 × 30, p = 31).

``fl.optim.minimize`` runs ``fl.optim.newton``, ``fl.optim.lbfgs`` and ``fl.optim.adam`` until
‖∇L‖ ≤ 1e-6 (Adam: the best of the rates 0.01, 0.03, 0.1, 0.3, found by one minimize vmapped over
the rate). Reports steps, wall time of the compiled solve (best of 7, compile time apart), the
distance of each solution to scipy's L-BFGS-B optimum, and ‖∇L‖ against the step for the figure.

Writes ``second_order.png`` and ``second_order.json`` to ``--out`` (default out/second_order).
Run: ``python experiments/second_order.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _common import descend, main, sibling
from jax.flatten_util import ravel_pytree

import fnlearn as fl
import fnlearn.optim as fo

TOL = 1e-6
ADAM_RATES = (0.01, 0.03, 0.1, 0.3)


def breast_cancer_problem():
    """L(w, b) = mean_i [softplus(z_i) − y_i·z_i] + 0.01·‖w‖², z = x·w + b, standardised features."""
    parts, _ = fl.data.standardize(fl.data.split(fl.data.load("breast_cancer"), val=0.0, test=0.0, seed=0))
    x = jnp.asarray(parts.train.x, jnp.float64)
    y = jnp.asarray(parts.train.y, jnp.float64)

    def loss(p):
        logits = x @ p["w"] + p["b"]
        return jnp.mean(jnp.logaddexp(0.0, logits) - y * logits) + 0.01 * jnp.sum(p["w"] ** 2)

    return loss, {"w": jnp.zeros(x.shape[1], jnp.float64), "b": jnp.zeros((), jnp.float64)}


def timed_minimize(loss, params0, optimizer, max_steps, repeats):
    """(result, best run time in s over ``repeats`` calls, compile time in s).

    ``fl.optim.minimize`` jits its loop afresh on each call, so it is wrapped in one outer
    ``jax.jit``: the first call compiles (timed on its own), the repeats only run.
    """
    solver = jax.jit(lambda p: fo.minimize(loss, p, optimizer, tol=TOL, max_steps=max_steps))
    t = time.perf_counter()
    jax.block_until_ready(solver(params0))
    compile_s = time.perf_counter() - t
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        result = jax.block_until_ready(solver(params0))
        runs.append(time.perf_counter() - t)
    return result, min(runs), compile_s


def grad_norm_curve(loss, params0, optimizer, steps: int):
    """‖∇L(θ_t)‖ for t = 0..steps (a scan of the same update minimize makes), for the figure."""
    grad = jax.grad(loss)

    record = lambda s: jnp.linalg.norm(ravel_pytree(grad(s.next_params))[0])  # noqa: E731
    _, norms = jax.jit(lambda p: descend(loss, optimizer, p, steps, gradient=grad, record=record))(params0)
    return [float(jnp.linalg.norm(ravel_pytree(grad(params0))[0]))] + np.asarray(norms).tolist()


def scipy_optimum(loss, params0):
    import scipy.optimize

    flat0, unravel = ravel_pytree(params0)
    f = jax.jit(jax.value_and_grad(lambda v: loss(unravel(v))))
    res = scipy.optimize.minimize(
        lambda v: tuple(np.asarray(a) for a in f(v)),
        np.asarray(flat0),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 10000},
    )
    return res.x


def solve(name, loss, params0, quick: bool) -> dict:
    repeats = 2 if quick else 7
    max_steps = 5000 if quick else 20000
    optimum = scipy_optimum(loss, params0)
    row = {"problem": name, "parameters": int(ravel_pytree(params0)[0].size)}
    # every Adam rate at once: minimize vmapped over the learning rate
    sweep = jax.jit(jax.vmap(lambda r: fo.minimize(loss, params0, fo.adam(r), tol=TOL, max_steps=max_steps)))
    res = sweep(jnp.asarray(ADAM_RATES, jnp.float64))
    adam_steps = {
        rate: int(n) if float(g) <= TOL else None
        for rate, n, g in zip(ADAM_RATES, res.steps, res.grad_norm, strict=True)
    }
    finished = {r: s for r, s in adam_steps.items() if s is not None}
    best_rate = min(finished, key=finished.get) if finished else max(ADAM_RATES)
    row["adam_steps_per_rate"] = {str(k): v for k, v in adam_steps.items()}
    row["adam_best_rate"] = best_rate
    methods = {"newton": fo.newton(loss), "lbfgs": fo.lbfgs(loss), "adam": fo.adam(best_rate)}
    curves = {}
    for method, optimizer in methods.items():
        result, run_s, compile_s = timed_minimize(loss, params0, optimizer, max_steps, repeats)
        found = np.asarray(ravel_pytree(result.params)[0])
        row[method] = {
            "steps": int(result.steps),
            "converged": bool(float(result.grad_norm) <= TOL),
            "run_seconds": run_s,
            "compile_seconds": compile_s,
            "seconds_per_step": run_s / max(int(result.steps), 1),
            "distance_to_scipy": float(np.max(np.abs(found - optimum))),
            "final_loss": float(result.loss),
        }
        curves[method] = grad_norm_curve(loss, params0, optimizer, min(int(result.steps) + 2, 3000))
    row["_curves"] = curves
    return row


def run(quick: bool) -> dict:
    t0 = time.perf_counter()
    with jax.enable_x64(True):
        synthetic_loss, synthetic_params = sibling("optimizer_paths").logistic_problem()
        rows = [solve("synthetic 200×4", synthetic_loss, synthetic_params, quick)]
        if not quick:
            rows.append(solve("breast_cancer 569×30", *breast_cancer_problem(), quick))
    return {
        "config": {
            "quick": quick,
            "tol": TOL,
            "dtype": "float64",
            "adam_rates": ADAM_RATES,
            "timing": "best of 7 (2 in --quick) calls of the jitted solve; compile time reported apart",
        },
        "problems": rows,
        "seconds": time.perf_counter() - t0,
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["problems"]
    fig, axes = plt.subplots(1, len(rows) + 1, figsize=(6 * (len(rows) + 1), 4.8))
    colors = {"newton": "tab:green", "lbfgs": "tab:purple", "adam": "tab:orange"}
    for ax, row in zip(axes, rows, strict=False):
        for method, curve in row["_curves"].items():
            rate = f" (lr {row['adam_best_rate']})" if method == "adam" else ""
            label = f"{method}{rate}: {row[method]['steps']} steps"
            ax.semilogy(np.maximum(curve, 1e-17), color=colors[method], label=label)
        ax.axhline(result["config"]["tol"], color="k", ls=":", lw=1, label="tolerance")
        ax.set_xscale("symlog", linthresh=1)
        ax.set(
            xlim=(0, None),
            xlabel="step (linear to 1, then log)",
            ylabel="‖∇L‖",
            title=f"{row['problem']} (p = {row['parameters']})",
        )
        ax.legend(fontsize=8)
    ax = axes[-1]
    x = np.arange(len(rows))
    for k, method in enumerate(colors):
        seconds = [max(r[method]["run_seconds"], 1e-6) * 1e3 for r in rows]
        ax.bar(x + (k - 1) * 0.27, seconds, width=0.27, color=colors[method], label=method)
    ax.set_xticks(x, [r["problem"] for r in rows])
    ax.set(yscale="log", ylabel="wall time to ‖∇L‖ ≤ 1e-6 (ms, compile excluded)", title="time to tolerance")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(result: dict) -> None:
    print(f"steps and time to ‖∇L‖ ≤ {TOL:g} (float64, compile excluded):")
    for row in result["problems"]:
        cells = []
        for method in ("newton", "lbfgs", "adam"):
            r = row[method]
            cells.append(
                f"{method} {r['steps']:5d} steps {r['run_seconds'] * 1e3:8.2f} ms{'' if r['converged'] else ' (not converged)'}"
            )
        print(f"  {row['problem']:22s} " + " | ".join(cells) + f"  (adam lr {row['adam_best_rate']})")
    print(f"computed in {result['seconds']:.1f} s")


if __name__ == "__main__":
    main(run, plot, report)
