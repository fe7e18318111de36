"""Run under XLA_FLAGS=--xla_force_host_platform_device_count=8: fit on 1 and on 8 devices."""

import json
import sys

import jax
import numpy as np

import fnlearn as fl
from fnlearn.errors import FnlearnError


def train(devices, batch_size=32, tx=None, driver="auto"):
    digits = fl.data.load("digits")
    parts, _ = fl.data.standardize(fl.data.split(digits, val=0.0, test=0.2, seed=0))
    # 256 examples: 8 batches of 32 (4 per device) an epoch are as good a test of the sharded step as
    # the 45 of the whole training split, at a sixth of the 8-device run time
    x, y = parts.train.x[:256], parts.train.y[:256]
    model = fl.nn.mlp([64, 64, 10], dropout=0.1, norm="batch_norm")
    state = fl.TrainState.create(model, tx or fl.optim.sgd(0.05, momentum=0.9), jax.random.key(0))
    state, history = fl.fit(
        state,
        (x, y),
        loss=fl.distributions.get("categorical"),
        epochs=3,
        batch_size=batch_size,
        devices=devices,
        driver=driver,
    )
    return state, history


def main():
    one, h1 = train(None, driver="scan")
    eight, h8 = train("all", driver="loop")  # the loop driver's step on the mesh, against the scan on one
    _, h8_scan = train("all", driver="scan")
    w = eight.params[0][0]["w"]
    diffs = [
        float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
        for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(eight.params))
    ]
    try:
        train("all", batch_size=30)
        error = None
    except FnlearnError as e:
        error = str(e)
    # Adam divides by sqrt(v): near-zero gradients that differ in rounding give ±lr steps, so
    # compare its losses, and compare parameters under SGD, which does not amplify rounding
    _, a1 = train(None, tx=fl.optim.adam(1e-3))
    _, a8 = train("all", tx=fl.optim.adam(1e-3))
    print(
        json.dumps(
            {
                "adam_losses": [[r["train_loss"] for r in a1], [r["train_loss"] for r in a8]],
                "devices": len(jax.devices()),
                "param_devices": len(w.sharding.device_set),
                "max_param_diff": max(diffs),
                "losses": [[r["train_loss"] for r in h1], [r["train_loss"] for r in h8]],
                "scan_losses": [[r["train_loss"] for r in h1], [r["train_loss"] for r in h8_scan]],
                "error": error,
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
