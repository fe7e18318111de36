"""A training run for the resume test: `python resume_job.py RUN_DIR OUT.npz [--resume]`.

Digits, an MLP with dropout and BatchNorm (so the PRNG key, the running statistics and the data
order must all be restored), Adam with a cosine schedule, a checkpoint every epoch, and early
stopping that restores the best weights: with min_delta = 0.05 only the first few epochs count as
improvements, so the final parameters are an early epoch's, which a resumed run must have kept in
its checkpoint (with the stopping counters) to end as the uninterrupted run does.
"""

import sys

import jax
import numpy as np

import fnlearn as fl

EPOCHS = 10  # tests/test_checkpoint.py reads it from here
# each epoch sleeps this long, so the run outlasts the test's random wait (≤ 1 s) after epoch 3:
# the 7 epochs left sleep 1.4 s
EPOCH_SLEEP_S = 0.2


def main(run_dir, out, resume):
    digits = fl.data.load("digits")
    parts, _ = fl.data.standardize(fl.data.split(digits, val=0.1, test=0.2, seed=0))
    model = fl.nn.mlp([64, 64, 64, 10], dropout=0.2, norm="batch_norm")
    tx = fl.optim.adam(fl.optim.schedules.cosine_decay_schedule(3e-3, EPOCHS * 40))
    state = fl.TrainState.create(model, tx, jax.random.key(0))
    slow = fl.callbacks.LambdaCallback(on_epoch_end=lambda ctx: __import__("time").sleep(EPOCH_SLEEP_S))
    early = fl.callbacks.EarlyStopping("val_loss", patience=100, min_delta=0.05, restore_best=True)
    state, history = fl.fit(
        state,
        (parts.train.x, parts.train.y),
        loss=fl.distributions.get("categorical"),
        epochs=EPOCHS,
        batch_size=32,
        eval=(parts.val.x, parts.val.y),
        run_dir=run_dir,
        resume=resume,
        callbacks=[slow, early],
        best_metric="val_loss",
        # auto's choice depends on timing, so two separate runs could choose differently; a resumed
        # run keeps its checkpoint's choice (tests/test_drivers.py), so fix it here
        driver="loop",
    )
    leaves = {
        f"leaf{i}": np.asarray(leaf)
        for i, leaf in enumerate(jax.tree.leaves((state.params, state.model_state, state.opt_state)))
    }
    np.savez(
        out,
        **leaves,
        key=np.asarray(jax.random.key_data(state.key)),
        epochs=np.array([r["epoch"] for r in history]),
        best_epoch=np.array(early.best_epoch),
        val_loss=np.array([r["val_loss"] for r in history]),
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--resume" in sys.argv)
