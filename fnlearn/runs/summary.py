"""The end of every run: ``write_run`` writes summary.json (atomically) and the plots.

A finished run is evaluated on the test split; its summary holds the final and best metrics
(``report.final_metrics``/``best_metrics`` of the history), the test metrics, the sizes of the
splits, the standardizer, versions, device and host. A run that diverged gets ``"status":
"diverged"`` and an error naming its last checkpoint, if it has one. The sequential and the
replica paths both end here.
"""

from __future__ import annotations

import contextlib
import platform
import time
from pathlib import Path

import jax
import numpy as np

from fnlearn import __version__, checkpoint, compile_cache, distributed, report
from fnlearn.errors import FnlearnError
from fnlearn.loop import evaluate
from fnlearn.runs.rundir import write_json
from fnlearn.tree import num_params

__all__ = ["write_run", "summary_line", "exit_status", "environment"]


def write_run(
    plan, state, history, start: float, *, extra: dict | None = None, error: str | None = None
) -> dict:
    """summary.json (and plots) of ``plan`` after training; returns the summary.

    ``error``: the run diverged with that message (``state`` and ``history`` are then unused; the
    metrics written so far are read back). ``extra`` is merged into a finished run's summary;
    ``start`` is the ``time.perf_counter()`` the run's wall time counts from.
    """
    run_dir, built, label = plan
    if error is not None:
        summary = diverged_summary(built.config, run_dir, label, error)
        if distributed.is_leader():  # process 0 writes the run directory (fnlearn.distributed)
            write_json(run_dir / "summary.json", summary)
        return summary
    config = built.config
    test, test_ema = None, None
    if built.splits.test is not None:
        data = (built.splits.test.x, built.splits.test.y)
        test = evaluate(state, data, loss=built.head, batch_size=config.training.eval_batch_size)
        if state.ema is not None:  # the moving average of the params, evaluated beside them
            test_ema = evaluate(
                state, data, loss=built.head, batch_size=config.training.eval_batch_size, use_ema=True
            )
    summary = finished_summary(built, label, state, history, test) | (extra or {})
    if state.ema is not None:
        summary["test_ema"] = test_ema
    summary["wall_time_s"] = time.perf_counter() - start
    if not distributed.is_leader():  # every process evaluated (together); process 0 writes
        return summary
    write_json(run_dir / "summary.json", summary)
    if config.logging.plots:
        with contextlib.suppress(FnlearnError):  # no matplotlib: the run is still complete
            report.plot_run(report.read_run(run_dir))
    return summary


def diverged_summary(config, run_dir: Path, label: str, message: str) -> dict:
    """The summary of a run that diverged; the message says whether a checkpoint is there."""
    rows = report.read_metrics(run_dir / "metrics.jsonl")
    newest = checkpoint.latest_step(run_dir / "checkpoints" / "last")
    kept = (
        f" Its last checkpoint (step {newest}) is in {run_dir / 'checkpoints' / 'last'}."
        if newest is not None
        else " No checkpoint was written before it."
    )
    return {
        "name": config.name,
        "label": label,
        "seed": config.training.seeds[0],
        "status": "diverged",
        "error": message + kept,
        "epochs": rows[-1].get("epoch", 0) if rows else 0,
        "final": report.final_metrics(rows),
        "best": report.best_metrics(rows),
        "test": None,
        "train_time_s": rows[-1].get("time", 0.0) if rows else 0.0,
    }


def finished_summary(built, label: str, state, history, test) -> dict:
    """What summary.json holds for a finished run (see the train command's help)."""
    config, splits = built.config, built.splits
    return {
        "name": config.name,
        "label": label,
        "seed": config.training.seeds[0],
        "status": "finished",
        "epochs": history[-1]["epoch"] if history else 0,
        "steps": int(state.step),
        "stopped_early": False,
        "best_epoch": None,
        "final": report.final_metrics(history),
        "best": report.best_metrics(history),
        "test": test,
        "train_time_s": history[-1]["time"] if history else 0.0,
        "num_params": int(num_params(state.params)),
        "driver": getattr(history, "driver", None),  # fit's choice and measured s/step (docs/speed.md)
        "examples": {
            "train": len(splits.train),
            "val": len(splits.val) if splits.val is not None else 0,
            "test": len(splits.test) if splits.test is not None else 0,
        },
        "standardizer": built.standardizer.to_dict() if built.standardizer is not None else None,
        **environment(),
    }


def environment() -> dict:
    """Versions, device, host and compilation settings (``compile_cache.settings``), for summary.json."""
    device = jax.devices()[0]
    return {
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "numpy": np.__version__,
            "fnlearn": __version__,
        },
        "device": {
            "platform": device.platform,
            "kind": getattr(device, "device_kind", str(device)),
            "count": jax.device_count(),
        },
        "host": platform.node(),
        "compilation": compile_cache.settings(),  # what decides the compiled code, and the cache
    }


def exit_status(done) -> int:
    """0, or 1 when some run diverged (its summary says so)."""
    return 1 if any(d.summary.get("status") == "diverged" for d in done) else 0


def summary_line(run_dir: Path, summary: dict) -> str:
    """The one line printed for a run: its test metrics, epochs and training time (or divergence)."""
    if summary.get("status") == "diverged":
        return f"{run_dir}: diverged after {summary['epochs']} epochs ({summary['error'].split(' (')[0]})"
    test = summary.get("test") or {}
    shown = "  ".join(f"test_{k} {v:.4g}" for k, v in test.items())
    return f"{run_dir}: {shown}  ({summary['epochs']} epochs, {summary['train_time_s']:.1f} s training)"
