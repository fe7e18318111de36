"""Regularisation on an overfitting setup: L2, L1, dropout and early stopping against no regulariser.

A 64-256-256-10 ReLU MLP is trained on only 10% of the digits (179 images; 180 for validation, the
remaining 1438 for testing), where it fits the training set perfectly and its test NLL climbs.
Five variants, each trained as vmapped seed replicas (``fl.replicas.create`` / ``fl.replicas.fit``,
Adam 3e-3 with cosine decay to 0, minibatches of 30):

- none:            mean NLL (cross-entropy) only;
- L2:              + λ₂·½Σw² (``fl.losses.l2(λ₂, mask=fl.losses.weights_only)``: weights, not biases);
- L1:              + λ₁·Σ|w|  (``fl.losses.l1(λ₁, mask=fl.losses.weights_only)``), which the notes
                   say prefers sparse weights: we count the fraction of near-zero weights, |w| < 10⁻³;
- dropout:         ``fl.nn.mlp(..., dropout=0.5)`` (inverted dropout, identity at test time);
- early stopping:  ``fl.callbacks.EarlyStopping("val_loss", patience)`` on the validation split,
                   best weights restored.

Reports, per variant (mean ± std over the seeds), the training and test NLL and accuracy, the
generalisation gap (test − train NLL) and the fraction of near-zero weights.

Writes ``regularisation.png`` and ``regularisation.json`` to ``--out`` (default out/regularisation).
Run: ``python experiments/regularisation.py [--quick] [--out DIR]``.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np
from _common import main, mean_std, pm

import fnlearn as fl

NEAR_ZERO = 1e-3  # |w| below this counts as a zero weight
L2_STRENGTH = 1e-2
L1_STRENGTH = 1e-3
DROPOUT = 0.5


def overfitting_data():
    """Digits, 10% train / 10% validation / 80% test (stratified, seed 0), standardised on train."""
    parts, _ = fl.data.standardize(fl.data.split(fl.data.load("digits"), val=0.1, test=0.8, seed=0))
    return parts


def variants(patience: int) -> dict:
    """name -> (dropout rate, penalty, early stopping rule)."""
    mask = fl.losses.weights_only
    return {
        "none": (0.0, None, None),
        "L2": (0.0, fl.losses.l2(L2_STRENGTH, mask=mask), None),
        "L1": (0.0, fl.losses.l1(L1_STRENGTH, mask=mask), None),
        "dropout": (DROPOUT, None, None),
        "early stopping": (0.0, None, fl.callbacks.EarlyStopping("val_loss", patience=patience)),
    }


def near_zero_fraction(params, threshold: float = NEAR_ZERO):
    """Per replica: the fraction of penalised weights (``weights_only``) with |w| < threshold."""
    leaves = [
        w
        for w, keep in zip(
            jax.tree.leaves(params), jax.tree.leaves(fl.losses.weights_only(params)), strict=True
        )
        if keep
    ]
    small = sum(np.sum(np.abs(np.asarray(w)) < threshold, axis=tuple(range(1, w.ndim))) for w in leaves)
    total = sum(np.prod(w.shape[1:]) for w in leaves)
    return small / total


def scores(model, states, x, y):
    """Per replica: mean NLL (cross-entropy) and accuracy of the evaluation-mode model."""
    head = fl.distributions.get("categorical")
    logits = jax.jit(jax.vmap(lambda p, s: model.apply(p, s, x)[0]))(states.params, states.model_state)
    nll = np.array([float(fl.losses.nll(head)(z, y)) for z in logits])
    acc = np.array([float(fl.losses.accuracy(z, y)) for z in logits])
    return nll, acc


def run(quick: bool) -> dict:
    parts = overfitting_data()
    hidden, seeds, epochs, patience = ([128, 128], 3, 40, 5) if quick else ([256, 256], 4, 100, 10)
    batch_size = 30
    steps = epochs * -(-len(parts.train) // batch_size)
    head = fl.distributions.get("categorical")
    train, val, test = (
        (parts.train.x, parts.train.y),
        (parts.val.x, parts.val.y),
        (parts.test.x, parts.test.y),
    )
    start = time.perf_counter()
    results = {}
    for name, (rate, penalty, stopping) in variants(patience).items():
        model = fl.nn.mlp([64, *hidden, 10], dropout=rate)
        tx = fl.optim.adam(fl.optim.schedules.cosine_decay_schedule(3e-3, decay_steps=steps))
        states, info = fl.replicas.create(model, tx, seeds=range(seeds))
        # the curve shown is test NLL per epoch; early stopping must watch the validation split instead
        states, history = fl.replicas.fit(
            states,
            train,
            loss=head,
            epochs=epochs,
            batch_size=batch_size,
            eval=val if stopping else test,
            penalty=penalty,
            early_stopping=stopping,
            info=info,
            progress=False,
            driver="scan",  # dense layers: the scan is the faster driver (docs/speed.md), no probe
        )
        train_nll, train_acc = scores(model, states, *train)
        test_nll, test_acc = scores(model, states, *test)
        zero = near_zero_fraction(states.params)
        per_epoch = lambda key, history=history: [
            [r[key] for r in history if r["replica"] == i] for i in range(seeds)
        ]
        entry = {
            "train_nll": train_nll,
            "test_nll": test_nll,
            "train_accuracy": train_acc,
            "test_accuracy": test_acc,
            "gap_nll": test_nll - train_nll,
            "near_zero_fraction": zero,
        }
        results[name] = {k: {**mean_std(v), "per_seed": v.tolist()} for k, v in entry.items()}
        results[name]["curves"] = {
            "train_loss": per_epoch("train_loss"),
            "eval_loss": per_epoch("val_loss"),
            "eval_set": "validation" if stopping else "test",
        }
        if stopping:
            best = [int(np.argmin(c)) + 1 for c in results[name]["curves"]["eval_loss"]]
            results[name]["best_epoch"] = best
            # a replica is frozen (its record says active: False) from the epoch its patience ran out
            results[name]["stopped_epoch"] = [
                next((e for e, a in enumerate(act, 1) if not a), len(act)) for act in per_epoch("active")
            ]
    return {
        "config": {
            "quick": quick,
            "hidden": hidden,
            "seeds": seeds,
            "epochs": epochs,
            "batch_size": batch_size,
            "n_train": len(parts.train),
            "n_val": len(parts.val),
            "n_test": len(parts.test),
            "l2_strength": L2_STRENGTH,
            "l1_strength": L1_STRENGTH,
            "dropout": DROPOUT,
            "patience": patience,
            "near_zero_threshold": NEAR_ZERO,
            "optimizer": "adam 3e-3, cosine decay to 0",
        },
        "variants": results,
        "seconds": time.perf_counter() - start,
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - optional extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    v = result["variants"]
    names = list(v)
    colours = dict(zip(names, ["k", "tab:blue", "tab:orange", "tab:green", "tab:red"], strict=True))
    fig, axes = plt.subplots(1, 3, figsize=(18, 5))
    ax = axes[0]
    for name in names:
        c = v[name]["curves"]
        ev = np.asarray(c["eval_loss"][0])
        tr = np.asarray(c["train_loss"][0])
        epochs = np.arange(1, len(ev) + 1)
        label = f"{name}: {c['eval_set']}" if name == "early stopping" else f"{name}: test"
        ax.plot(epochs, ev, color=colours[name], lw=2, label=label)
        ax.plot(epochs, tr, color=colours[name], lw=1, ls=":")
        if name == "early stopping":
            ax.axvline(
                v[name]["best_epoch"][0],
                color=colours[name],
                ls="--",
                lw=1,
                label="early stopping: best epoch (restored)",
            )
    ax.set(
        yscale="log",
        xlabel="epoch",
        ylabel="NLL (cross-entropy)",
        title="Seed 0: evaluation NLL (solid) and training loss incl. penalty (dotted)",
    )
    ax.legend(fontsize=8)
    x = np.arange(len(names))
    width = 0.38
    for offset, key, label, alpha in (
        (-width / 2, "train_nll", "train NLL", 0.45),
        (width / 2, "test_nll", "test NLL", 1.0),
    ):
        axes[1].bar(
            x + offset,
            [v[n][key]["mean"] for n in names],
            width,
            yerr=[v[n][key]["std"] for n in names],
            color=[colours[n] for n in names],
            alpha=alpha,
            capsize=3,
            label=label,
        )
    for i, n in enumerate(names):
        axes[1].text(
            i + width / 2,
            v[n]["test_nll"]["mean"],
            f"acc {v[n]['test_accuracy']['mean']:.3f}",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    axes[1].set_xticks(x, names)
    axes[1].set(
        ylabel="NLL (mean ± std over seeds)",
        title=f"Training (pale) vs test (solid) NLL, {result['config']['n_train']} training images",
    )
    axes[1].legend(fontsize=8)
    axes[2].bar(
        x,
        [100 * v[n]["near_zero_fraction"]["mean"] for n in names],
        yerr=[100 * v[n]["near_zero_fraction"]["std"] for n in names],
        color=[colours[n] for n in names],
        capsize=3,
    )
    axes[2].set_xticks(x, names)
    axes[2].set(
        ylabel=f"% of weights with |w| < {result['config']['near_zero_threshold']:g}",
        title="Sparsity: L1 drives weights to zero, L2 only shrinks them",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(result: dict) -> None:
    fmt = pm
    print(f"{'variant':<15} {'train NLL':>15} {'test NLL':>15} {'test acc':>15} {'|w|<1e-3':>15}")
    for name, r in result["variants"].items():
        print(
            f"{name:<15} {fmt(r['train_nll']):>15} {fmt(r['test_nll']):>15} {fmt(r['test_accuracy']):>15} {fmt(r['near_zero_fraction']):>15}"
        )
    print(f"trained in {result['seconds']:.1f} s")


if __name__ == "__main__":
    main(run, plot, report)
