"""Learning-rate schedules, and whether a linear warmup lets a deep MLP train at a higher rate.

1. The notes' schedules from ``fl.optim.schedules`` over T = 1000 steps, α₀ = 0.1: step decay
   (×0.1 at 30%, 60%, 90% of T: ``piecewise_constant_schedule``), cosine α₀·½(1 + cos(πt/T))
   (``cosine_decay_schedule``), linear α₀(1 − t/T) (``linear_schedule``), inverse square root
   α₀/√(1 + t) (``inverse_sqrt_schedule``) and a linear warmup over 100 steps in front of the cosine
   (``linear_warmup``).
2. "High initial learning rates can make loss explode; linearly increasing the learning rate from 0
   over the first iterations can prevent this." A deep-ish ReLU MLP (64-[64]×8-10, He init) on
   digits, plain SGD and Adam with batch 32, a grid of 7 learning rates × 3 seeds for each, trained as vmapped replicas
   (``fl.replicas`` + ``fl.optim.inject_hyperparams`` over the peak rate), once with a constant
   rate and once with the same rate reached by a linear warmup over the first 2 epochs.
   A run is *stable* when it never turned non-finite (``diverged`` in the replica records) and its
   last-epoch training loss is below ln 10 (better than guessing). Reports the highest rate at
   which all seeds are stable, with and without warmup, and the last-epoch loss and accuracy per
   rate (mean ± std over seeds).

Writes ``schedules_warmup.png`` and ``schedules_warmup.json`` to ``--out`` (default
out/schedules_warmup). Run: ``python experiments/schedules_warmup.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from _common import main, mean_std, pm

import fnlearn as fl
from fnlearn.optim import schedules

T, ALPHA0 = 1000, 0.1


def schedule_curves() -> dict:
    """name -> α_t for t = 0..T−1, each from fl.optim.schedules."""
    table = {
        "step (×0.1 at 30/60/90%)": schedules.piecewise_constant_schedule(
            ALPHA0, {300: 0.1, 600: 0.1, 900: 0.1}
        ),
        "cosine": schedules.cosine_decay_schedule(ALPHA0, decay_steps=T),
        "linear": schedules.linear_schedule(ALPHA0, 0.0, T),
        "inverse sqrt": schedules.inverse_sqrt_schedule(ALPHA0),
        "warmup 100 + cosine": schedules.linear_warmup(
            schedules.cosine_decay_schedule(ALPHA0, decay_steps=T - 100), 100
        ),
    }
    t = np.arange(T)
    return {name: [float(f(int(k))) for k in t] for name, f in table.items()}


def with_warmup(optimizer: str, warmup_steps: int):
    """A factory learning_rate -> optimizer(linear_warmup(constant(learning_rate), warmup_steps)),
    for inject_hyperparams (the peak rate is the per-replica hyperparameter)."""

    def factory(learning_rate):
        return fl.optim.get(
            optimizer,
            learning_rate=schedules.linear_warmup(schedules.constant_schedule(learning_rate), warmup_steps),
        )

    return factory


def train_grid(parts, optimizer, rates, seeds, warmup_steps: int, epochs: int, depth: int):
    """Train len(rates)·len(seeds) replicas in one program; the last epoch's record of each."""
    model = fl.nn.mlp([64] + [64] * depth + [10])
    tx = fl.optim.inject_hyperparams(with_warmup(optimizer, warmup_steps))(learning_rate=float(rates[0]))
    grid_rates = [float(r) for r in rates for _ in seeds]
    grid_seeds = [s for _ in rates for s in seeds]
    states, info = fl.replicas.create(model, tx, seeds=grid_seeds, hyperparams={"learning_rate": grid_rates})
    _, history = fl.replicas.fit(
        states,
        (parts.train.x, parts.train.y),
        loss=fl.distributions.get("categorical"),
        epochs=epochs,
        batch_size=32,
        info=info,
        progress=False,
        driver="scan",  # dense layers: the scan is the faster driver (docs/speed.md), no probe
    )
    last = {}
    for record in history:  # a frozen (diverged) replica keeps its last record
        last[record["replica"]] = record
    return [last[i] for i in range(len(grid_rates))]


def summarise(records, rates, seeds) -> dict:
    """Per rate: stable seeds, last-epoch loss/accuracy mean ± std over the seeds that stayed finite."""
    rows = []
    for k, rate in enumerate(rates):
        group = records[k * len(seeds) : (k + 1) * len(seeds)]
        stable = [
            not r["diverged"] and r["train_loss"] is not None and r["train_loss"] < math.log(10)
            for r in group
        ]
        finite = [r for r in group if not r["diverged"] and r["train_loss"] is not None]
        loss = np.array([r["train_loss"] for r in finite])
        acc = np.array([r["train_accuracy"] for r in finite])
        rows.append(
            {
                "learning_rate": float(rate),
                "stable_seeds": int(sum(stable)),
                "diverged_seeds": int(sum(r["diverged"] for r in group)),
                "last_epoch_loss": mean_std(loss) if len(finite) else None,
                "last_epoch_accuracy": mean_std(acc) if len(finite) else None,
            }
        )
    all_stable = [r["learning_rate"] for r in rows if r["stable_seeds"] == len(seeds)]
    any_stable = [r["learning_rate"] for r in rows if r["stable_seeds"] > 0]
    return {
        "rows": rows,
        "highest_rate_all_seeds_stable": max(all_stable) if all_stable else None,
        "highest_rate_any_seed_stable": max(any_stable) if any_stable else None,
    }


def run(quick: bool) -> dict:
    t0 = time.perf_counter()
    digits = fl.data.load("digits")
    parts, _ = fl.data.standardize(fl.data.split(digits, val=0.0, test=0.2, seed=0))
    steps_per_epoch = math.ceil(len(parts.train) / 32)
    grids = {"sgd": np.geomspace(0.1, 1.0, 2 if quick else 7)}
    if not quick:
        grids["adam"] = np.geomspace(0.001, 0.1, 7)
    seeds = [0] if quick else [0, 1, 2]
    epochs = 1 if quick else 6
    depth = 4 if quick else 8
    warmup = 2 * steps_per_epoch if not quick else steps_per_epoch // 2
    result = {}
    for optimizer, rates in grids.items():
        result[optimizer] = {}
        for name, w in (("constant", 0), ("warmup", warmup)):
            records = train_grid(parts, optimizer, rates, seeds, w, epochs, depth)
            result[optimizer][name] = summarise(records, rates, seeds)
    return {
        "config": {
            "quick": quick,
            "model": f"mlp 64-[64]x{depth}-10 relu (He)",
            "optimizers": list(grids),
            "batch_size": 32,
            "epochs": epochs,
            "warmup_steps": warmup,
            "steps_per_epoch": steps_per_epoch,
            "seeds": seeds,
            "rates": {k: v.tolist() for k, v in grids.items()},
            "stable": "no non-finite step and last-epoch train loss < ln 10",
        },
        "curves": schedule_curves(),
        "warmup_experiment": result,
        "seconds": time.perf_counter() - t0,
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    ax = axes[0]
    for name, curve in result["curves"].items():
        ax.plot(curve, label=name, lw=1.6)
    ax.set(xlabel="step t", ylabel="learning rate α_t", title=f"fl.optim.schedules (α₀ = {ALPHA0}, T = {T})")
    ax.legend(fontsize=8)
    exp = result["warmup_experiment"]
    cfg = result["config"]
    for ax, optimizer in zip(axes[1:], list(exp) + [None], strict=False):
        if optimizer is None:
            ax.axis("off")
            continue
        for name, color, offset in (("constant", "tab:red", 0.985), ("warmup", "tab:blue", 1.015)):
            rows = exp[optimizer][name]["rows"]
            r = np.array([row["learning_rate"] for row in rows]) * offset
            m = np.array(
                [row["last_epoch_loss"]["mean"] if row["last_epoch_loss"] else np.nan for row in rows]
            )
            s = np.array(
                [
                    np.nan
                    if (row["last_epoch_loss"] or {}).get("std") is None
                    else row["last_epoch_loss"]["std"]
                    for row in rows
                ]
            )
            best = exp[optimizer][name]["highest_rate_all_seeds_stable"]
            ax.errorbar(
                r,
                m,
                yerr=s,
                marker="o",
                capsize=3,
                color=color,
                label=f"{name} (highest η, all seeds stable: {best if best is None else round(best, 4)})",
            )
            for x, row in zip(r, rows, strict=True):
                if row["diverged_seeds"]:
                    ax.annotate(
                        f"{row['diverged_seeds']}✗",
                        (x, 2.6 if name == "constant" else 2.8),
                        color=color,
                        fontsize=9,
                        ha="center",
                    )
        ax.axhline(math.log(10), color="k", lw=0.8, ls=":", label="ln 10 (chance)")
        ax.set(
            xscale="log",
            xlabel="peak learning rate η",
            ylabel="last-epoch training loss (mean ± std)",
            ylim=(0, 3.0),
            title=f"{optimizer}: {cfg['model']}, {cfg['epochs']} epochs, {len(cfg['seeds'])} seeds\n"
            f"warmup {cfg['warmup_steps']} steps (n✗: seeds diverged to NaN/Inf)",
        )
        ax.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(result: dict) -> None:
    for name, r in (
        (f"{o} {w}", r) for o, group in result["warmup_experiment"].items() for w, r in group.items()
    ):
        print(
            f"{name:14s}: highest η with every seed stable {r['highest_rate_all_seeds_stable']}, with any seed stable {r['highest_rate_any_seed_stable']}"
        )
        for row in r["rows"]:
            loss = row["last_epoch_loss"]
            text = pm(loss) if loss else "—"
            print(
                f"    η = {row['learning_rate']:.3f}: stable {row['stable_seeds']}/{len(result['config']['seeds'])}, "
                f"diverged {row['diverged_seeds']}, last-epoch loss {text}"
            )
    print(f"trained in {result['seconds']:.1f} s")


if __name__ == "__main__":
    main(run, plot, report)
