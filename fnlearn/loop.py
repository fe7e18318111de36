"""The training loop: ``fit`` and ``evaluate``.

Where the speed comes from: the training data lives on the device, and the steps between two host
interactions run as **one compiled ``lax.scan``** — each step gathers its minibatch from the
device-resident arrays by index, so there is no Python and no host→device copy per step. The host
wakes up every ``log_every`` steps and at every epoch end, to log, evaluate, checkpoint and run the
callbacks. A scan of k steps is compiled once per distinct k (at most three: the chunk, the epoch's
remainder, the run's last chunk).

Data order (``fnlearn.order``): each epoch draws a fresh permutation of the training set from
``fold_in(order_key, epoch)``, without replacement. With ``drop_last=False`` (the default) the last
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
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn import parallel
from fnlearn.callbacks import Callback
from fnlearn.errors import FnlearnError
from fnlearn.evaluation import evaluate
from fnlearn.inputs import check_arrays, check_fit_arguments, check_pair
from fnlearn.order import ORDER_SALT, epoch_order
from fnlearn.session import (
    Accumulator,
    History,
    Session,
    epoch_summaries,
    plan_steps,
    progress_bar,
    stop_if_nonfinite,
)
from fnlearn.train import Objective, TrainState, configure, make_train_step, objective, train_step

__all__ = ["History", "evaluate", "fit"]


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


def _scan_epochs(
    state,
    x,
    y,
    order_key,
    first_epoch,
    *,
    count,
    batch_size,
    drop_last,
    obj,
    augment,
    batch_sharding=None,
    norms=False,
):
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
_run_chunk = jax.jit(
    _scan_steps, static_argnames=("obj", "augment", "batch_sharding", "norms"), donate_argnums=(0,)
)
_run_epochs = jax.jit(
    _scan_epochs,
    static_argnames=("count", "batch_size", "drop_last", "obj", "augment", "batch_sharding", "norms"),
    donate_argnums=(0,),
)
_epoch_order_jit = jax.jit(epoch_order, static_argnums=(2, 3, 4))


# --------------------------------------------------------------------------------------------
# fit


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
    accumulate: int = 1,
    ema: float | None = None,
    compute_dtype: str | None = None,
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
      accumulate: k micro-batches of ``batch_size`` per update (gradient accumulation): every
        update sees k·batch_size examples, with one micro-batch's activations in memory.
      ema: a decay β such as 0.999: keep a bias-corrected moving average of the parameters in
        ``state.ema`` (``fnlearn.ema``); ``evaluate``/``predict`` use it with ``use_ema=True``.
      compute_dtype: "bfloat16" runs the forward and backward passes in bfloat16, the parameters,
        optimizer state, loss and gradients staying float32 (``fnlearn.precision``).
    """
    check_fit_arguments(locals())
    if on_nonfinite not in ("stop", "skip"):
        raise FnlearnError(f"on_nonfinite must be 'stop' or 'skip', got {on_nonfinite!r}.")
    obj, state = configure(
        objective(loss, penalty), state, accumulate=accumulate, ema=ema, compute_dtype=compute_dtype
    )
    if on_nonfinite == "skip":
        _check_can_skip(state)
    if eval is not None:
        eval = check_pair(eval, "fit", "eval")
        check_arrays(state, *eval, obj, name="evaluation data")
    session_args = dict(
        callbacks=callbacks,
        run_dir=run_dir,
        eval=eval,
        eval_every=eval_every,
        eval_batch_size=eval_batch_size,
        checkpoint_every=checkpoint_every,
        keep_checkpoints=keep_checkpoints,
        best_metric=best_metric,
        config=config,
    )
    if not isinstance(train, tuple):
        if devices is not None and parallel.data_mesh(devices) is not None:
            raise FnlearnError(
                "devices=... needs the training data as arrays, train=(x, y); streamed batches train on one device."
            )
        session = Session(obj, mesh=None, **session_args)
        return _fit_streaming(
            state,
            train,
            obj,
            session,
            epochs=epochs,
            steps=steps,
            augment=augment,
            log_every=log_every,
            on_nonfinite=on_nonfinite,
            log_norms=log_norms,
            progress=progress,
            resume=resume,
        )
    x, y = check_pair(train, "fit", "train")
    check_arrays(state, x, y, obj, name="training data", batch_size=batch_size)
    if batch_size * obj.accumulate > len(x):
        raise FnlearnError(
            f"fit: accumulate={obj.accumulate} x batch_size={batch_size} = {batch_size * obj.accumulate} "
            f"examples per update, but the training data has {len(x)}. Lower accumulate or batch_size."
        )
    batch_size *= obj.accumulate  # the examples of one update
    plan = plan_steps(len(x), batch_size, drop_last, epochs, steps, log_every)
    mesh = parallel.data_mesh(devices)
    if mesh is None:
        x, y = jax.device_put(np.asarray(x)), jax.device_put(np.asarray(y))
    else:
        parallel.check_batch_size(batch_size, mesh)
        x, y, state = parallel.put_replicated((np.asarray(x), np.asarray(y), state), mesh)
    run = _ArrayRun(
        x,
        y,
        plan,
        obj,
        augment,
        None if mesh is None else parallel.batch_sharded(mesh),
        log_norms,
        on_nonfinite,
        log_every,
        Session(obj, mesh=mesh, **session_args),
    )
    return run.fit(state, resume, progress)


def _check_can_skip(state) -> None:
    from fnlearn import optim  # noqa: PLC0415 - the optimizers load only for this check

    if optim.skipped_steps(state.opt_state) is None:
        raise FnlearnError(
            "on_nonfinite='skip' needs an optimizer that can skip updates: build the state with "
            "tx = fl.optim.apply_if_finite(your_optimizer, max_consecutive_errors=5)."
        )


@dataclasses.dataclass
class _ArrayRun:
    """fit on device-resident arrays. Two strategies drive the compiled steps:

    * ``whole_epochs``: when nothing happens at epoch ends but writing the history (no
      evaluation, callbacks, checkpoints, logging or bar), the remaining whole epochs run as one
      compiled scan and the epochs' records are cut from its per-step metrics afterwards;
    * ``chunks``: otherwise, one compiled scan per chunk (an epoch, or ``log_every`` steps), the
      host waking between chunks; the next epoch's order is drawn while this one trains.

    Same steps, same numbers either way.
    """

    x: jax.Array
    y: jax.Array
    plan: object
    obj: Objective
    augment: Callable | None
    batch_sharding: object
    log_norms: bool
    on_nonfinite: str
    log_every: int | None
    session: Session
    bar: object = None
    order_key: object = None
    orders: dict = dataclasses.field(default_factory=dict)  # epoch -> (indices, weights), drawn ahead
    accumulate: Accumulator = dataclasses.field(default_factory=Accumulator)
    current_epoch: int = -1
    epoch_start: float = 0.0

    def fit(self, state, resume: bool, progress) -> tuple[TrainState, History]:
        session, plan = self.session, self.plan
        try:
            state = session.open(state, resume)
            self.order_key = jax.random.fold_in(state.key, ORDER_SALT)  # data order: fixed for the whole run
            self.bar = progress_bar(progress, plan.total_steps, int(state.step))
            one_program = (
                not session.callbacks
                and session.eval is None
                and session.checkpoints is None
                and self.log_every is None
                and self.bar is None
            )
            step = int(state.step)
            while step < plan.total_steps and not session.stop_training:
                epoch, position = divmod(step, plan.steps_per_epoch)
                whole = (plan.total_steps - step) // plan.steps_per_epoch
                if one_program and position == 0 and whole >= 2:
                    state, step = self.whole_epochs(state, epoch, whole)
                else:
                    state, step = self.chunk(state, step)
        finally:
            if self.bar is not None:
                self.bar.close()
            session.close()
        return session.finish(state), session.history

    def order(self, epoch: int):
        """Epoch ``epoch``'s (indices, weights), drawn on the device (and kept for one epoch)."""
        if epoch not in self.orders:
            self.orders = {
                epoch: _epoch_order_jit(
                    self.order_key, epoch, self.plan.n, self.plan.batch_size, self.plan.drop_last
                )
            }
        return self.orders[epoch]

    def chunk(self, state, step: int):
        """One compiled scan of the next chunk; at an epoch's end, the session's epoch end."""
        plan, session = self.plan, self.session
        epoch, position = divmod(step, plan.steps_per_epoch)
        if epoch != self.current_epoch:
            self.current_epoch, self.epoch_start = epoch, time.perf_counter()
        indices, weights = self.order(epoch)
        k = min(plan.chunk, plan.steps_per_epoch - position, plan.total_steps - step)
        tick = time.perf_counter()
        if k < len(indices):
            indices, weights = indices[position : position + k], weights[position : position + k]
        state, stacked = _run_chunk(
            state,
            self.x,
            self.y,
            indices,
            weights,
            obj=self.obj,
            augment=self.augment,
            batch_sharding=self.batch_sharding,
            norms=self.log_norms,
        )
        if position + k == plan.steps_per_epoch and step + k < plan.total_steps:
            # drawn while this chunk trains, so the host need not wait for it at the epoch's end
            self.orders[epoch + 1] = _epoch_order_jit(
                self.order_key, epoch + 1, plan.n, plan.batch_size, plan.drop_last
            )
        host = self.accumulate.add(stacked)
        stop_if_nonfinite(host, step, self.on_nonfinite)
        step += k
        if self.bar is not None:
            self.bar.update(k)
            self.bar.set_postfix(
                epoch=epoch + 1,
                loss=f"{float(np.mean(host['loss'])):.4f}",
                ex_per_s=f"{k * plan.batch_size / max(time.perf_counter() - tick, 1e-9):.0f}",
            )
        if step % plan.steps_per_epoch and step != plan.total_steps:  # inside an epoch
            if self.log_every is not None:
                session.log(
                    {
                        "step": step,
                        "epoch": epoch + (position + k) / plan.steps_per_epoch,
                        "time": session.elapsed(),
                    }
                    | epoch_summaries(host, 1)[0]
                )
            return state, step
        examples_per_second = (
            plan.batch_size * (position + k) / max(time.perf_counter() - self.epoch_start, 1e-9)
        )
        state = session.end_epoch(
            state,
            epoch=epoch + 1,
            step=step,
            train=self.accumulate.means(),
            examples_per_second=examples_per_second,
            last=step == plan.total_steps,
        )
        return state, step

    def whole_epochs(self, state, epoch: int, count: int):
        """``count`` whole epochs from ``epoch`` as one compiled scan; appends one record per epoch."""
        return _run_whole_epochs(
            state,
            self.x,
            self.y,
            self.order_key,
            epoch,
            count,
            self.plan,
            self.obj,
            self.augment,
            self.batch_sharding,
            self.log_norms,
            self.on_nonfinite,
            self.session,
        )


def _run_whole_epochs(
    state, x, y, order_key, epoch, count, plan, obj, augment, batch_sharding, log_norms, on_nonfinite, session
):
    """``count`` whole epochs from ``epoch`` as one compiled scan; appends one record per epoch."""
    tick = time.perf_counter()
    state, stacked = _run_epochs(
        state,
        x,
        y,
        order_key,
        jnp.asarray(epoch, jnp.int32),
        count=count,
        batch_size=plan.batch_size,
        drop_last=plan.drop_last,
        obj=obj,
        augment=augment,
        batch_sharding=batch_sharding,
        norms=log_norms,
    )
    host = jax.device_get(stacked)
    first = epoch * plan.steps_per_epoch
    stop_if_nonfinite(host, first, on_nonfinite)
    spe = plan.steps_per_epoch
    examples_per_second = plan.batch_size * spe * count / max(time.perf_counter() - tick, 1e-9)
    now = session.elapsed()
    for j, summary in enumerate(epoch_summaries(host, count)):
        session.append(
            {"epoch": epoch + j + 1, "step": first + (j + 1) * spe, "time": now}
            | summary
            | {"examples_per_second": examples_per_second}
        )
    return state, first + count * spe


def _fit_streaming(
    state,
    batches: Iterable,
    obj,
    session: Session,
    *,
    epochs,
    steps,
    augment,
    log_every,
    on_nonfinite,
    log_norms,
    progress,
    resume,
):
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
        bar = progress_bar(progress, steps, step)
        while (
            not session.stop_training
            and (epochs is None or epoch < epochs)
            and (steps is None or step < steps)
        ):
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
                    stop_if_nonfinite(host, first + logged, on_nonfinite)
                    session.log(
                        {"step": step, "epoch": epoch + 1, "time": session.elapsed()}
                        | epoch_summaries(host, 1)[0]
                    )
                    logged = len(pending)
                if steps is not None and step >= steps:
                    break
            if not pending:
                raise FnlearnError(
                    f"train yielded no batch in epoch {epoch + 1}. Pass a non-empty iterable that can be iterated again every epoch."
                )
            host = _stack_to_host(pending)
            stop_if_nonfinite(host, first, on_nonfinite)
            epoch += 1
            examples_per_second = examples / max(time.perf_counter() - tick, 1e-9)
            if bar is not None:
                bar.set_postfix(
                    epoch=epoch,
                    loss=f"{float(np.mean(host['loss'])):.4f}",
                    ex_per_s=f"{examples_per_second:.0f}",
                )
            last = (epochs is not None and epoch >= epochs) or (steps is not None and step >= steps)
            state = session.end_epoch(
                state,
                epoch=epoch,
                step=step,
                train=epoch_summaries(host, 1)[0],
                examples_per_second=examples_per_second,
                last=last,
            )
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
            raise FnlearnError(
                f"streamed batch {i + 1} of epoch {epoch + 1} is not (x, y) or (x, y, weights): got {type(batch).__name__}."
            )
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
