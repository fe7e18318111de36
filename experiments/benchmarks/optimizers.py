"""One jitted update of each fnlearn optimizer against the optax one, on a 10M-parameter pytree.

An update reads the parameters, the gradients and the optimizer state and writes the new
parameters and state; that traffic (in bytes) divided by the time is the achieved memory
bandwidth. fnlearn and optax are timed interleaved in one process (alternating which goes first),
each timing is the median over repeats, so a shared, noisy machine affects both alike.

    python experiments/benchmarks/optimizers.py [--quick] [--repeats 15] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import fnlearn.optim as fo
from fnlearn.tree import num_params


def make_params(total: int):
    """An MLP-shaped tree with about ``total`` float32 parameters (two square matrices, a
    rectangular one, biases)."""
    width = int(np.sqrt(total * 0.42))
    last = max(1, int((total - 2 * width * width) / width))
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    return {
        "layer1": {"w": jax.random.normal(keys[0], (width, width)), "b": jnp.zeros(width)},
        "layer2": {"w": jax.random.normal(keys[1], (width, width)), "b": jnp.zeros(width)},
        "out": {"w": jax.random.normal(keys[2], (width, last)), "b": jnp.zeros(last)},
    }


def pairs():
    """(name, fnlearn optimizer, optax optimizer) with identical settings."""
    return [
        ("sgd", fo.sgd(1e-3), optax.sgd(1e-3)),
        ("sgd_momentum", fo.sgd(1e-3, momentum=0.9), optax.sgd(1e-3, momentum=0.9)),
        (
            "sgd_nesterov",
            fo.sgd(1e-3, momentum=0.9, nesterov=True),
            optax.sgd(1e-3, momentum=0.9, nesterov=True),
        ),
        (
            "ema_momentum",
            fo.ema_momentum(1e-3),
            optax.chain(optax.ema(0.9, debias=False), optax.scale_by_learning_rate(1e-3)),
        ),
        ("adagrad", fo.adagrad(1e-3), optax.adagrad(1e-3)),
        ("rmsprop", fo.rmsprop(1e-3), optax.rmsprop(1e-3)),
        (
            "rmsprop_centered_momentum",
            fo.rmsprop(1e-3, centered=True, momentum=0.9),
            optax.rmsprop(1e-3, centered=True, momentum=0.9),
        ),
        ("adam", fo.adam(1e-3), optax.adam(1e-3)),
        ("adamw", fo.adamw(1e-3), optax.adamw(1e-3)),
        ("amsgrad", fo.amsgrad(1e-3), optax.amsgrad(1e-3)),
        ("lion", fo.lion(1e-3), optax.lion(1e-3)),
    ]


def nbytes(tree) -> int:
    return int(sum(np.asarray(x).nbytes for x in jax.tree_util.tree_leaves(tree)))


def compiled_step(optimizer, apply_updates):
    @jax.jit
    def step(params, state, grads):
        updates, state = optimizer.update(grads, state, params)
        return apply_updates(params, updates), state

    return step


def xla_cost(step, args) -> dict:
    """XLA's own count of the bytes the compiled update reads and writes, and of its flops.

    Deterministic, so it compares the two programs where timings on a shared machine cannot.
    """
    cost = step.lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return {
        "bytes": float(cost.get("bytes accessed", float("nan"))),
        "flops": float(cost.get("flops", float("nan"))),
    }


def time_once(step, args) -> float:
    start = time.perf_counter()
    jax.block_until_ready(step(*args))
    return time.perf_counter() - start


def bench(total: int, repeats: int):
    params = make_params(total)
    grads = jax.tree_util.tree_map(lambda x: 1e-3 * jnp.ones_like(x), params)
    rows = []
    for name, ours, theirs in pairs():
        candidates = {
            "fnlearn": (compiled_step(ours, fo.apply_updates), (params, ours.init(params), grads)),
            "optax": (
                compiled_step(theirs, optax.apply_updates),
                (params, theirs.init(params), grads),
            ),
        }
        for step, args in candidates.values():
            time_once(step, args)  # compile and warm up
        times = {k: [] for k in candidates}
        for r in range(repeats):
            order = list(candidates) if r % 2 == 0 else list(reversed(candidates))
            for k in order:
                times[k].append(time_once(*candidates[k]))
        paired = [a / b for a, b in zip(times["fnlearn"], times["optax"], strict=True)]
        xla = {k: xla_cost(step, a) for k, (step, a) in candidates.items()}
        state_bytes = nbytes(candidates["fnlearn"][1][1])
        # read θ, g, state; write θ, state
        moved = 2 * nbytes(params) + nbytes(grads) + 2 * state_bytes
        t_ours, t_ref = statistics.median(times["fnlearn"]), statistics.median(times["optax"])
        rows.append(
            {
                "optimizer": name,
                "fnlearn_ms": 1e3 * t_ours,
                "optax_ms": 1e3 * t_ref,
                "ratio": t_ours / t_ref,
                "paired_ratio_median": statistics.median(paired),
                "xla_bytes_fnlearn": xla["fnlearn"]["bytes"],
                "xla_bytes_optax": xla["optax"]["bytes"],
                "xla_flops_fnlearn": xla["fnlearn"]["flops"],
                "xla_flops_optax": xla["optax"]["flops"],
                "bytes_moved_mb": moved / 1e6,
                "fnlearn_gb_s": moved / t_ours / 1e9,
                "optax_gb_s": moved / t_ref / 1e9,
            }
        )
        print(
            f"{name:27s} fnlearn {rows[-1]['fnlearn_ms']:8.2f} ms  optax {rows[-1]['optax_ms']:8.2f} ms  "
            f"ratio {rows[-1]['ratio']:.3f} (paired {rows[-1]['paired_ratio_median']:.3f})  "
            f"XLA bytes +{rows[-1]['xla_bytes_fnlearn'] - rows[-1]['xla_bytes_optax']:.0f} "
            f"flops +{rows[-1]['xla_flops_fnlearn'] - rows[-1]['xla_flops_optax']:.0f}  moved {rows[-1]['bytes_moved_mb']:7.1f} MB  "
            f"{rows[-1]['fnlearn_gb_s']:6.2f} / {rows[-1]['optax_gb_s']:6.2f} GB/s"
        )
    return params, rows


def plot(rows, path: Path, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["optimizer"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    y = np.arange(len(rows))
    ax1.barh(y, [r["ratio"] for r in rows], color="tab:blue")
    ax1.axvline(1.0, color="k", lw=1)
    ax1.axvline(1.05, color="tab:red", lw=1, ls="--", label="target 1.05")
    ax1.set_yticks(y, names)
    ax1.set_xlabel("median time fnlearn / optax")
    ax1.set_xlim(0, 1.45 * max(1.05, max(r["ratio"] for r in rows)))
    ax1.legend(loc="lower right")
    ax1.set_title("update time ratio")
    ax2.barh(y - 0.2, [r["fnlearn_gb_s"] for r in rows], height=0.4, label="fnlearn")
    ax2.barh(y + 0.2, [r["optax_gb_s"] for r in rows], height=0.4, label="optax")
    ax2.set_xlabel("achieved bandwidth (GB/s) = bytes moved / median time")
    ax2.legend(loc="lower right")
    ax2.set_title("memory bandwidth")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/benchmark_optimizers")
    parser.add_argument("--quick", action="store_true", help="1M parameters, 5 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--params", type=int, default=None, help="number of parameters (default 10M)")
    args = parser.parse_args()
    total = args.params or (1_000_000 if args.quick else 10_000_000)
    repeats = args.repeats or (5 if args.quick else 15)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    device = jax.devices()[0]
    print(f"device: {device.device_kind} ({device.platform}); repeats: {repeats}")
    params, rows = bench(total, repeats)
    n = num_params(params)
    ratios = [r["ratio"] for r in rows]
    summary = {
        "device": f"{device.device_kind} ({device.platform})",
        "num_params": int(n),
        "repeats": repeats,
        "rows": rows,
        "median_ratio": statistics.median(ratios),
        "max_ratio": max(ratios),
        "median_paired_ratio": statistics.median(r["paired_ratio_median"] for r in rows),
    }
    (out / "optimizers.json").write_text(json.dumps(summary, indent=2))
    plot(
        rows,
        out / "optimizers.png",
        f"{n / 1e6:.1f}M float32 parameters on {summary['device']}, median of {repeats}",
    )
    print(
        f"{n:,} parameters; ratio median {summary['median_ratio']:.3f}, max {summary['max_ratio']:.3f}; wrote {out}"
    )


if __name__ == "__main__":
    main()
