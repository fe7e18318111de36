# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Seeds and learning rates as vmapped replicas
#
# How much of a difference between two learning rates is the learning rate, and how much is the
# seed? Train **8 seeds × 2 learning rates** of a digits MLP as 16 replicas in one compiled
# program (`fl.replicas.create` + `fl.replicas.fit`: a `lax.scan` over a `vmap` of the train step),
# then plot each learning rate's mean ± std over its seeds.
#
# Settings from the environment: `SMALL=1` (2 seeds × 2 learning rates, 2 epochs: what CI runs),
# `OUT` (default `out/notebooks/replicas_seeds`).

# %%
import os
from pathlib import Path

import numpy as np

import fnlearn as fl

SMALL = os.environ.get("SMALL", "0") == "1"
OUT = Path(os.environ.get("OUT", "out/notebooks/replicas_seeds"))
OUT.mkdir(parents=True, exist_ok=True)
SEEDS = 2 if SMALL else 8
LEARNING_RATES = (1e-3, 1e-2)
EPOCHS = 2 if SMALL else 30
WIDTH = 32 if SMALL else 128

# %% [markdown]
# ## One program, 16 replicas
#
# The optimizer is built with `fl.optim.inject_hyperparams`, so its learning rate lives in the
# optimizer state and can differ per replica; replica i gets seed `seeds[i]` and learning rate
# `learning_rate[i]`.

# %%
digits = fl.data.load("digits")
parts, _ = fl.data.standardize(fl.data.split(digits, val=0.2, test=0.2, seed=0))
model = fl.nn.mlp([64, WIDTH, WIDTH, 10])
tx = fl.optim.inject_hyperparams(fl.optim.adam)(learning_rate=LEARNING_RATES[0])
seeds = [s for _ in LEARNING_RATES for s in range(SEEDS)]
rates = [lr for lr in LEARNING_RATES for _ in range(SEEDS)]
states, info = fl.replicas.create(model, tx, seeds=seeds, hyperparams={"learning_rate": rates})
head = fl.distributions.get("categorical")
states, history = fl.replicas.fit(
    states,
    (parts.train.x, parts.train.y),
    loss=head,
    epochs=EPOCHS,
    batch_size=32,
    eval=(parts.val.x, parts.val.y),
    info=info,
    progress=False,
)
print(f"{len(seeds)} replicas, {EPOCHS} epochs, {len(history)} records")

# %% [markdown]
# ## Curves per learning rate: mean ± std over seeds
#
# `history` has one record per (epoch, replica), carrying the replica's `seed` and `learning_rate`.


# %%
def curve(key: str, lr: float):
    """(epochs, values[seed, epoch]) of ``key`` for the replicas with learning rate ``lr``."""
    records = [r for r in history if np.isclose(r["learning_rate"], lr)]
    epochs = sorted({r["epoch"] for r in records})
    values = np.array(
        [
            [next(r[key] for r in records if r["epoch"] == e and r["seed"] == s) for e in epochs]
            for s in range(SEEDS)
        ]
    )
    return np.array(epochs), values


keys = ("train_loss", "val_loss", "val_accuracy")
summary = {}
for lr in LEARNING_RATES:
    for key in keys:
        epochs, values = curve(key, lr)
        summary[(lr, key)] = (values[:, -1].mean(), values[:, -1].std())

print(f"final epoch, mean ± std over {SEEDS} seeds")
print(f"| learning rate | {' | '.join(keys)} |")
print("|---|" + "---|" * len(keys))
for lr in LEARNING_RATES:
    print(
        f"| {lr:g} | "
        + " | ".join(f"{summary[(lr, k)][0]:.4f} ± {summary[(lr, k)][1]:.4f}" for k in keys)
        + " |"
    )

# %%
import matplotlib  # noqa: E402

if not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

fig, axes = plt.subplots(1, len(keys), figsize=(15, 4))
for ax, key in zip(axes, keys):
    for lr in LEARNING_RATES:
        epochs, values = curve(key, lr)
        mean, std = values.mean(0), values.std(0)
        line = ax.plot(epochs, mean, "o-" if len(epochs) < 10 else "-", label=f"lr = {lr:g}")[0]
        ax.fill_between(epochs, mean - std, mean + std, color=line.get_color(), alpha=0.25)
        for run in values:  # each seed, faintly
            ax.plot(epochs, run, color=line.get_color(), alpha=0.2, lw=0.7)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(key)
    ax.set_title(f"{key}: mean ± std over {SEEDS} seeds")
    ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "replicas_seeds.png", dpi=90)
print(f"wrote {OUT}/replicas_seeds.png")
