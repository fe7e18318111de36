"""A 16-point sweep as one compiled program against 16 sequential runs, wall time with compilation.

    python experiments/benchmarks/sweep_program.py [--repeats 3] [--epochs 3] [--quick] [--out DIR]

The sweep is ``configs/digits_mlp.toml`` (MLP 64-128-128-10, Adam, cosine decay, dropout) over 4
learning rates x 4 seeds, ``--epochs`` epochs, no checkpoints and no plots, run by ``fnlearn sweep``
in this process twice per repeat: once grouped (the 16 runs as one vmapped ``fl.replicas`` program,
the default) and once with ``training.replicas = false`` (16 runs one after another, the
sequential path). The two alternate, the first one changing every repeat, and every measurement
starts with jax's in-memory caches cleared and the persistent compilation cache off, so each pays
its compilations: one program for the group, one per learning rate for the sequential runs (a
Python float learning rate is a constant of the compiled step). Prints a markdown table (median
seconds, and the sequential / grouped ratio) and writes ``OUT/sweep_program.{json,md}``
(default ``out/benchmarks``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jax

from fnlearn import cli

ROOT = Path(__file__).resolve().parents[2]
LEARNING_RATES = "1e-3,2e-3,4e-3,8e-3"


def sweep_seconds(out: Path, *, grouped: bool, epochs: int, lrs: str, seeds: int) -> float:
    """Wall time of one ``fnlearn sweep`` in this process, compilations included."""
    jax.clear_caches()
    argv = [
        "sweep",
        str(ROOT / "configs" / "digits_mlp.toml"),
        "--grid",
        f"optimizer.learning_rate={lrs}",
        "--seeds",
        str(seeds),
        "--out",
        str(out),
        "--quiet",
        "--set",
        f"training.epochs={epochs}",
        "--set",
        "training.checkpoint.every=0",
        "--set",
        "logging.plots=false",
        "--set",
        f"training.replicas={'true' if grouped else 'false'}",
    ]
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(argv)
    seconds = time.perf_counter() - start
    if code != 0:
        sys.exit(f"sweep_program: fnlearn {' '.join(argv)} exited with {code}")
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 lrs x 2 seeds, 1 epoch, 1 repeat")
    parser.add_argument("--out", default="out/benchmarks")
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_compilation_cache", False)
    lrs, seeds = (LEARNING_RATES, 4) if not args.quick else ("1e-3,4e-3", 2)
    repeats, epochs = (args.repeats, args.epochs) if not args.quick else (1, 1)
    runs = len(lrs.split(",")) * seeds
    times = {"grouped": [], "sequential": []}
    with tempfile.TemporaryDirectory() as work:
        for r in range(repeats):
            order = ["grouped", "sequential"] if r % 2 == 0 else ["sequential", "grouped"]
            for name in order:
                out = Path(work) / f"{name}-{r}"
                times[name].append(
                    sweep_seconds(out, grouped=name == "grouped", epochs=epochs, lrs=lrs, seeds=seeds)
                )
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["sequential"] / medians["grouped"]
    device = jax.devices()[0]
    table = "\n".join(
        [
            f"{runs}-run sweep (learning rate x seed), digits MLP, {epochs} epochs, on "
            f"{device.platform} ({device.device_kind}), median of {repeats}, compilation included:",
            "",
            "| path | wall time (s) |",
            "|---|---|",
            f"| {runs} sequential runs | {medians['sequential']:.2f} |",
            f"| one vmapped program | {medians['grouped']:.2f} |",
            f"| ratio (sequential / program) | {ratio:.2f}x |",
        ]
    )
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "runs": runs,
        "epochs": epochs,
        "repeats": repeats,
        "seconds": times,
        "median_s": medians,
        "ratio": ratio,
        "device": f"{device.platform} {device.device_kind}",
        "machine": platform.machine(),
    }
    (out / "sweep_program.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "sweep_program.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
