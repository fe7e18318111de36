"""The largest MLP whose parameters + Adam state fit a fixed per-device memory cap: replicated
against sharded (``fit(..., shard="params")``), on 8 virtual CPU devices.

A CPU has no per-device memory limit, so the cap is an accounting one: a layout "fits" when the
most bytes of the train state (parameters, model state, optimizer state) that any one device holds
is at most the cap. The MLP is 64-W-W-W-10 (two W×W matrices: ~2W² parameters, with Adam's two
moments ~24·W² bytes); W runs over multiples of 8, so every weight matrix divides over the devices.

1. For each layout, the largest W whose per-device bytes fit the cap, found by bisection on the
   bytes the layout rule gives from the shapes alone (``fnlearn.sharding.leaf_spec`` on
   ``jax.eval_shape``; nothing is allocated). Replicated: Σ B ≤ cap. Sharded: Σ_sharded B/8 +
   Σ_replicated B ≤ cap, so W grows by about √8.
2. That W is built, placed on the 8 devices and measured (``fnlearn.sharding.bytes_per_device``,
   the sum of each device's addressable shards), then trained for a few full-batch Adam steps with
   ``fl.fit``; the trained state is measured again (the steps keep the layout). The same steps on
   one device (no cap) are the reference: the losses must fall and agree with it (rtol 1e-4).

    python experiments/benchmarks/sharding.py [--cap-mb 64] [--steps 4] [--quick] [--out DIR]

Writes DIR/sharding.json and DIR/sharding.md (default DIR: out/benchmarks) and prints the table.
"""

from __future__ import annotations

import os

DEVICES = 8
_FLAG = f"--xla_force_host_platform_device_count={DEVICES}"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):  # before jax starts its CPU backend
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FLAG}".strip()

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

import fnlearn as fl  # noqa: E402
from fnlearn import atomic, parallel, sharding  # noqa: E402

MB = 2**20
IN, OUT = 64, 10
LAYOUTS = {"replicated": None, "sharded": "params"}


def new_state(width: int):
    """The MLP with Adam at rate 0.1/W: an update moves each of a unit's W inputs by about the
    rate, so a fixed rate that suits W = 1000 makes W = 5000 diverge (μP's 1/width scaling)."""
    model = fl.nn.mlp([IN, width, width, width, OUT])
    return fl.TrainState.create(model, fl.optim.adam(0.1 / width), jax.random.key(0))


def trained_part(state):
    return {"params": state.params, "model_state": state.model_state, "opt_state": state.opt_state}


def rule_bytes(width: int, shard) -> int:
    """Per-device bytes of the state at ``width`` under ``shard``, from the shapes and the rule."""
    shapes = jax.eval_shape(lambda: trained_part(new_state(width)))
    total = 0
    for leaf in jax.tree.leaves(shapes):
        split = shard is not None and parallel.AXIS in sharding.leaf_spec(leaf.shape, DEVICES)
        total += leaf.size * leaf.dtype.itemsize // (DEVICES if split else 1)
    return total


def largest_width(cap: int, shard, step: int = DEVICES) -> int:
    """The largest multiple of ``step`` whose per-device bytes are ≤ cap (bytes grow with width)."""
    low, high = 0, step
    while rule_bytes(high, shard) <= cap:
        low, high = high, 2 * high
    while high - low > step:
        middle = (low + high) // 2 // step * step
        low, high = (middle, high) if rule_bytes(middle, shard) <= cap else (low, middle)
    return low


def train(state, steps: int, devices, shard):
    """``steps`` full-batch steps on 64 examples of a random linear teacher: (state, losses, seconds)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, IN)).astype(np.float32)
    y = (x @ rng.normal(size=(IN, OUT))).argmax(axis=1).astype(np.int32)
    tick = time.perf_counter()
    state, history = fl.fit(
        state,
        (x, y),
        loss=fl.distributions.get("categorical"),
        epochs=steps,  # one full-batch step an epoch
        batch_size=64,
        devices=devices,
        shard=shard,
        driver="loop",
        progress=False,
    )
    return state, [record["train_loss"] for record in history], time.perf_counter() - tick


def train_largest(name: str, cap: int, steps: int) -> dict:
    """The largest width of layout ``name`` under ``cap``: measured, trained on the 8 devices, and
    trained again on one device (no cap there) as the reference its losses must equal."""
    shard = LAYOUTS[name]
    width = largest_width(cap, shard)
    placed = sharding.place(new_state(width), parallel.data_mesh(DEVICES), shard)
    before = sharding.bytes_per_device(trained_part(placed))
    state, losses, seconds = train(placed, steps, DEVICES, shard)
    after = sharding.bytes_per_device(trained_part(state))
    params = sum(leaf.size for leaf in jax.tree.leaves(state.params))
    del placed, state  # before the reference allocates its own copy
    _, one_device, _ = train(new_state(width), steps, None, None)
    return {
        "layout": name,
        "width": width,
        "params": int(params),
        "per_device_mb_rule": rule_bytes(width, shard) / MB,
        "per_device_mb_placed": before / MB,
        "per_device_mb_trained": after / MB,
        "next_width_mb_rule": rule_bytes(width + DEVICES, shard) / MB,
        "losses": losses,
        "one_device_losses": one_device,
        "max_rel_loss_diff": float(np.max(np.abs(np.subtract(losses, one_device)) / np.abs(one_device))),
        "fit_seconds": seconds,
    }


def table(rows: list[dict], cap_mb: float) -> str:
    lines = [
        f"Largest MLP 64-W-W-W-10 (Adam) whose train state fits {cap_mb:g} MB per device, {DEVICES} "
        "virtual CPU devices:",
        "",
        "| layout | W | parameters | MB/device placed | MB/device trained | W+8 needs (MB) | "
        "loss first → last | ≠ 1 device (rel.) | fit s (compile + steps) |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['layout']} | {r['width']} | {r['params'] / 1e6:.1f}M | {r['per_device_mb_placed']:.2f} | "
            f"{r['per_device_mb_trained']:.2f} | {r['next_width_mb_rule']:.2f} | "
            f"{r['losses'][0]:.3f} → {r['losses'][-1]:.3f} | {r['max_rel_loss_diff']:.1e} | {r['fit_seconds']:.1f} |"
        )
    replicated, sharded = rows
    lines += [
        "",
        f"Sharded: {sharded['params'] / replicated['params']:.1f}× the parameters of the largest replicated "
        f"MLP under the same cap (ideal ≈ {DEVICES}×: the width grows by ≈ √{DEVICES}).",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap-mb", type=float, default=64.0, help="per-device cap on the train state")
    parser.add_argument("--steps", type=int, default=4, help="full-batch Adam steps to train")
    parser.add_argument("--quick", action="store_true", help="smoke: a 4 MB cap and 2 steps")
    parser.add_argument("--out", default="out/benchmarks")
    args = parser.parse_args(argv)
    cap_mb, steps = (4.0, 2) if args.quick else (args.cap_mb, args.steps)
    if len(jax.devices()) < DEVICES:
        raise SystemExit(f"needs {DEVICES} devices, jax sees {len(jax.devices())} (XLA_FLAGS set too late?)")
    rows = [train_largest(name, int(cap_mb * MB), steps) for name in LAYOUTS]
    for r in rows:
        if r["per_device_mb_trained"] > cap_mb or r["per_device_mb_placed"] != r["per_device_mb_rule"]:
            raise SystemExit(f"{r['layout']}: measured bytes disagree with the rule or exceed the cap: {r}")
        if not r["losses"][-1] < r["losses"][0] or r["max_rel_loss_diff"] > 1e-4:
            raise SystemExit(f"{r['layout']}: did not train, or differs from one device: {r}")
    text = table(rows, cap_mb)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"cap_mb": cap_mb, "devices": DEVICES, "steps": steps, "jax": jax.__version__}
    atomic.write_text(out / "sharding.json", json.dumps(meta | {"rows": rows}, indent=2) + "\n")
    atomic.write_text(out / "sharding.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
