"""Wall time of the README's main job against a plain jax + optax script that does the same.

`fnlearn train configs/digits_mlp.toml` (start-up, data, compilation, 30 epochs, test evaluation,
run directory) against PLAIN below: the same split sizes, MLP, dropout, Adam with cosine decay and
epochs, written as one `lax.scan` per epoch — the way a careful JAX user would write it by hand.
Both run as fresh processes, alternately, N times; the table gives medians and the ratio.
fnlearn is timed twice: as shipped (checkpoints every 10 epochs and plots) and lean (no
checkpoints, no plots), which is what the plain script does.

    python experiments/benchmarks/main_job.py [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
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


def timed(cmd, cwd) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, env=os.environ | {"JAX_PLATFORMS": "cpu"})
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description="fnlearn's main job against a plain jax + optax script")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    fnlearn = [sys.executable, "-m", "fnlearn", "train", str(ROOT / "configs" / "digits_mlp.toml"), "--quiet"]
    times = {"plain jax + optax": [], "fnlearn train (as shipped)": [], "fnlearn train (lean)": []}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "plain.py").write_text(PLAIN)
        for i in range(args.repeats):
            times["plain jax + optax"].append(timed([sys.executable, "plain.py"], tmp))
            times["fnlearn train (as shipped)"].append(timed(fnlearn + ["--out", f"shipped{i}"], tmp))
            times["fnlearn train (lean)"].append(
                timed(
                    fnlearn
                    + [
                        "--out",
                        f"lean{i}",
                        "--set",
                        "training.checkpoint.every=0",
                        "--set",
                        "logging.plots=false",
                    ],
                    tmp,
                )
            )
    base = statistics.median(times["plain jax + optax"])
    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "unknown CPU",
        )
        if Path("/proc/cpuinfo").exists()
        else "unknown CPU"
    )
    print(f"main job wall time, {args.repeats} alternating runs, {os.cpu_count()} cores, {cpu}")
    print("| command | median (s) | min (s) | ratio to plain |\n| --- | --- | --- | --- |")
    for name, values in times.items():
        print(
            f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | {statistics.median(values) / base:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(times, indent=1))


if __name__ == "__main__":
    main()
