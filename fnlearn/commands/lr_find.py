"""``fnlearn lr-find CONFIG``: the learning-rate range test (``fl.lr_find``) for a config's model,
optimizer and training data; writes the curve as a figure and prints the suggested rate."""

from __future__ import annotations

import argparse
from pathlib import Path

from fnlearn.commands.common import add_set
from fnlearn.errors import FnlearnError

EPILOG = """\
The config's optimizer (its name and options; its learning rate is what the sweep replaces) trains
the config's model from its first seed on the training split, with training.batch_size, while the
rate grows from --min-lr to --max-lr over --steps updates. The curve ends where the smoothed loss
exceeds 4x its minimum. The suggestion is the rate of steepest descent of the smoothed loss; a
common choice is a rate a little below it. Nothing but the figure is written.

examples:
  fnlearn lr-find configs/digits_mlp.toml
  fnlearn lr-find configs/digits_mlp.toml --set optimizer.name=\\"sgd\\" --out sgd_lr.png
"""


def add_parser(subcommands) -> None:
    sub = subcommands.add_parser(
        "lr-find",
        help="learning-rate range test of a config (Smith 2017)",
        description="Sweep the learning rate exponentially, plot the loss, suggest a rate.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.add_argument("config", metavar="CONFIG", help="the TOML config")
    add_set(sub)
    sub.add_argument("--out", default="lr_find.png", metavar="PNG", help="the figure (default lr_find.png)")
    sub.add_argument("--min-lr", type=float, default=1e-7, help="the first rate (default 1e-7)")
    sub.add_argument("--max-lr", type=float, default=10.0, help="the last rate (default 10)")
    sub.add_argument("--steps", type=int, default=100, help="updates in the sweep (default 100)")
    sub.set_defaults(func=run)


def plot(result, out) -> None:
    """The curve (raw and smoothed loss against log η) with the suggestion marked, written whole
    or not at all to ``out`` (PNG by default)."""
    import numpy as np  # noqa: PLC0415

    from fnlearn import report  # noqa: PLC0415 - matplotlib loads only here

    path = report.check_figure_path(out, "lr_find figure")
    plt = report.pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result.learning_rates, result.losses, color="0.75", lw=1, label="batch loss")
    ax.plot(result.learning_rates, result.smoothed, color="C0", lw=2, label="smoothed (β = 0.98)")
    ax.axvline(result.suggestion, color="C3", ls="--", label=f"steepest descent: {result.suggestion:.2g}")
    ax.set_xscale("log")
    finite = result.smoothed[np.isfinite(result.smoothed)]
    if finite.size:
        raw = result.losses[np.isfinite(result.losses)]
        low, high = float(min(np.min(finite), np.min(raw, initial=np.inf))), float(np.max(finite))
        pad = 0.1 * (high - low) + 1e-12
        ax.set_ylim(low - pad / 2, high + pad)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    end = "" if result.diverged_at is None else f", diverged at {result.diverged_at:.2g}"
    ax.set_title(f"learning-rate range test ({len(result.losses)} steps{end})")
    ax.legend()
    fig.tight_layout()
    report.save_figure(plt, fig, path)


def run(args) -> int:
    import jax  # noqa: PLC0415 - jax loads here, not for --help

    from fnlearn import config as fconfig  # noqa: PLC0415
    from fnlearn import lr_range, report  # noqa: PLC0415
    from fnlearn.runs.build import build  # noqa: PLC0415
    from fnlearn.train import TrainState  # noqa: PLC0415

    out = Path(args.out)
    report.check_figure_path(out, "--out")
    replacing = out.exists()
    built = build(fconfig.load(args.config, args.overrides))
    t = built.config.training
    if len(built.splits.train) < t.batch_size:
        raise FnlearnError(f"training.batch_size = {t.batch_size} is larger than the training split.")
    state = TrainState.create(built.model, built.optimizer, jax.random.key(t.seeds[0]))
    result = lr_range.lr_find(
        state,
        (built.splits.train.x, built.splits.train.y),
        loss=built.head,
        penalty=built.penalty,
        min_lr=args.min_lr,
        max_lr=args.max_lr,
        steps=args.steps,
        batch_size=t.batch_size,
    )
    plot(result, out)
    end = (
        "no divergence up to --max-lr"
        if result.diverged_at is None
        else f"diverged at {result.diverged_at:.3g}"
    )
    print(f"suggested learning rate: {result.suggestion:.3g}  ({len(result.losses)} steps, {end})")
    print(f"figure: {out}{' (replaced the existing file)' if replacing else ''}", flush=True)
    return 0
