"""Run under XLA_FLAGS=--xla_force_host_platform_device_count=8: fit with the state replicated
and sharded (``shard="params"``), and a sharded run interrupted and resumed; prints one JSON line."""

import json
import sys
import tempfile

import jax
import numpy as np

import fnlearn as fl
from fnlearn import parallel, sharding


def data():
    digits = fl.data.load("digits")
    parts, _ = fl.data.standardize(fl.data.split(digits, val=0.0, test=0.2, seed=0))
    return parts.train.x[:256], parts.train.y[:256]  # 8 batches of 32 (4 per device) an epoch


def new_state():
    # widths divisible by 8: every weight, momentum and BatchNorm statistic shards; the 10-wide
    # output bias and the scalars (step, learning rate, key) stay replicated. SGD, not Adam: Adam's
    # g/sqrt(v) turns the rounding noise of the (exactly zero) gradients of the biases in front of
    # BatchNorm into ±lr steps, so its parameters differ by more than the float error of the layouts
    model = fl.nn.mlp([64, 64, 10], norm="batch_norm")
    return fl.TrainState.create(model, fl.optim.sgd(0.05, momentum=0.9), jax.random.key(0))


def train(state, shard, epochs=3, **kwargs):
    kwargs = {"driver": "loop"} | kwargs
    return fl.fit(
        state,
        DATA,
        loss=fl.distributions.get("categorical"),
        epochs=epochs,
        batch_size=32,
        devices="all",
        shard=shard,
        **kwargs,
    )


def trained(state):
    return {"params": state.params, "model_state": state.model_state, "opt_state": state.opt_state}


def max_diff(a, b) -> float:
    return max(
        float(np.max(np.abs(np.asarray(u) - np.asarray(v))))
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def layout_kept(state) -> bool:
    """Every leaf of the trained state still has the layout ``state_sharding`` gives it."""
    want = sharding.state_sharding(trained(state), parallel.data_mesh("all"))
    return all(leaf.sharding == s for leaf, s in zip(jax.tree.leaves(trained(state)), jax.tree.leaves(want)))


def expected_bytes(tree, n: int) -> int:
    """Σ_sharded B/n + Σ_replicated B, from the shapes and the rule alone."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        spec = sharding.leaf_spec(leaf.shape, n)
        total += leaf.nbytes // (n if parallel.AXIS in spec else 1)
    return total


def from_whole_copies() -> bool:
    """The path of several processes (each holding the whole state) gives what device_put gives."""
    mesh = parallel.data_mesh("all")
    state = new_state()
    shardings = sharding.state_sharding(state, mesh)
    built = jax.tree.map(sharding._from_whole_copy, state, shardings)
    put = sharding.place(state, mesh, "params")
    pairs = zip(jax.tree.leaves(built), jax.tree.leaves(put))
    same = all(a.sharding == b.sharding for a, b in pairs)
    return (
        same
        and max_diff(jax.random.key_data(built.key), jax.random.key_data(put.key)) == 0
        and (max_diff(trained(built), trained(put)) == 0)
    )


def resumed(uninterrupted):
    """Train 2 epochs with checkpoints, then resume to 3: the same as 3 epochs straight."""
    with tempfile.TemporaryDirectory() as run_dir:
        every = {"run_dir": run_dir, "checkpoint_every": 2}  # a save at epochs 2 and 3 (the last)
        two, _ = train(new_state(), "params", epochs=2, **every)
        restored, _ = fl.checkpoint.restore(f"{run_dir}/checkpoints/last", new_state())  # one device
        restored_diff = max_diff(trained(two), trained(restored))
        three, history = train(new_state(), "params", **every, resume=True)
    return {
        "restored_diff": restored_diff,
        "resumed_diff": max_diff(trained(three), trained(uninterrupted)),
        "resumed_epochs": [r["epoch"] for r in history],
        "resumed_layout_kept": layout_kept(three),
    }


def main():
    replicated, h_rep = train(new_state(), None)
    placed = sharding.place(new_state(), parallel.data_mesh("all"), "params")
    sharded, h_sh = train(placed, "params")  # already in place: fit's first step donates these buffers
    scanned, h_scan = train(new_state(), "params", driver="scan")
    whole = jax.tree.map(np.asarray, trained(replicated))
    result = {
        "devices": len(jax.devices()),
        "bytes_replicated": sharding.bytes_per_device(trained(replicated)),
        "bytes_sharded": sharding.bytes_per_device(trained(sharded)),
        "bytes_expected": expected_bytes(whole, len(jax.devices())),
        "bytes_total": sum(leaf.nbytes for leaf in jax.tree.leaves(whole)),
        "replicated_leaf_bytes": sum(
            leaf.nbytes
            for leaf in jax.tree.leaves(whole)
            if parallel.AXIS not in sharding.leaf_spec(leaf.shape, 8)
        ),
        "max_diff": max_diff(trained(sharded), trained(replicated)),
        "scan_max_diff": max_diff(trained(scanned), trained(replicated)),
        "losses": [[r["train_loss"] for r in h] for h in (h_rep, h_sh, h_scan)],
        "layout_kept": [layout_kept(sharded), layout_kept(scanned)],
        # the sharded leaves' buffers went to the first step (a scalar it returns unchanged stays)
        "donated": all(leaf.is_deleted() for leaf in jax.tree.leaves(trained(placed)) if leaf.ndim),
        "first_weight_shards": len(sharded.params[0][0]["w"].sharding.device_set),
    }
    print(json.dumps(result | resumed(sharded) | {"from_whole_copies": from_whole_copies()}))


DATA = data()

if __name__ == "__main__":
    sys.exit(main())
