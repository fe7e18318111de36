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
# # Compare runs
#
# Load run directories — each holds `config.toml` (the resolved config), `metrics.jsonl` (one JSON
# object per epoch) and `summary.json` (final, best and test metrics) — and compare them: a table
# of mean ± std over seeds per configuration, and learning curves.
#
# Settings come from the environment, so the same file runs as a script, in Jupyter (open it with
# jupytext) and in CI:
#
# * `RUNS`: run directories or folders of them, separated by spaces (default `runs`).
# * `SMALL=1`: first make four tiny runs of our own (digits, Adam vs SGD with momentum, two seeds
#   each, two epochs) in `OUT/runs` and compare those — what CI executes.
# * `OUT`: where figures and tables go (default `out/notebooks/compare_runs`).
#
# Runs made by `fnlearn train` / `fnlearn sweep` are read the same way.

# %%
import json
import os
import time
from pathlib import Path

import jax
import numpy as np

import fnlearn as fl
from fnlearn import config as fconfig
from fnlearn import report

SMALL = os.environ.get("SMALL", "0") == "1"
OUT = Path(os.environ.get("OUT", "out/notebooks/compare_runs"))
RUNS = os.environ.get("RUNS", str(OUT / "runs") if SMALL else "runs").split()
OUT.mkdir(parents=True, exist_ok=True)


# %% [markdown]
# ## Small runs of our own (only with `SMALL=1`)
#
# `fl.fit(..., run_dir=...)` writes `metrics.jsonl`; the config and the summary are written here
# next to it, in the format `fnlearn train` uses, so that `fnlearn.report` reads these runs like any
# other.


# %%
def make_run(run_dir: Path, optimizer: str, learning_rate: float, seed: int, epochs: int, parts) -> None:
    """Train a small digits MLP into ``run_dir``: config.toml, metrics.jsonl, summary.json."""
    tx = {"adam": fl.optim.adam, "sgd": lambda lr: fl.optim.sgd(lr, momentum=0.9)}[optimizer](learning_rate)
    config = {
        "name": "digits_small",
        "data": {"name": "digits", "val": 0.2, "test": 0.2},
        "model": {"sizes": [64, 64, 10], "activation": "relu"},
        "optimizer": {"name": optimizer, "learning_rate": learning_rate},
        "training": {"seeds": [seed], "epochs": epochs, "batch_size": 64},
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(fconfig.dumps(config))
    head = fl.distributions.get("categorical")
    state = fl.TrainState.create(fl.nn.mlp(config["model"]["sizes"]), tx, jax.random.key(seed))
    start = time.perf_counter()
    state, history = fl.fit(
        state,
        (parts.train.x, parts.train.y),
        loss=head,
        epochs=epochs,
        batch_size=64,
        eval=(parts.val.x, parts.val.y),
        run_dir=run_dir,
        checkpoint_every=None,
        progress=False,
    )
    test = fl.evaluate(state, (parts.test.x, parts.test.y), loss=head)
    summary = {
        "name": config["name"],
        "seed": seed,
        "status": "finished",
        "epochs": epochs,
        "final": report.final_metrics(history),
        "best": report.best_metrics(history),
        "test": {k: float(v) for k, v in test.items()},
        "wall_time_s": time.perf_counter() - start,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))


if SMALL:
    parts, _ = fl.data.standardize(fl.data.split(fl.data.load("digits"), val=0.2, test=0.2, seed=0))
    for optimizer, lr in (("adam", 1e-3), ("sgd", 1e-2)):
        for seed in (0, 1):
            make_run(OUT / "runs" / f"{optimizer}_seed{seed}", optimizer, lr, seed, 2, parts)

# %% [markdown]
# ## Load the runs
#
# `report.find_runs` reads every run directory below the given paths; `report.group_runs` groups
# the runs whose configs differ only in their seeds and labels each group by what differs.

# %%
runs = report.find_runs(RUNS)
groups = report.group_runs(runs)
for label, members in groups:
    print(f"{label}: {len(members)} run(s): {', '.join(str(r.path) for r in members)}")

# %% [markdown]
# ## The table: mean ± std over seeds

# %%
columns, rows = report.compare_table(runs)
table = report.markdown_table(columns, rows)
print(table)
(OUT / "compare.md").write_text(table + "\n")
report.write_csv(OUT / "compare.csv", columns, rows)

# %% [markdown]
# ## Learning curves: mean ± std over each group's seeds


# %%
def curves(members, key: str):
    """Epochs and the per-seed values of ``key`` (rows of seeds, cut to the shortest run)."""
    per_run = [
        [(row["epoch"], row[key]) for row in run.metrics if key in row and "epoch" in row] for run in members
    ]
    n = min(len(c) for c in per_run)
    if n == 0:
        return None, None
    epochs = np.array([e for e, _ in per_run[0][:n]])
    return epochs, np.array([[v for _, v in c[:n]] for c in per_run])


metric_keys = [
    k
    for k in ("train_loss", "val_loss", "val_accuracy")
    if any(k in row for run in runs for row in run.metrics)
]

# %%
import matplotlib  # noqa: E402

if not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

fig, axes = plt.subplots(1, len(metric_keys), figsize=(5 * len(metric_keys), 4), squeeze=False)
for ax, key in zip(axes[0], metric_keys):
    for label, members in groups:
        epochs, values = curves(members, key)
        if epochs is None:
            continue
        mean, std = values.mean(0), values.std(0)
        ax.plot(epochs, mean, "o-" if len(epochs) < 10 else "-", label=f"{label} (n={len(members)})")
        ax.fill_between(epochs, mean - std, mean + std, alpha=0.25)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(key)
    ax.set_title(f"{key}: mean ± std over seeds")
    ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "learning_curves.png", dpi=90)

# %% [markdown]
# The library's own comparison plot (what `fnlearn compare --plot` draws) is one call:

# %%
report.plot_compare(runs, OUT / "plot_compare.png")
print(f"wrote {OUT}/compare.md, compare.csv, learning_curves.png and plot_compare.png")
