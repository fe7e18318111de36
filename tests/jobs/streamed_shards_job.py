"""One of two processes (FNLEARN_* in the environment, 4 CPU devices each): fit on streamed
batches over all 8 devices, each process yielding only its own half of every global batch.
Process 0 prints the result as one JSON line; ``streamed_fit`` is also the one-device reference."""

import json

import jax
import numpy as np

import fnlearn as fl
from fnlearn import distributed


def streamed_fit(process: int, processes: int, devices):
    digits = fl.data.load("digits")
    x, y = (np.asarray(digits.x[:256]) / 16).astype(np.float32), np.asarray(digits.y[:256])
    share = 32 // processes  # this process's rows of each global batch of 32
    rows = slice(process * share, (process + 1) * share)
    batches = [(x[i : i + 32][rows], y[i : i + 32][rows]) for i in range(0, 256, 32)]
    state = fl.TrainState.create(fl.nn.mlp([64, 32, 10]), fl.optim.sgd(0.1), jax.random.key(0))
    state, history = fl.fit(
        state,
        batches,
        loss=fl.distributions.get("categorical"),
        epochs=2,
        devices=devices,
        eval=(x[:64], y[:64]),
        progress=False,
    )
    return {
        "params": [np.asarray(leaf).tolist() for leaf in jax.tree.leaves(state.params)],
        "losses": [record["train_loss"] for record in history],
        "val_losses": [record["val_loss"] for record in history],
    }


if __name__ == "__main__":
    distributed.initialize(distributed.requested())
    result = streamed_fit(jax.process_index(), jax.process_count(), "all")
    if jax.process_index() == 0:
        print(json.dumps(result | {"devices": jax.device_count()}))
