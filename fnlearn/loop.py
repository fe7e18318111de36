"""The training loop: ``fit`` and ``evaluate``.

Where the speed comes from: the training data lives on the device, and the steps between two host
interactions run as **one compiled ``lax.scan``** — each step gathers its minibatch from the
device-resident arrays by index, so there is no Python and no host→device copy per step. The host
wakes up every ``log_every`` steps and at every epoch end, to log, evaluate, checkpoint and run the
callbacks. A scan of k steps is compiled once per distinct k (at most three: the chunk, the epoch's
remainder, the run's last chunk).

Data order: each epoch draws a fresh permutation of the training set from
``fold_in(order_key, epoch)``, without replacement (``shuffled_range``: jax.random.permutation's
algorithm with a sort that is cheaper on a CPU). With ``drop_last=False`` (the default) the last
partial batch is filled up with examples of weight 0 — every example counts exactly once per epoch,
nothing is recompiled, and the zero-weight rows change neither the loss nor its gradient (BatchNorm's
batch statistics do see them; use ``drop_last=True`` with BatchNorm and tiny datasets). With
``drop_last=True`` the remainder is skipped (a different remainder every epoch).

For data that does not fit in device memory, pass an iterable of host batches ``(x, y)`` or
``(x, y, w)`` as ``train`` instead of arrays: the batches are copied to the device one step ahead
(prefetching) and the jitted step runs once per batch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn import atomic, checks, parallel
from fnlearn import data as fldata
from fnlearn.callbacks import Callback, FitContext, NonFiniteError, monitored_value
from fnlearn.errors import FnlearnError
from fnlearn.train import Objective, TrainState, eval_sums, make_train_step, objective, train_step

__all__ = ["fit", "evaluate", "History"]

History = list  # one dict per epoch: {"epoch", "step", "time", "train_*", "val_*", ...}

# The data order of a run comes from fold_in(state.key, ORDER_SALT). Step t's key is
# fold_in(state.key, t) with t < 2³¹ (an int32 step), so a salt ≥ 2³¹ never coincides with one.
ORDER_SALT = 0x8000_0D47


# --------------------------------------------------------------------------------------------
# input checks: before anything is compiled


def check_arrays(state: TrainState, x, y, obj: Objective, *, name: str, batch_size: int | None = None) -> None:
    """One clear error for the usual mistakes in (x, y), before any compilation. With a
    distribution head the head judges the targets (class ids, counts, reals), else the dataset rules do."""
    if obj.head is None:
        x_np, y_np = fldata.check_dataset(x, y, name=name)
    else:
        x_np, y_np = fldata.check_inputs(x, y, name=name)
    expected = tuple(state.model.input_shape)
    if tuple(x_np.shape[1:]) != expected:
        raise FnlearnError(
            f"{name}: x has examples of shape {tuple(x_np.shape[1:])}, but the model takes {expected}. "
            f"Build the model for this data (the first entry of mlp's sizes is the input width)."
        )
    if obj.head is not None:
        obj.head.check_targets(y_np, state.model.output_shape[-1])
    if batch_size is not None and not 0 < batch_size <= len(x_np):
        raise FnlearnError(
            f"{name}: batch_size={batch_size} but the data has {len(x_np)} examples. "
            f"Use a batch size between 1 and {len(x_np)}."
        )


def check_state(state, owner: str) -> None:
    """``state`` is a ``TrainState`` (``fl.TrainState.create(model, tx, key)``)."""
    if not isinstance(state, TrainState):
        raise FnlearnError(
            f"{owner}: state must be a fl.TrainState (fl.TrainState.create(model, tx, key)), got {checks.show(state)}."
        )


def check_pair(data, owner: str, name: str):
    """``data`` is a pair ``(x, y)``; returns it as a tuple."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise FnlearnError(f"{owner}: {name} must be a pair (x, y) of arrays, got {checks.show(data)}.")
    return tuple(data)


def check_length(owner: str, epochs, steps) -> None:
    """Exactly one of ``epochs`` and ``steps``, a positive integer."""
    if (epochs is None) == (steps is None):
        raise FnlearnError(f"{owner} needs exactly one of epochs=... or steps=... (how long to train).")
    if epochs is not None:
        checks.positive_int(owner, "epochs", epochs)
    if steps is not None:
        checks.positive_int(owner, "steps", steps)


def _check_fit_arguments(args: dict) -> None:
    """fit's scalar arguments, each by its rule, before anything else runs."""
    check_state(args["state"], "fit")
    check_length("fit", args["epochs"], args["steps"])
    for name in ("batch_size", "eval_every", "eval_batch_size", "keep_checkpoints"):
        checks.positive_int("fit", name, args[name])
    for name in ("log_every", "checkpoint_every"):
        if args[name] is not None:
            checks.positive_int("fit", name, args[name], "None switches it off.")
    for name in ("drop_last", "log_norms", "resume"):
        checks.boolean("fit", name, args[name])
    if args["progress"] is not None:
        checks.boolean("fit", "progress", args["progress"], "None shows it when stderr is a terminal.")
    for name in ("penalty", "augment"):
        if args[name] is not None and not callable(args[name]):
            raise FnlearnError(f"fit: {name} must be a function or None, got {checks.show(args[name])}.")
    callbacks = args["callbacks"]
    if not isinstance(callbacks, (list, tuple)) or not all(isinstance(cb, Callback) for cb in callbacks):
        raise FnlearnError(
            f"fit: callbacks must be a list of fl.callbacks.Callback objects, got {checks.show(args['callbacks'])}."
        )
    if args["run_dir"] is not None and not isinstance(args["run_dir"], (str, Path)):
        raise FnlearnError(f"fit: run_dir must be a directory name or None, got {checks.show(args['run_dir'])}.")
    if args["best_metric"] is not None and not isinstance(args["best_metric"], str):
        raise FnlearnError(
            "fit: best_metric must be a metric name such as 'val_loss', got "
            f"{checks.show(args['best_metric'])}."
        )


# --------------------------------------------------------------------------------------------
# the data order, on the device


def shuffle_rounds(n: int) -> tuple[int, int]:
    """(random bits per round, rounds) of ``shuffled_range(key, n)``: each sort key packs b = 32 − k
    random bits above the k = bit_length(n − 1) bits of a position, and there are enough rounds
    that b · rounds ≥ 3 · log2(n) (jax.random.permutation's rule, with b = 32)."""
    b = 32 - max(1, (n - 1).bit_length())
    return b, max(1, math.ceil(3 * math.log2(max(n, 2)) / b))


def shuffled_range(key, n: int) -> jax.Array:
    """A uniformly random permutation of 0..n−1 (int32), as ``jax.random.permutation(key, n)`` but
    about twice as fast on a CPU.

    Each round sorts the current order by fresh random keys, ties kept in the current order:
    jax.random.permutation's algorithm. The difference is the sort: each key packs its random bits
    above its position into one uint32, and one array of integers sorts several times faster on
    XLA:CPU than the (key, position) pairs of ``lax.sort_key_val``. Over the rounds the order is
    the lexicographic sort of iid random words, hence exactly uniform unless two examples tie in
    every round: probability ≤ n²/2 · 2^(−b·rounds) ≤ 1/(2n) (see ``shuffle_rounds``).
    For n > 2²⁴ (fewer than 8 random bits per key) it is ``jax.random.permutation``.
    """
    bits, rounds = shuffle_rounds(n)
    if bits < 8:
        return jax.random.permutation(key, n)
    position = jnp.arange(n, dtype=jnp.uint32)
    low = jnp.uint32((1 << (32 - bits)) - 1)
    order = position
    for r in range(rounds):
        random = jax.random.bits(jax.random.fold_in(key, r), (n,), jnp.uint32)
        order = order[jnp.sort((random & ~low) | position) & low]
    return order.astype(jnp.int32)


def epoch_order(order_key, epoch, n: int, batch_size: int, drop_last: bool):
    """Indices [steps, batch] and weights [steps, batch] of one epoch: a permutation, padded with
    weight-0 repeats of its first examples (or truncated, with ``drop_last``)."""
    perm = shuffled_range(jax.random.fold_in(order_key, epoch), n)
    steps = n // batch_size if drop_last else -(-n // batch_size)
    total = steps * batch_size
    if total <= n:
        return perm[:total].reshape(steps, batch_size), jnp.ones((steps, batch_size), jnp.float32)
    pad = total - n
    indices = jnp.concatenate([perm, perm[:pad]])
    weights = jnp.concatenate([jnp.ones((n,), jnp.float32), jnp.zeros((pad,), jnp.float32)])
    return indices.reshape(steps, batch_size), weights.reshape(steps, batch_size)


def steps_per_epoch(n: int, batch_size: int, drop_last: bool) -> int:
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def _scan_steps(state, x, y, indices, weights, obj, augment, batch_sharding=None, norms=False):
    """k train steps as one lax.scan over rows of (indices, weights); returns stacked metrics.
    With ``batch_sharding`` each gathered minibatch is split across the devices of a mesh."""

    def body(state, row):
        idx, w = row
        batch = (x[idx], y[idx], w)
        if batch_sharding is not None:
            batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
        return train_step(state, batch, obj, augment, norms)

    return jax.lax.scan(body, state, (indices, weights))


def _scan_epochs(state, x, y, order_key, first_epoch, *, count, batch_size, drop_last, obj, augment, batch_sharding=None, norms=False):
    """``count`` whole epochs from ``first_epoch`` in one program: an outer scan over the epochs
    draws each one's order on the device, an inner one (``_scan_steps``) takes its steps. Returns the
    metrics stacked as [count · steps_per_epoch]."""

    def one_epoch(state, epoch):
        indices, weights = epoch_order(order_key, epoch, len(x), batch_size, drop_last)
        return _scan_steps(state, x, y, indices, weights, obj, augment, batch_sharding, norms)

    state, stacked = jax.lax.scan(one_epoch, state, first_epoch + jnp.arange(count))
    return state, jax.tree.map(lambda v: v.reshape(-1, *v.shape[2:]), stacked)


# Compiled once per (objective, augmentation, sharding, shapes), shared by every fit call: fitting
# again with the same head, model and optimizer reuses the program.
_run_chunk = jax.jit(_scan_steps, static_argnames=("obj", "augment", "batch_sharding", "norms"), donate_argnums=(0,))
_run_epochs = jax.jit(_scan_epochs, static_argnames=("count", "batch_size", "drop_last", "obj", "augment", "batch_sharding", "norms"),
                      donate_argnums=(0,))
_epoch_order_jit = jax.jit(epoch_order, static_argnums=(2, 3, 4))


# --------------------------------------------------------------------------------------------
# evaluation


def _eval_scan(state, x, y, w, obj):
    def body(total, batch):
        sums = eval_sums(state, batch, obj)
        return jax.tree.map(jnp.add, total, sums), None

    first = jax.tree.map(jnp.zeros_like, jax.eval_shape(lambda: eval_sums(state, (x[0], y[0], w[0]), obj)))
    return jax.lax.scan(body, first, (x, y, w))[0]


_eval_scan_jit = jax.jit(_eval_scan, static_argnums=(4,))


def padded_batches(x, y, batch_size: int):
    """(x, y, w) reshaped to [batches, batch_size, ...], the last batch filled with weight-0 copies
    of the first example, so a dataset of any size is evaluated with one batch shape."""
    n = len(x)
    batch_size = min(batch_size, n)
    batches = -(-n // batch_size)
    pad = batches * batch_size - n
    idx = np.concatenate([np.arange(n), np.zeros(pad, np.int64)])
    w = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    shape = (batches, batch_size)
    return (jnp.asarray(np.asarray(x)[idx]).reshape(*shape, *np.shape(x)[1:]),
            jnp.asarray(np.asarray(y)[idx]).reshape(*shape, *np.shape(y)[1:]),
            jnp.asarray(w).reshape(shape))


def evaluate(state: TrainState, data, loss=None, *, batch_size: int = 512, objective_=None) -> dict:
    """Mean loss and metrics over a whole dataset ``(x, y)``, without dropout and with running
    BatchNorm statistics. The data is padded to a multiple of ``batch_size`` with weight-0 rows and
    evaluated in one compiled scan, so the means are exact for any dataset size."""
    check_state(state, "evaluate")
    checks.positive_int("evaluate", "batch_size", batch_size)
    obj = objective_ or objective(loss)
    x, y = check_pair(data, "evaluate", "data")
    check_arrays(state, x, y, obj, name="evaluation data")
    sums = jax.device_get(_eval_scan_jit(state, *padded_batches(x, y, batch_size), obj))
    total = float(sums.pop("weight"))
    return {name: float(value) / total for name, value in sums.items()}


# --------------------------------------------------------------------------------------------
# fit


@dataclasses.dataclass
class _Plan:
    n: int
    batch_size: int
    drop_last: bool
    steps_per_epoch: int
    total_steps: int
    chunk: int


def _plan(n, batch_size, drop_last, epochs, steps, log_every) -> _Plan:
    if (epochs is None) == (steps is None):
        raise FnlearnError("fit needs exactly one of epochs=... or steps=... (how long to train).")
    spe = steps_per_epoch(n, batch_size, drop_last)
    total = epochs * spe if epochs is not None else int(steps)
    if total < 1:
        raise FnlearnError(f"fit: nothing to train (epochs={epochs}, steps={steps}); give a positive number.")
    chunk = spe if log_every is None else max(1, min(int(log_every), spe))
    return _Plan(n, batch_size, drop_last, spe, total, chunk)


# Metrics that are a position, not a per-step quantity: a record reports their latest value.
LATEST_VALUE = ("learning_rate", "skipped_steps")


def _epoch_summaries(host: dict, epochs: int) -> list[dict]:
    """The ``train_*`` entries of ``epochs`` consecutive epochs' records from their per-step
    metrics (each stacked as [epochs · steps]): the mean over each epoch's steps, or its last value
    for the ``LATEST_VALUE`` metrics."""
    summaries = [{} for _ in range(epochs)]
    for name, values in host.items():
        per_epoch = np.asarray(values).reshape(epochs, -1)
        values = per_epoch[:, -1] if name in LATEST_VALUE else per_epoch.mean(axis=1, dtype=np.float64)
        for summary, value in zip(summaries, values):
            summary[f"train_{name}"] = float(value)
    return summaries


class _Accumulator:
    """Per-step metrics between epoch ends, summarised by ``_epoch_summaries`` at the epoch's end."""

    def __init__(self):
        self.chunks = []

    def add(self, stacked: dict) -> dict:
        host = jax.device_get(stacked)
        self.chunks.append(host)
        return host

    def means(self) -> dict:
        if not self.chunks:
            return {}
        host = {name: np.concatenate([chunk[name] for chunk in self.chunks]) for name in self.chunks[0]}
        self.chunks = []
        return _epoch_summaries(host, 1)[0]


def _stop_if_nonfinite(host: dict, first_step: int, on_nonfinite: str) -> None:
    """The NaN guard: raise ``NonFiniteError`` naming the step and the first non-finite metric
    (unless non-finite updates are being skipped)."""
    bad = None if on_nonfinite == "skip" else _first_nonfinite(host, first_step)
    if bad is not None:
        raise NonFiniteError(
            f"training diverged: {bad} (first non-finite metric). Lower the learning rate, clip "
            f"gradients (optimizer clipping), or pass on_nonfinite='skip' with "
            f"fl.optim.apply_if_finite."
        )


def _first_nonfinite(host: dict, first_step: int) -> str | None:
    """'loss = nan at step 17' for the first step (1-based) with a non-finite metric, else None."""
    bad_steps = {name: np.flatnonzero(~np.isfinite(values)) for name, values in host.items()}
    firsts = {name: int(steps[0]) for name, steps in bad_steps.items() if len(steps)}
    if not firsts:
        return None
    i = min(firsts.values())
    name = next(name for name in host if firsts.get(name) == i)  # the first metric, in logging order
    return f"{name} = {host[name][i]} at step {first_step + i + 1}"


class _Session:
    """The host side of one fit call, the same for device-resident arrays and for streamed
    batches: resuming, the history and ``metrics.jsonl``, evaluation, callbacks and checkpoints."""

    def __init__(self, obj: Objective, *, callbacks, run_dir, eval, eval_every, eval_batch_size,  # noqa: A002
                 checkpoint_every, keep_checkpoints, best_metric, config, mesh):
        from fnlearn.checkpoint import RunCheckpoints  # noqa: PLC0415 - orbax loads only when used

        self.obj, self.callbacks, self.run_dir, self.mesh = obj, list(callbacks), run_dir, mesh
        self.eval, self.eval_every, self.eval_batch_size = eval, eval_every, eval_batch_size
        self.checkpoint_every, self.best_metric, self.config = checkpoint_every, best_metric, config
        use_checkpoints = run_dir is not None and checkpoint_every
        self.checkpoints = RunCheckpoints(Path(run_dir) / "checkpoints", keep=keep_checkpoints) if use_checkpoints else None
        self.history: History = []
        self.start_time = time.perf_counter()
        self.metrics_file = None
        self.ctx = None

    def open(self, state: TrainState, resume: bool) -> TrainState:
        """Continue from the newest checkpoint (with ``resume``: the state, the history, the time
        so far and the callbacks' states), open ``metrics.jsonl`` and start the callbacks."""
        extra = None
        if resume:
            if self.checkpoints is None:
                raise FnlearnError("resume=True needs run_dir=... (where the checkpoints are) and checkpoint_every set.")
            restored = self.checkpoints.restore_latest(state)
            if restored is not None:
                state, extra = restored
                if self.mesh is not None:
                    state = parallel.put_replicated(state, self.mesh)
                self.history = list(extra["history"])
                self.start_time -= extra.get("elapsed", 0.0)
        self.metrics_file = _open_metrics(self.run_dir, resume, self.history)
        self.ctx = FitContext(state=state, epoch=self.epochs_done(), step=int(state.step), history=self.history, run_dir=self.run_dir)
        for cb in self.callbacks:
            cb.on_fit_start(self.ctx)
        if extra is not None:
            _load_callback_states(self.callbacks, extra, self.ctx)
        return state

    def epochs_done(self) -> int:
        return int(self.history[-1]["epoch"]) if self.history else 0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start_time

    @property
    def stop_training(self) -> bool:
        return self.ctx.stop_training

    def log(self, record: dict) -> None:
        """A record between epoch ends (``log_every``): in metrics.jsonl, not in the history."""
        _write(self.metrics_file, record)

    def append(self, record: dict) -> None:
        """An epoch's record: into the history and metrics.jsonl."""
        self.history.append(record)
        _write(self.metrics_file, record)

    def end_epoch(self, state: TrainState, *, epoch: int, step: int, train: dict, examples_per_second: float, last: bool) -> TrainState:
        """Epoch ``epoch`` (1-based) ended at ``step``: evaluate (every ``eval_every`` epochs and
        at the end), record, run the callbacks, checkpoint (every ``checkpoint_every`` epochs, at
        the end and when a callback stops training). Returns the state the callbacks leave."""
        record = {"epoch": epoch, "step": step, "time": self.elapsed()} | train
        record["examples_per_second"] = examples_per_second
        if self.eval is not None and (epoch % self.eval_every == 0 or last):
            measured = evaluate(state, self.eval, batch_size=self.eval_batch_size, objective_=self.obj)
            record |= {f"val_{name}": value for name, value in measured.items()}
        self.history.append(record)
        self.ctx = dataclasses.replace(self.ctx, state=state, epoch=epoch, step=step, record=record)
        for cb in self.callbacks:
            cb.on_epoch_end(self.ctx)
        _write(self.metrics_file, record)  # after the callbacks, with whatever they added to the record
        state = self.ctx.state
        if self.checkpoints is not None and (epoch % self.checkpoint_every == 0 or last or self.ctx.stop_training):
            self._save(state, step, record)
        return state

    def _save(self, state: TrainState, step: int, record: dict) -> None:
        values, arrays = _callback_states(self.callbacks)
        extra = {"history": self.history, "elapsed": self.elapsed(), "config": self.config or {}, "callbacks": values}
        best = None
        if self.best_metric is not None:
            best = (self.best_metric, monitored_value(record, self.best_metric, "fit's best_metric"))
        self.checkpoints.save(state, step, extra, best=best, arrays=arrays)

    def finish(self, state: TrainState) -> TrainState:
        """fit ended without an error: the callbacks' last word (early stopping restores the best weights)."""
        self.ctx = dataclasses.replace(self.ctx, state=state)
        for cb in self.callbacks:
            cb.on_fit_end(self.ctx)
        return self.ctx.state

    def close(self) -> None:
        if self.metrics_file is not None:
            try:
                self.metrics_file.close()
            except OSError as error:  # the last flush met a full disk: name the file
                raise type(error)(error.errno, error.strerror, self.metrics_file.name) from None
        if self.checkpoints is not None:
            self.checkpoints.close()


def _named_callbacks(callbacks):
    """(callback, name): the class name, "#2", "#3", ... for repeats. A checkpoint's callback states are
    matched by it, so a resumed run may add or drop callbacks without stateful ones losing theirs."""
    seen: dict[str, int] = {}
    for cb in callbacks:
        name = type(cb).__name__
        seen[name] = seen.get(name, 0) + 1
        yield cb, name if seen[name] == 1 else f"{name}#{seen[name]}"


def _callback_states(callbacks) -> tuple[dict, dict]:
    """The callbacks' ``state_dict()`` for a checkpoint: per callback, its JSON values and, for
    each pytree of arrays, the names of its leaves in the flat dict of arrays saved beside."""
    values, arrays = {}, {}
    for i, (cb, name) in enumerate(_named_callbacks(callbacks)):
        entry = {"json": {}, "arrays": {}}
        for k, (key, value) in enumerate(cb.state_dict().items()):
            leaves = jax.tree.leaves(value)
            if any(isinstance(leaf, (jax.Array, np.ndarray)) for leaf in leaves):
                names = [f"callback{i}_{k}_{j}" for j in range(len(leaves))]
                arrays |= dict(zip(names, leaves))
                entry["arrays"][key] = names
            else:
                entry["json"][key] = value
        if entry["json"] or entry["arrays"]:
            values[name] = entry
    return values, arrays


def _load_callback_states(callbacks, extra: dict, ctx: FitContext) -> None:
    saved, arrays = extra.get("callbacks", {}), extra.get("arrays", {})
    for cb, name in _named_callbacks(callbacks):
        if name in saved:
            entry = saved[name]
            cb.load_state_dict(entry["json"] | {key: [arrays[n] for n in names] for key, names in entry["arrays"].items()}, ctx)


def fit(
    state: TrainState,
    train,
    *,
    loss,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int = 32,
    eval=None,  # noqa: A002 - the natural name for the evaluation data
    eval_every: int = 1,
    eval_batch_size: int = 512,
    penalty: Callable | None = None,
    augment: Callable | None = None,
    callbacks: Sequence[Callback] = (),
    run_dir: str | Path | None = None,
    log_every: int | None = None,
    drop_last: bool = False,
    on_nonfinite: str = "stop",
    log_norms: bool = False,
    progress: bool | None = None,
    devices=None,
    checkpoint_every: int | None = 1,
    keep_checkpoints: int = 3,
    best_metric: str | None = None,
    resume: bool = False,
    config: dict | None = None,
) -> tuple[TrainState, History]:
    """Train ``state`` on ``train = (x, y)`` (or an iterable of batches) and return ``(state, history)``.

    Args (every one but ``loss`` and the length has a default):
      train: a tuple ``(x, y)`` of arrays (put on the device once; the fast path), or any other
        iterable of host batches ``(x, y)`` / ``(x, y, w)`` for data that does not fit (the
        streaming path: iterated once per epoch, each batch checked and copied to the device
        one step ahead; ``batch_size``, ``drop_last`` and ``devices`` apply to arrays only).
      loss: a distribution head (its mean NLL is minimised) or ``loss(outputs, y, w) -> scalar``.
      epochs / steps: how long (exactly one of them), counted from step 0 of the state: a state
        that has already trained (or was restored) trains on until it reaches that total. (Streamed
        epochs are passes over the iterable, counted from the checkpoint resumed from, else from 0.)
      batch_size, drop_last: see the module docstring.
      eval: ``(x, y)`` evaluated every ``eval_every`` epochs (records get ``val_*`` entries).
      penalty: ``penalty(params) -> scalar`` added to the loss, e.g. ``fl.losses.l2(1e-4)``.
      augment: ``augment(key, x) -> x`` applied on the device inside the compiled steps.
      callbacks: ``fl.callbacks.EarlyStopping(...)``, ``LambdaCallback(...)``, your own ``Callback``.
      run_dir: where ``metrics.jsonl`` (one JSON object per logging point, flushed as it goes) and
        ``checkpoints/`` (orbax: the last ``keep_checkpoints``, and the best by ``best_metric``)
        are written; ``checkpoint_every`` epochs (None: never).
      resume: continue from the last checkpoint in ``run_dir``: the state, the history and the
        callbacks' states (early stopping's counters and best weights). Bit-identical to an
        uninterrupted run on the same machine (streamed: if the iterable yields the same batches
        on every pass).
      log_every: host interaction every this many steps (default: once per epoch).
      on_nonfinite: "stop" raises ``NonFiniteError`` naming the step and the first non-finite
        metric; "skip" needs an optimizer wrapped in ``fl.optim.apply_if_finite`` and only logs
        how many updates it skipped.
      log_norms: also log the global gradient and update norms of every step (``train_grad_norm``,
        ``train_update_norm``); off by default because on small models they cost about a sixth
        of the step (the NaN guard then sees a non-finite gradient one step later, in the loss).
      progress: a tqdm bar (epoch, loss, examples/s); default: on when stderr is a terminal.
      config: a dict stored with every checkpoint (the CLI stores the resolved config).
      devices: data parallelism over a mesh of devices ("all", a count, or a list; see
        ``fnlearn.parallel``): each batch is split across them, so ``batch_size`` must be a
        multiple of their number. None: one device.
    """
    _check_fit_arguments(locals())
    if on_nonfinite not in ("stop", "skip"):
        raise FnlearnError(f"on_nonfinite must be 'stop' or 'skip', got {on_nonfinite!r}.")
    obj = objective(loss, penalty)
    if on_nonfinite == "skip":
        from fnlearn import optim  # noqa: PLC0415

        if optim.skipped_steps(state.opt_state) is None:
            raise FnlearnError(
                "on_nonfinite='skip' needs an optimizer that can skip updates: build the state with "
                "tx = fl.optim.apply_if_finite(your_optimizer, max_consecutive_errors=5)."
            )
    if eval is not None:
        eval = check_pair(eval, "fit", "eval")
        check_arrays(state, *eval, obj, name="evaluation data")
    session_args = dict(callbacks=callbacks, run_dir=run_dir, eval=eval, eval_every=eval_every, eval_batch_size=eval_batch_size,
                        checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints, best_metric=best_metric, config=config)
    if not isinstance(train, tuple):
        if devices is not None and parallel.data_mesh(devices) is not None:
            raise FnlearnError("devices=... needs the training data as arrays, train=(x, y); streamed batches train on one device.")
        session = _Session(obj, mesh=None, **session_args)
        return _fit_streaming(state, train, obj, session, epochs=epochs, steps=steps, augment=augment, log_every=log_every,
                              on_nonfinite=on_nonfinite, log_norms=log_norms, progress=progress, resume=resume)
    x, y = check_pair(train, "fit", "train")
    check_arrays(state, x, y, obj, name="training data", batch_size=batch_size)
    plan = _plan(len(x), batch_size, drop_last, epochs, steps, log_every)
    mesh = parallel.data_mesh(devices)
    if mesh is None:
        x, y = jax.device_put(np.asarray(x)), jax.device_put(np.asarray(y))
        batch_sharding = None
    else:
        parallel.check_batch_size(batch_size, mesh)
        x, y, state = parallel.put_replicated((np.asarray(x), np.asarray(y), state), mesh)
        batch_sharding = parallel.batch_sharded(mesh)
    session = _Session(obj, mesh=mesh, **session_args)
    bar = None
    try:
        state = session.open(state, resume)
        order_key = jax.random.fold_in(state.key, ORDER_SALT)  # data order: fixed for the whole run
        bar = _progress_bar(progress, plan.total_steps, int(state.step))
        accumulate = _Accumulator()
        indices = weights = next_order = None
        current_epoch = -1

        def draw_order(epoch):
            return _epoch_order_jit(order_key, epoch, plan.n, plan.batch_size, plan.drop_last)

        step = int(state.step)
        # Nothing to do at epoch ends but write the history (no evaluation, callbacks, checkpoints,
        # logging or bar): the remaining whole epochs run as one compiled scan, and the epochs'
        # records are cut from its per-step metrics afterwards. Same steps, same numbers.
        batch_epochs = not callbacks and eval is None and session.checkpoints is None and log_every is None and bar is None
        while step < plan.total_steps and not session.stop_training:
            epoch, position = divmod(step, plan.steps_per_epoch)
            whole_epochs = (plan.total_steps - step) // plan.steps_per_epoch
            if batch_epochs and position == 0 and whole_epochs >= 2:
                state, step = _run_whole_epochs(state, x, y, order_key, epoch, whole_epochs, plan, obj, augment,
                                                batch_sharding, log_norms, on_nonfinite, session)
                continue
            if epoch != current_epoch:
                order = next_order if next_order is not None and next_order[0] == epoch else (epoch, draw_order(epoch))
                indices, weights = order[1]
                current_epoch = epoch
                epoch_start_time = time.perf_counter()
            k = min(plan.chunk, plan.steps_per_epoch - position, plan.total_steps - step)
            tick = time.perf_counter()
            if k < len(indices):
                chunk = (indices[position:position + k], weights[position:position + k])
            else:
                chunk = (indices, weights)  # the whole epoch: no slicing (two eager ops less per epoch)
            state, stacked = _run_chunk(state, x, y, *chunk, obj=obj, augment=augment, batch_sharding=batch_sharding, norms=log_norms)
            if position + k == plan.steps_per_epoch and step + k < plan.total_steps:
                # drawn while this chunk trains, so the host need not wait for it at the epoch's end
                next_order = (epoch + 1, draw_order(epoch + 1))
            host = accumulate.add(stacked)
            _stop_if_nonfinite(host, step, on_nonfinite)
            step += k
            if bar is not None:
                bar.update(k)
                bar.set_postfix(epoch=epoch + 1, loss=f"{float(np.mean(host['loss'])):.4f}",
                                ex_per_s=f"{k * plan.batch_size / max(time.perf_counter() - tick, 1e-9):.0f}")
            if step % plan.steps_per_epoch and step != plan.total_steps:  # inside an epoch
                if log_every is not None:
                    session.log({"step": step, "epoch": epoch + (position + k) / plan.steps_per_epoch, "time": session.elapsed()}
                                | _epoch_summaries(host, 1)[0])
                continue
            examples_per_second = plan.batch_size * (position + k) / max(time.perf_counter() - epoch_start_time, 1e-9)
            state = session.end_epoch(state, epoch=epoch + 1, step=step, train=accumulate.means(),
                                      examples_per_second=examples_per_second, last=step == plan.total_steps)
    finally:
        if bar is not None:
            bar.close()
        session.close()
    return session.finish(state), session.history


def _run_whole_epochs(state, x, y, order_key, epoch, count, plan, obj, augment, batch_sharding, log_norms, on_nonfinite, session):
    """``count`` whole epochs from ``epoch`` as one compiled scan; appends one record per epoch."""
    tick = time.perf_counter()
    state, stacked = _run_epochs(state, x, y, order_key, jnp.asarray(epoch, jnp.int32), count=count, batch_size=plan.batch_size,
                                 drop_last=plan.drop_last, obj=obj, augment=augment, batch_sharding=batch_sharding, norms=log_norms)
    host = jax.device_get(stacked)
    first = epoch * plan.steps_per_epoch
    _stop_if_nonfinite(host, first, on_nonfinite)
    spe = plan.steps_per_epoch
    examples_per_second = plan.batch_size * spe * count / max(time.perf_counter() - tick, 1e-9)
    now = session.elapsed()
    for j, summary in enumerate(_epoch_summaries(host, count)):
        session.append({"epoch": epoch + j + 1, "step": first + (j + 1) * spe, "time": now} | summary
                       | {"examples_per_second": examples_per_second})
    return state, first + count * spe


def _fit_streaming(state, batches: Iterable, obj, session: _Session, *, epochs, steps, augment, log_every, on_nonfinite,
                   log_norms, progress, resume):
    """The path for data that does not fit on the device: one jitted step per host batch, each batch
    checked on the host and copied to the device while the step before it trains; the host keeps at
    most one step queued behind the running one, so memory stays bounded however fast it reads."""
    if (epochs is None) == (steps is None):
        raise FnlearnError("fit needs exactly one of epochs=... or steps=... (how long to train).")
    if epochs is not None and epochs > 1 and iter(batches) is batches:
        raise FnlearnError(
            f"train is an iterator, which runs out after one pass, but epochs={epochs}. Pass something "
            f"iterable again every epoch (a list, or a class whose __iter__ returns a fresh generator), or use steps=...."
        )
    step_fn = make_train_step(obj, augment=augment, norms=log_norms)
    bar = None
    try:
        state = session.open(state, resume)
        epoch, step = session.epochs_done(), int(state.step)
        bar = _progress_bar(progress, steps, step)
        while not session.stop_training and (epochs is None or epoch < epochs) and (steps is None or step < steps):
            tick, first = time.perf_counter(), step
            pending, logged, examples = [], 0, 0
            for batch in _prefetch(_checked_batches(batches, state, obj, epoch)):
                state, metrics = step_fn(state, batch)
                pending.append(metrics)
                if len(pending) > 1:
                    jax.block_until_ready(pending[-2])
                step, examples = step + 1, examples + batch[0].shape[0]
                if bar is not None:
                    bar.update(1)
                if log_every is not None and len(pending) - logged == log_every:
                    host = _stack_to_host(pending[logged:])
                    _stop_if_nonfinite(host, first + logged, on_nonfinite)
                    session.log({"step": step, "epoch": epoch + 1, "time": session.elapsed()} | _epoch_summaries(host, 1)[0])
                    logged = len(pending)
                if steps is not None and step >= steps:
                    break
            if not pending:
                raise FnlearnError(f"train yielded no batch in epoch {epoch + 1}. Pass a non-empty iterable that can be iterated again every epoch.")
            host = _stack_to_host(pending)
            _stop_if_nonfinite(host, first, on_nonfinite)
            epoch += 1
            examples_per_second = examples / max(time.perf_counter() - tick, 1e-9)
            if bar is not None:
                bar.set_postfix(epoch=epoch, loss=f"{float(np.mean(host['loss'])):.4f}", ex_per_s=f"{examples_per_second:.0f}")
            last = (epochs is not None and epoch >= epochs) or (steps is not None and step >= steps)
            state = session.end_epoch(state, epoch=epoch, step=step, train=_epoch_summaries(host, 1)[0],
                                      examples_per_second=examples_per_second, last=last)
    finally:
        if bar is not None:
            bar.close()
        session.close()
    return session.finish(state), session.history


def _stack_to_host(per_step: list[dict]) -> dict:
    """Per-step metric dicts (on the device) as one host array per metric."""
    return jax.device_get(jax.tree.map(lambda *v: jnp.stack(v), *per_step))


def _checked_batches(batches: Iterable, state: TrainState, obj: Objective, epoch: int):
    """The streamed batches as tuples, each checked on the host before it goes anywhere (shapes,
    targets, NaN/Inf): a bad batch gets the same clear error as bad arrays, naming the batch."""
    for i, batch in enumerate(batches):
        if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
            raise FnlearnError(f"streamed batch {i + 1} of epoch {epoch + 1} is not (x, y) or (x, y, weights): got {type(batch).__name__}.")
        check_arrays(state, batch[0], batch[1], obj, name=f"streamed batch {i + 1} of epoch {epoch + 1}")
        yield tuple(batch)


def _prefetch(batches: Iterable):
    """Yield device copies of ``batches``, the next one already on its way (jax copies asynchronously)."""
    iterator = iter(batches)
    try:
        ahead = jax.device_put(tuple(next(iterator)))
    except StopIteration:
        return
    for batch in iterator:
        current, ahead = ahead, jax.device_put(tuple(batch))
        yield current
    yield ahead


def _open_metrics(run_dir, resume: bool, history: History):
    if run_dir is None:
        return None
    path = Path(run_dir) / "metrics.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Resuming keeps exactly the records up to the checkpoint (lines written after it are replayed);
    # with no checkpoint to resume from, the run starts over and so does its file. Replaced
    # atomically: a failure here (a full disk) leaves the old file whole.
    atomic.write_text(path, "".join(json.dumps(r) + "\n" for r in history) if resume else "")
    return path.open("a", encoding="utf-8")


def _write(file, record: dict) -> None:
    if file is not None:
        try:
            file.write(json.dumps(record) + "\n")
            file.flush()
        except OSError as error:  # a full disk: name the file
            raise type(error)(error.errno, error.strerror, file.name) from None


def _progress_bar(progress: bool | None, total: int, initial: int):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm  # noqa: PLC0415 - optional, loaded when shown

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
