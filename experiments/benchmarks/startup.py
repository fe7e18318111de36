"""Start-up cost: `import fnlearn` against `import jax, optax` alone, in fresh interpreters.

Each sample is the wall time of a fresh `python -c "<statement>"` process; the statements are run
interleaved, the order rotating each round, and the median of each is reported:

    python (no imports)   pass
    import jax, optax     what any jax training script pays
    import fnlearn        the bare import (fnlearn's re-exports are lazy: jax is not loaded yet)
    fnlearn training API  import fnlearn, then touch fl.nn, fl.optim, fl.losses, fl.distributions,
                          fl.data, fl.train and fl.fit (what a training script loads)

fnlearn's own cost is median(training API) − median(import jax, optax). One more fresh process
loads every fnlearn submodule and lists the heavy optional packages that came with them (none
should: they are imported inside the functions that need them); `python -X importtime` of the
training API gives the fnlearn modules that take longest to import (self time, their own code).

The main job's start-up (``main_job_profile``; skipped with --no-main-job): one fresh
``fnlearn train configs/digits_mlp.toml --no-compile-cache`` under ``python -X importtime`` with
``JAX_LOG_COMPILES=1`` (and ``FNLEARN_DEBUG=1``, which keeps the log): the import time of each top-level package (self times summed) and the
compilation time of each program jax compiles (summed over its compilations), the largest first.

    python experiments/benchmarks/startup.py [--quick] [--runs 9] [--no-main-job] [--out DIR]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAINING_API = "import fnlearn as fl; fl.nn, fl.optim, fl.losses, fl.distributions, fl.data, fl.train, fl.fit"
EVERY_SUBMODULE = "import fnlearn as fl; [getattr(fl, name) for name in fl.__all__]"
STATEMENTS = {
    "python (no imports)": "pass",
    "import jax, optax": "import jax, optax",
    "import fnlearn": "import fnlearn",
    "fnlearn training API": TRAINING_API,
}
OPTIONAL_HEAVY = ("flax", "equinox", "torch", "matplotlib", "sklearn", "scipy", "orbax", "tqdm", "pandas")


def time_fresh_process(statement: str) -> float:
    """Wall time of a fresh interpreter that runs ``statement`` and exits."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    return time.perf_counter() - start


def interleaved_samples(statements: dict[str, str], runs: int) -> dict[str, list[float]]:
    """``runs`` samples per statement, one round at a time, rotating which goes first."""
    names = list(statements)
    samples = {name: [] for name in names}
    time_fresh_process("pass")  # warm the file cache once, for everyone
    for r in range(runs):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            samples[name].append(time_fresh_process(statements[name]))
    return samples


def heavy_modules_after(statement: str) -> list[str]:
    """The optional heavy packages present in sys.modules after ``statement`` (fresh process)."""
    probe = f"{statement}\nimport sys, json\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(OPTIONAL_HEAVY)!r}))))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def slowest_own_modules(statement: str, package: str = "fnlearn", top: int = 8) -> list[dict]:
    """The modules of ``package`` that ``statement`` imports, by import self time, from
    ``python -X importtime``."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement], check=True, capture_output=True, text=True
    ).stderr
    rows = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        self_us, cumulative_us, name = (part.strip() for part in line[len("import time:") :].split("|"))
        if name == package or name.startswith(package + "."):
            rows.append(
                {"module": name, "self_ms": int(self_us) / 1e3, "cumulative_ms": int(cumulative_us) / 1e3}
            )
    return sorted(rows, key=lambda r: -r["self_ms"])[:top]


COMPILED = re.compile(r"Finished XLA compilation of (\S+) in ([0-9.]+) s")


def main_job_profile(root: Path, top: int = 12) -> dict:
    """Imports (per top-level package) and compilations (per program) of one fresh run of the
    main job without the compilation cache, from ``-X importtime`` and jax's compile log."""
    with tempfile.TemporaryDirectory() as tmp:
        env = os.environ | {
            "JAX_LOG_COMPILES": "1",
            "FNLEARN_DEBUG": "1",
            "JAX_PLATFORMS": "cpu",
            "MPLBACKEND": "Agg",
        }
        command = ["-m", "fnlearn", "train", str(root / "configs" / "digits_mlp.toml"), "--quiet"]
        start = time.perf_counter()
        err = subprocess.run(
            [sys.executable, "-X", "importtime", *command, "--out", "run", "--no-compile-cache"],
            cwd=tmp,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stderr
        wall = time.perf_counter() - start
    imports, compiles = collections.Counter(), collections.defaultdict(list)
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line:
            self_us, _, name = (part.strip() for part in line[len("import time:") :].split("|"))
            if self_us.isdigit():
                imports[name.split(".")[0]] += int(self_us) / 1e6
        elif found := COMPILED.search(line):
            compiles[found.group(1)].append(float(found.group(2)))
    return {
        "wall_s": wall,
        "import_s": sum(imports.values()),
        "compile_s": sum(sum(v) for v in compiles.values()),
        "compilations": sum(len(v) for v in compiles.values()),
        "imports_by_package_s": dict(imports.most_common(top)),
        "compiles_by_program_s": {
            name: {"seconds": sum(v), "count": len(v)}
            for name, v in sorted(compiles.items(), key=lambda kv: -sum(kv[1]))[:top]
        },
    }


def plot(samples: dict[str, list[float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(samples)
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    for i, name in enumerate(names):
        values = samples[name]
        ax.barh(i, statistics.median(values), color="tab:blue", alpha=0.35)
        ax.plot(values, [i] * len(values), "o", color="tab:blue", ms=4)
        ax.text(statistics.median(values), i + 0.3, f" median {statistics.median(values):.2f} s", fontsize=8)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("wall time of a fresh `python -c ...` (s); bars: median, dots: runs")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/benchmark_startup")
    parser.add_argument("--quick", action="store_true", help="7 runs (the fewest the median is taken over)")
    parser.add_argument(
        "--runs", type=int, default=None, help="fresh processes per statement (default 9, at least 7)"
    )
    parser.add_argument(
        "--no-main-job", action="store_true", help="skip the main job's import/compile profile"
    )
    args = parser.parse_args(argv)
    runs = args.runs or (7 if args.quick else 9)
    if runs < 7:
        parser.error(f"--runs {runs}: the median needs at least 7 runs per statement")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    samples = interleaved_samples(STATEMENTS, runs)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    results = {
        "python": sys.version.split()[0],
        "runs": runs,
        "samples_s": samples,
        "median_s": medians,
        "fnlearn_over_jax_optax_s": medians["fnlearn training API"] - medians["import jax, optax"],
        "heavy_optional_modules_after_every_submodule": heavy_modules_after(EVERY_SUBMODULE),
        "slowest_fnlearn_modules": slowest_own_modules(TRAINING_API),
    }
    if not args.no_main_job:
        results["main_job"] = main_job_profile(Path(__file__).resolve().parents[2])
    (out / "startup.json").write_text(json.dumps(results, indent=2))
    plot(samples, out / "startup.png", f"start-up, median of {runs} fresh processes each (interleaved)")
    for name, value in medians.items():
        print(
            f"{name:22s} median {value:.3f} s  (min {min(samples[name]):.3f}, max {max(samples[name]):.3f})"
        )
    print(
        f"fnlearn's training API on top of jax + optax: {results['fnlearn_over_jax_optax_s'] * 1e3:+.0f} ms"
    )
    heavy = results["heavy_optional_modules_after_every_submodule"]
    print(
        f"optional heavy packages loaded with every fnlearn submodule: {', '.join(heavy) if heavy else 'none'}"
    )
    print(
        "slowest fnlearn modules (self time): "
        + ", ".join(f"{r['module']} {r['self_ms']:.1f} ms" for r in results["slowest_fnlearn_modules"][:5])
    )
    if "main_job" in results:
        job = results["main_job"]
        print(
            f"main job (no compilation cache): {job['wall_s']:.1f} s wall, {job['import_s']:.1f} s importing, "
            f"{job['compile_s']:.1f} s in {job['compilations']} compilations"
        )
        print("  imports: " + ", ".join(f"{k} {v:.2f} s" for k, v in job["imports_by_package_s"].items()))
        print(
            "  compilations: "
            + ", ".join(
                f"{k} {v['seconds']:.2f} s ×{v['count']}" for k, v in job["compiles_by_program_s"].items()
            )
        )
    print(f"wrote {out}")
    return results


if __name__ == "__main__":
    main()
