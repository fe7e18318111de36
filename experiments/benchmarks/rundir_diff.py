"""Byte-for-byte check of a refactoring: run the shipped configs with two checkouts, diff the results.

    python experiments/benchmarks/rundir_diff.py BEFORE_ROOT AFTER_ROOT [--work DIR]

Each checkout runs the same ``fnlearn`` commands (``COMMANDS``: every config in configs/, short,
on the sequential and the replica paths, a sweep, a resume, compare and plot) in its own empty
folder, with ``PYTHONPATH`` set to that checkout. Then every file below the two folders is
compared after removing what legitimately changes between runs: times (``time`` in metrics.jsonl,
``wall_time_s``, ``train_time_s``, the environment and the compilation settings in summary.json, seconds in the printed
lines and tables, the wall-time columns of a CSV table). Checkpoints and figures are binary and
are not compared: their presence is (a checkpoint's step folders, as orbax names its files by chance).
Prints one line per difference and exits 1 when there is any.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

SHORT = ["--set", "training.epochs=2"]
COMMANDS = [
    ["train", "configs/digits_mlp.toml", *SHORT, "--out", "digits"],
    ["train", "configs/digits_mlp.toml", *SHORT, "--set", "training.seeds=[0,1]", "--out", "digits_seeds"],
    [
        "train",
        "configs/digits_mlp.toml",
        *SHORT,
        "--set",
        "training.seeds=[0,1]",
        "--set",
        "training.replicas=false",
        "--out",
        "digits_sequential",
    ],
    ["train", "configs/heteroscedastic.toml", *SHORT, "--out", "hetero"],
    ["train", "configs/mnist_mlp.toml", *SHORT, "--out", "mnist"],
    [
        "train",
        "configs/digits_mlp.toml",
        "--set",
        "training.epochs=3",
        "--set",
        "optimizer.learning_rate=1e4",
        "--set",
        "optimizer.clip_norm=0",
        "--out",
        "diverged",
    ],
    ["train", "--resume", "--out", "digits", "--set", "training.epochs=3"],
    ["train", "--resume", "--out", "digits"],
    ["sweep", "configs/regularisation.toml", "--set", "training.epochs=3", "--seeds", "2", "--out", "reg"],
    ["sweep", "configs/deep_mlp.toml", *SHORT, "--quiet", "--out", "deep"],
    ["sweep", "configs/optimizers.toml", *SHORT, "--grid", "optimizer.name=sgd,adam", "--out", "opt"],
    ["sweep", "configs/optimizers.toml", "--set", "training.epochs=1", "--seeds", "1", "--out", "opt"],
    ["compare", "reg", "digits", "--csv", "table.csv", "--out", "curves.png"],
    ["plot", "hetero"],
    ["train", "configs/digits_mlp.toml", "--set", "training.epochs=0"],
]
TIMES = {
    "time",
    "examples_per_second",
    "wall_time_s",
    "train_time_s",
    "versions",
    "device",
    "host",
    "compilation",
}
SECONDS = re.compile(r"\d+(\.\d+)?( ± \d+(\.\d+)?)? s\b|\| [\d.]+ (± [\d.]+ )?\|$")


def run_all(root: Path, work: Path) -> None:
    """Every command of ``COMMANDS`` with the checkout ``root``, in ``work``; outputs into ``work``."""
    (work / "configs").symlink_to(root / "configs")
    env = os.environ | {"PYTHONPATH": str(root), "MPLBACKEND": "Agg"}
    for i, command in enumerate(COMMANDS):
        done = subprocess.run(
            [sys.executable, "-m", "fnlearn", *command], cwd=work, env=env, capture_output=True, text=True
        )
        (work / f"command_{i:02d}.out").write_text(f"exit {done.returncode}\n{done.stdout}---\n{done.stderr}")


def normalised(path: Path) -> str | None:
    """The file's text with times removed; None for a binary file (compared by presence only)."""
    if path.suffix in (".png", ".pdf") or "checkpoints" in path.parts or "tensorboard" in path.parts:
        return None
    text = path.read_text()
    if path.suffix == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        keep = [i for i, name in enumerate(rows[0]) if not name.startswith("wall time")] if rows else []
        return "\n".join(",".join(row[i] for i in keep) for row in rows)
    if path.name == "summary.json":
        return json.dumps({k: v for k, v in json.loads(text).items() if k not in TIMES}, indent=1)
    if path.name == "metrics.jsonl":
        rows = [json.loads(line) for line in text.splitlines()]
        return "\n".join(json.dumps({k: v for k, v in r.items() if k not in TIMES}) for r in rows)
    lines = [SECONDS.sub("<s>", line) for line in text.splitlines()]
    return "\n".join(re.sub(r"(time|took) [\d.]+", r"\1 <t>", line) for line in lines)


def _files(root: Path) -> set[Path]:
    """The files below ``root``; inside ``checkpoints/``, the step folders (``checkpoints/last/90``)."""
    found = set()
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if "checkpoints" in rel.parts:
            cut = rel.parts.index("checkpoints") + 3
            if len(rel.parts) >= cut:
                found.add(Path(*rel.parts[:cut]))
        elif path.is_file():
            found.add(rel)
    return found


def compare(before: Path, after: Path) -> list[str]:
    """One line per file that differs, or is in one folder only."""
    a, b = _files(before), _files(after)
    problems = [f"only before: {p}" for p in sorted(a - b)] + [f"only after: {p}" for p in sorted(b - a)]
    for rel in sorted(a & b):
        if rel.parts[0] == "configs":
            continue
        if "checkpoints" in rel.parts:
            continue
        x, y = normalised(before / rel), normalised(after / rel)
        if x != y:
            problems.append(f"differs: {rel}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--work", type=Path, help="where to run (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="compare WORK/before and WORK/after as they are")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="rundir_diff_"))
    for name, root in (("before", args.before), ("after", args.after)):
        if not args.reuse:
            (work / name).mkdir(parents=True)
            run_all(root.resolve(), work / name)
    problems = compare(work / "before", work / "after")
    ran = len(list((work / "after").glob("command_*.out")))
    print("\n".join(problems) or f"identical: the outputs of {ran} commands, in {work}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
