"""Wall time of the README's main job: against a plain jax + optax script, and a second run that
finds its programs in the persistent compilation cache.

`fnlearn train configs/digits_mlp.toml` (start-up, data, compilation, 30 epochs, test evaluation,
checkpoints, plots) against PLAIN below: the same split sizes, MLP, dropout, Adam with cosine decay
and epochs, written as one `lax.scan` per epoch — the way a careful JAX user would write it by hand.
Every sample is a fresh process; each round runs, in an order that rotates from round to round:

    plain jax + optax          the script below (no compilation cache: jax's default)
    fnlearn train, first run   with an empty compilation cache (a fresh $XDG_CACHE_HOME)
    fnlearn train, second run  the same command again, the cache now warm (it must come after the first)
    fnlearn train (lean)       with --lean: a first run without checkpoints and plots, as PLAIN does
    fnlearn train at DIR       with --compare-with DIR: a first run of another checkout (PYTHONPATH=DIR),
                               to measure a change against the code before it

The table gives, for the wall time and the CPU time (user + system: on a loaded machine the steadier
of the two), medians over the rounds and the ratio to plain, and the second run against the first
(ratios: medians of the per-round ratios, so a round's load cancels). JAX_COMPILATION_CACHE_DIR and
FNLEARN_COMPILE_CACHE are removed from the environment of every process, so fnlearn uses its
default folder under each round's own $XDG_CACHE_HOME.

    python experiments/benchmarks/main_job.py [--repeats 5] [--lean] [--compare-with DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PLAIN = """
import jax, jax.numpy as jnp, numpy as np, optax
from sklearn.datasets import load_digits
x, y = load_digits(return_X_y=True)
rng = np.random.default_rng(0); idx = rng.permutation(len(x)); n_test = round(0.2 * len(x))
te, tr = idx[:n_test], idx[n_test:]
mu, sd = x[tr].mean(0), x[tr].std(0); sd[sd < 1e-6] = 1
xs = ((x - mu) / sd).astype(np.float32); y = y.astype(np.int32)
def init(key, sizes=(64, 128, 128, 10)):
    keys = jax.random.split(key, len(sizes) - 1)
    return [(jax.random.normal(k, (a, b)) * np.sqrt(2 / a), jnp.zeros(b)) for k, a, b in zip(keys, sizes[:-1], sizes[1:])]
def apply(p, x, key=None):
    for i, (w, b) in enumerate(p):
        x = x @ w + b
        if i < len(p) - 1:
            x = jax.nn.relu(x)
            if key is not None:
                keep = jax.random.bernoulli(jax.random.fold_in(key, i), 0.8, x.shape); x = jnp.where(keep, x / 0.8, 0)
    return x
steps_per_epoch = -(-len(tr) // 32); epochs = 30
opt = optax.adam(optax.cosine_decay_schedule(2e-3, epochs * steps_per_epoch))
params = init(jax.random.key(0)); state = opt.init(params)
@jax.jit
def epoch(params, state, key, xtr, ytr):
    perm = jax.random.permutation(key, len(xtr)); pad = steps_per_epoch * 32 - len(xtr)
    perm = jnp.concatenate([perm, perm[:pad]]).reshape(steps_per_epoch, 32)
    def step(carry, b):
        params, state, k = carry; k, sub = jax.random.split(k)
        loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(apply(p, xtr[b], sub), ytr[b]).mean()
        g = jax.grad(loss)(params); u, state = opt.update(g, state, params)
        return (optax.apply_updates(params, u), state, k), None
    (params, state, _), _ = jax.lax.scan(step, (params, state, key), perm)
    return params, state
xtr, ytr = jnp.asarray(xs[tr]), jnp.asarray(y[tr])
for e in range(epochs):
    params, state = epoch(params, state, jax.random.key(e + 1), xtr, ytr)
acc = (apply(params, jnp.asarray(xs[te])).argmax(-1) == y[te]).mean()
print(f"test accuracy {float(acc):.4f}")
"""

PLAIN_NAME = "plain jax + optax"
FIRST, SECOND, LEAN = (
    "fnlearn train, first run (empty cache)",
    "fnlearn train, second run (warm cache)",
    "fnlearn train, first run, lean",
)
LEAN_SETTINGS = ["--set", "training.checkpoint.every=0", "--set", "logging.plots=false"]


def timed(cmd, cwd, env) -> tuple[float, float]:
    """(wall, CPU) seconds of ``cmd`` in a fresh process; CPU = user + system time of the process,
    which a loaded machine inflates far less than the wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def clean_environment(xdg: Path) -> dict:
    """The environment of every sample: the CPU, no cache folder of the caller's, XDG in ``xdg``."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "FNLEARN_COMPILE_CACHE")
    }
    return env | {"JAX_PLATFORMS": "cpu", "XDG_CACHE_HOME": str(xdg), "MPLBACKEND": "Agg"}


def one_round(i: int, tmp: Path, lean: bool, other: Path | None) -> dict[str, tuple[float, float]]:
    """One sample of each command, fresh processes; the groups' order rotated by ``i`` (within a
    group, the second run follows the first)."""
    train = [sys.executable, "-m", "fnlearn", "train", str(ROOT / "configs" / "digits_mlp.toml"), "--quiet"]
    xdg = clean_environment(tmp / f"xdg{i}")
    groups = [
        [(PLAIN_NAME, [sys.executable, "plain.py"], clean_environment(tmp / "xdg_plain"))],
        [(FIRST, train + ["--out", f"first{i}"], xdg), (SECOND, train + ["--out", f"second{i}"], xdg)],
    ]
    if lean:
        groups.append(
            [(LEAN, train + ["--out", f"lean{i}", *LEAN_SETTINGS], clean_environment(tmp / f"xl{i}"))]
        )
    if other is not None:
        env = clean_environment(tmp / f"xdg_other{i}") | {"PYTHONPATH": str(other)}
        groups.append([(f"fnlearn train at {other}", train + ["--out", f"other{i}"], env)])
    k = i % len(groups)
    return {name: timed(cmd, tmp, env) for group in groups[k:] + groups[:k] for name, cmd, env in group}


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="fnlearn's main job: plain jax + optax, a first and a second run"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lean", action="store_true", help="also a first run without checkpoints and plots")
    parser.add_argument(
        "--compare-with", type=Path, metavar="DIR", help="also a first run of the checkout DIR"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = [PLAIN_NAME, FIRST, SECOND] + ([LEAN] if args.lean else [])
    if args.compare_with is not None:
        rows.append(f"fnlearn train at {args.compare_with}")
    wall, cpu = {name: [] for name in rows}, {name: [] for name in rows}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "plain.py").write_text(PLAIN)
        for i in range(args.repeats):
            for name, (w, c) in one_round(i, Path(tmp), args.lean, args.compare_with).items():
                wall[name].append(w)
                cpu[name].append(c)
            loads.append(os.getloadavg()[0])
            print(
                f"round {i + 1}: "
                + ", ".join(f"{n} {wall[n][-1]:.1f} s ({cpu[n][-1]:.1f} CPU-s)" for n in rows),
                flush=True,
            )
    print(
        f"main job, {args.repeats} rounds of fresh processes, {os.cpu_count()} cores, {cpu_name()}, "
        f"load average after each round {', '.join(f'{x:.1f}' for x in loads)}"
    )
    print("| command | wall median (s) | wall min (s) | wall ÷ plain | CPU median (s) | CPU ÷ plain |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name in rows:
        ratio = lambda values, base: statistics.median(v / b for v, b in zip(values, base))  # noqa: E731
        print(
            f"| {name} | {statistics.median(wall[name]):.2f} | {min(wall[name]):.2f} | {ratio(wall[name], wall[PLAIN_NAME]):.2f} "
            f"| {statistics.median(cpu[name]):.2f} | {ratio(cpu[name], cpu[PLAIN_NAME]):.2f} |"
        )
    second_over_first = {
        kind: statistics.median(s / f for s, f in zip(values[SECOND], values[FIRST]))
        for kind, values in (("wall", wall), ("CPU", cpu))
    }
    print(
        f"second run ÷ first run: {second_over_first['wall']:.2f} wall, {second_over_first['CPU']:.2f} CPU "
        "(medians of the per-round ratios; target ≤ 0.6)"
    )
    if args.json:
        numbers = {"wall_s": wall, "cpu_s": cpu, "load": loads, "second_over_first": second_over_first}
        args.json.write_text(json.dumps(numbers, indent=1))


if __name__ == "__main__":
    main()
