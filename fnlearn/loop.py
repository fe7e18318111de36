"""The training loop: ``fit`` and ``evaluate``.

Where the speed comes from: the training data lives on the device, and every step gathers its
minibatch from the device-resident arrays by index, so there is no host→device copy per step. The
host wakes up every ``log_every`` steps and at every epoch end, to log, evaluate, checkpoint and
run the callbacks. Between two wake-ups the steps are driven one of two ways
(``fnlearn.drivers``): as one compiled ``lax.scan`` (``driver="scan"``: no Python per step), or
as one jitted step dispatched from Python without waiting, the metrics read once at the wake-up
(``driver="loop"``). Neither is faster everywhere (on XLA:CPU convolutions are several times
slower inside a scan, jax-ml/jax#12868), so ``driver="auto"`` times both on a copy of the state
before training and keeps the faster (``fnlearn.drivers.choose_driver``); ``history.driver``
and every checkpoint record the choice and the times, and a resumed run keeps it.

Data order (``fnlearn.order``): each epoch draws a fresh permutation of the training set from
``fold_in(order_key, epoch)``, without replacement. With ``drop_last=False`` (the default) the last
partial batch is filled up with examples of weight 0 — every example counts exactly once per epoch,
nothing is recompiled, and the zero-weight rows change neither the loss nor its gradient (BatchNorm's
batch statistics do see them; use ``drop_last=True`` with BatchNorm and tiny datasets). With
``drop_last=True`` the remainder is skipped (a different remainder every epoch). Both drivers take
the same steps on the same batches.

For data that does not fit in device memory, pass an iterable of host batches ``(x, y)`` or
``(x, y, w)`` as ``train`` instead of arrays (``fnlearn.streaming``): the batches are copied to
the device one step ahead (prefetching) and the jitted step runs once per batch.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn import checks, drivers, parallel, sharding
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
from fnlearn.streaming import STREAMED, fit_streaming
from fnlearn.train import Objective, TrainState, configure, objective

__all__ = ["History", "evaluate", "fit"]

_epoch_order_jit = jax.jit(epoch_order, static_argnums=(2, 3, 4))
_CHOICES: dict[tuple, drivers.DriverChoice] = {}  # auto's measured choices, by program (see program_key)
_METRIC_SHAPES: dict[tuple, dict] = {}  # the loop driver's metrics, by program
_SESSION_ARGS = (
    "callbacks",
    "run_dir",
    "eval_every",
    "eval_batch_size",
    "checkpoint_every",
    "keep_checkpoints",
    "best_metric",
    "config",
    "shard",
)


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
    driver: str = "auto",
    accumulate: int = 1,
    ema: float | None = None,
    compute_dtype: str | None = None,
    shard: str | None = None,
) -> tuple[TrainState, History]:
    """Train ``state`` on ``train = (x, y)`` (or an iterable of batches) and return ``(state, history)``.

    Args (every one but ``loss`` and the length has a default):
      train: ``(x, y)`` arrays (put on the device once; the fast path), or any other iterable of
        host batches ``(x, y)`` / ``(x, y, w)`` (iterated once per epoch, each batch checked and
        copied to the device one step ahead; ``batch_size``, ``drop_last`` and ``driver`` apply
        to arrays only; with ``devices`` each process yields its own rows of every global batch).
      loss: a distribution head (its mean NLL is minimised) or ``loss(outputs, y, w) -> scalar``.
      epochs / steps: how long (exactly one), counted from step 0 of the state: a state that has
        trained (or was restored) trains on until that total. (Streamed epochs are passes over the
        iterable, counted from the checkpoint resumed from, else from 0.)
      batch_size, drop_last: see the module docstring.
      eval: ``(x, y)`` evaluated every ``eval_every`` epochs (records get ``val_*`` entries).
      penalty: ``penalty(params) -> scalar`` added to the loss, e.g. ``fl.losses.l2(1e-4)``.
      augment: ``augment(key, x) -> x`` applied on the device inside the compiled steps.
      callbacks: ``fl.callbacks.EarlyStopping(...)``, ``LambdaCallback(...)``, your own ``Callback``.
      run_dir: where ``metrics.jsonl`` (one JSON object per logging point, flushed as it goes) and
        ``checkpoints/`` (orbax: the last ``keep_checkpoints``, and the best by ``best_metric``)
        are written; ``checkpoint_every`` epochs (None: never).
      resume: continue from the last checkpoint in ``run_dir``: the state, the history, the
        callbacks' states and the driver. Bit-identical to an uninterrupted run on the same machine
        (streamed: if the iterable yields the same batches on every pass).
      log_every: host interaction every this many steps (default: once per epoch).
      on_nonfinite: "stop" raises ``NonFiniteError`` naming the step and the first non-finite
        metric; "skip" needs an optimizer wrapped in ``fl.optim.apply_if_finite``.
      log_norms: also log the global gradient and update norms of every step (about a sixth of a
        small model's step, so off by default).
      progress: a tqdm bar (epoch, loss, examples/s); default: on when stderr is a terminal.
      config: a dict stored with every checkpoint (the CLI stores the resolved config).
      devices: data parallelism over a mesh ("all", a count, or a list; ``fnlearn.parallel``);
        ``batch_size`` must be a multiple of their number. None: one device.
      driver: "scan", "loop", or "auto" (measure both, keep the faster): see the module docstring.
      accumulate: k micro-batches of ``batch_size`` per update (gradient accumulation): every
        update sees k·batch_size examples, with one micro-batch's activations in memory.
      ema: a decay β such as 0.999: keep a bias-corrected moving average of the parameters in
        ``state.ema`` (``fnlearn.ema``); ``evaluate``/``predict`` use it with ``use_ema=True``.
      compute_dtype: "bfloat16" runs the forward and backward passes in bfloat16, the parameters,
        optimizer state, loss and gradients staying float32 (``fnlearn.precision``).
      shard: "params" splits parameters and optimizer state over the devices (``fnlearn.sharding``).
    """
    args = dict(locals())
    check_fit_arguments(args)
    checks.one_of("fit", "driver", driver, drivers.DRIVERS)
    obj, args["state"] = _objective(args)
    session_args = {name: args[name] for name in _SESSION_ARGS}
    session_args["eval"] = None if eval is None else _checked_eval(args["state"], eval, obj)
    fit_data = _fit_arrays if isinstance(train, tuple) else _fit_streamed
    return fit_data(args, obj, session_args)


def _objective(args: dict) -> tuple[Objective, TrainState]:
    """The objective (loss, penalty, accumulation, compute dtype) and the state (with the moving
    average ``ema`` asks for) that the steps take."""
    if args["on_nonfinite"] not in ("stop", "skip"):
        raise FnlearnError(f"on_nonfinite must be 'stop' or 'skip', got {args['on_nonfinite']!r}.")
    obj, state = configure(
        objective(args["loss"], args["penalty"]),
        args["state"],
        accumulate=args["accumulate"],
        ema=args["ema"],
        compute_dtype=args["compute_dtype"],
    )
    if args["on_nonfinite"] == "skip":
        _check_can_skip(state)
    return obj, state


def _checked_eval(state, data, obj):
    data = check_pair(data, "fit", "eval")
    check_arrays(state, *data, obj, name="evaluation data")
    return data


def _check_can_skip(state) -> None:
    from fnlearn import optim  # noqa: PLC0415 - the optimizers load only for this check

    if optim.skipped_steps(state.opt_state) is None:
        raise FnlearnError(
            "on_nonfinite='skip' needs an optimizer that can skip updates: build the state with "
            "tx = fl.optim.apply_if_finite(your_optimizer, max_consecutive_errors=5)."
        )


def _fit_streamed(args: dict, obj, session_args: dict):
    """Streamed host batches: one jitted step per batch (``fnlearn.streaming``); with ``devices``,
    each process's batches are its rows of the global batch, split over the mesh."""
    sharding.check(args["shard"], args["devices"])
    mesh = parallel.data_mesh(args["devices"])
    if args["driver"] == "scan":
        raise FnlearnError(
            "driver='scan' needs the training data as arrays, train=(x, y): streamed batches come from "
            "the host one at a time, so each runs as one jitted step. Use driver='auto' or 'loop'."
        )
    state = args["state"] if mesh is None else sharding.place(args["state"], mesh, args["shard"])
    session = Session(obj, mesh=mesh, **session_args)
    names = ("epochs", "steps", "augment", "log_every", "on_nonfinite", "log_norms", "progress", "resume")
    return fit_streaming(state, args["train"], obj, session, STREAMED, **{k: args[k] for k in names})


def _fit_arrays(args: dict, obj, session_args: dict):
    """Device-resident arrays: put them on the device (or the mesh) once, then ``_ArrayRun``."""
    sharding.check(args["shard"], args["devices"])
    state, batch_size = args["state"], args["batch_size"]
    x, y = check_pair(args["train"], "fit", "train")
    check_arrays(state, x, y, obj, name="training data", batch_size=batch_size)
    if batch_size * obj.accumulate > len(x):
        raise FnlearnError(
            f"fit: accumulate={obj.accumulate} x batch_size={batch_size} = {batch_size * obj.accumulate} "
            f"examples per update, but the training data has {len(x)}. Lower accumulate or batch_size."
        )
    batch_size *= obj.accumulate  # the examples of one update
    plan = plan_steps(len(x), batch_size, args["drop_last"], args["epochs"], args["steps"], args["log_every"])
    mesh = parallel.data_mesh(args["devices"])
    if mesh is None:
        x, y = jax.device_put(np.asarray(x)), jax.device_put(np.asarray(y))
    else:
        parallel.check_batch_size(batch_size, mesh)
        x, y = parallel.put_replicated((np.asarray(x), np.asarray(y)), mesh)
        state = sharding.place(state, mesh, args["shard"])
    run = _ArrayRun(
        x,
        y,
        plan,
        obj,
        args["augment"],
        mesh,
        args["log_norms"],
        args["on_nonfinite"],
        args["log_every"],
        Session(obj, mesh=mesh, **session_args),
        args["driver"],
    )
    return run.fit(state, args["resume"], args["progress"])


@dataclasses.dataclass
class _ArrayRun:
    """fit on device-resident arrays. The host drives the steps in one of two shapes:

    * ``whole_epochs`` (scan driver only): when nothing happens at epoch ends but writing the
      history (no evaluation, callbacks, checkpoints, logging or bar), the remaining whole epochs
      run as one compiled scan and the epochs' records are cut from its per-step metrics;
    * ``chunk``: otherwise, one chunk (an epoch, or ``log_every`` steps) at a time, the host
      waking between chunks; the next epoch's order is drawn while this one trains. Within a
      chunk the driver runs the steps: one scan (``scan_chunk``), or k jitted steps dispatched
      ahead (``loop_chunk``).

    Same steps, same batches either way.
    """

    x: jax.Array
    y: jax.Array
    plan: object
    obj: Objective
    augment: Callable | None
    mesh: object
    log_norms: bool
    on_nonfinite: str
    log_every: int | None
    session: Session
    driver: str
    bar: object = None
    order_key: object = None
    orders: dict = dataclasses.field(default_factory=dict)  # epoch -> (indices, weights), drawn ahead
    accumulate: Accumulator = dataclasses.field(default_factory=Accumulator)
    buffers: dict | None = None  # the loop driver's per-step metrics, one row per step of the epoch
    current_epoch: int = -1
    epoch_start: float = 0.0

    @property
    def batch_sharding(self):
        return None if self.mesh is None else parallel.batch_sharded(self.mesh)

    def fit(self, state, resume: bool, progress) -> tuple[TrainState, History]:
        session, plan = self.session, self.plan
        try:
            state = session.open(state, resume)
            self.order_key = jax.random.fold_in(state.key, ORDER_SALT)  # data order: fixed for the whole run
            session.record_driver(self.choose(state).as_dict())
            self.driver = session.history.driver["driver"]
            self.bar = progress_bar(progress, plan.total_steps, int(state.step))
            one_program = self.driver == "scan" and not (
                session.callbacks or session.eval is not None or session.checkpoints is not None
            )
            one_program = one_program and self.log_every is None and self.bar is None
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

    def choose(self, state) -> drivers.DriverChoice:
        """The driver asked for; with "auto", the one the checkpoint resumed from recorded (so that
        resuming is exact), else the faster one measured on a copy of the state."""
        restored = self.session.restored_driver
        if self.driver != "auto":
            return drivers.DriverChoice(self.driver, "asked for")
        if restored is not None and restored.get("driver") in ("scan", "loop"):
            return drivers.DriverChoice(**restored)
        if jax.process_count() > 1:  # each process would time its own steps, and might choose apart
            return drivers.DriverChoice("scan", "several processes: the same driver in each, not timed")
        if int(state.step) >= self.plan.total_steps:
            return drivers.DriverChoice("scan", "nothing left to train")
        key = self.program_key(state)
        if key in _CHOICES:
            earlier = _CHOICES[key]
            return dataclasses.replace(
                earlier, reason=f"{earlier.reason}; measured by an earlier fit of the same program"
            )
        indices, weights = self.order(int(state.step) // self.plan.steps_per_epoch)
        probe = {"state": jax.tree.map(jnp.copy, state), "buffers": self.new_buffers(state, indices, weights)}
        stepper = self.stepper()

        def loop_step():
            probe["state"], probe["buffers"] = stepper(
                probe["state"], probe["buffers"], self.x, self.y, indices, weights
            )
            return probe["state"].step

        def scan_steps(k):
            if k == len(indices):  # the run's own chunk: the program training runs
                probe["state"], stacked = self.run_scan(probe["state"], indices, weights)
                return stacked
            rows = jnp.arange(k) % len(indices)  # any k rows of the epoch: the cost is the same
            probe["state"], stacked = self.run_scan(probe["state"], indices[rows], weights[rows])
            return stacked

        remaining = self.plan.total_steps - int(state.step)
        choice = drivers.choose_driver(
            loop_step, scan_steps, remaining_steps=remaining, scan_length=self.plan.chunk
        )
        self.buffers = probe["buffers"]  # reused: every row is written before it is read
        if choice.scan_s_per_step is not None:  # measured both: later fits of this program reuse it
            _CHOICES[key] = choice
        return choice

    def program_key(self, state) -> tuple:
        """What decides the compiled step's cost: the state's structure and shapes, the data's,
        the objective, augmentation, sharding and metrics; fits that share it share auto's choice."""
        leaves, tree = jax.tree.flatten((state, self.x, self.y))
        shapes = tuple((leaf.shape, str(leaf.dtype)) for leaf in leaves)
        statics = (self.obj, self.augment, self.batch_sharding, self.log_norms, self.plan.batch_size)
        return (tree, shapes, *statics, self.plan.steps_per_epoch)

    def order(self, epoch: int):
        """Epoch ``epoch``'s (indices, weights), drawn on the device (and kept for one epoch)."""
        if epoch not in self.orders:
            self.orders = {epoch: self.draw_order(epoch)}
        return self.orders[epoch]

    def draw_order(self, epoch: int):
        return _epoch_order_jit(self.order_key, epoch, self.plan.n, self.plan.batch_size, self.plan.drop_last)

    def stepper(self):
        return drivers.loop_stepper(
            self.plan.steps_per_epoch, self.obj, self.augment, self.batch_sharding, self.log_norms
        )

    def new_buffers(self, state, indices, weights) -> dict:
        """Zeroed metric buffers; their shapes traced once per program (see ``program_key``)."""
        key = self.program_key(state)
        if key not in _METRIC_SHAPES:
            batch = (self.x[indices[0]], self.y[indices[0]], weights[0])
            _METRIC_SHAPES[key] = drivers.metric_shapes(state, batch, self.obj, self.augment, self.log_norms)
        buffers = drivers.zero_buffers(_METRIC_SHAPES[key], len(indices))
        return buffers if self.mesh is None else parallel.put_replicated(buffers, self.mesh)

    def run_scan(self, state, indices, weights):
        return drivers.run_chunk(
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

    def scan_chunk(self, state, indices, weights, position: int, k: int):
        """Steps position..position+k of the epoch as one compiled scan; (state, read metrics)."""
        if k < len(indices):
            indices, weights = indices[position : position + k], weights[position : position + k]
        state, stacked = self.run_scan(state, indices, weights)
        return state, lambda: jax.device_get(stacked)

    def loop_chunk(self, state, indices, weights, position: int, k: int):
        """The same steps as k calls of the jitted step, dispatched without waiting; the metrics
        stay in the device buffers until the returned reader is called."""
        if self.buffers is None:
            self.buffers = self.new_buffers(state, indices, weights)
        stepper, buffers = self.stepper(), self.buffers
        with drivers.noticed_interrupts() as check:
            for _ in range(k):
                state, buffers = stepper(state, buffers, self.x, self.y, indices, weights)
                check()
        self.buffers = buffers

        def read():
            return {name: v[position : position + k] for name, v in jax.device_get(buffers).items()}

        return state, read

    def chunk(self, state, step: int):
        """The next chunk of steps; at an epoch's end, the session's epoch end."""
        plan, session = self.plan, self.session
        epoch, position = divmod(step, plan.steps_per_epoch)
        if epoch != self.current_epoch:
            self.current_epoch, self.epoch_start = epoch, time.perf_counter()
        indices, weights = self.order(epoch)
        k = min(plan.chunk, plan.steps_per_epoch - position, plan.total_steps - step)
        tick = time.perf_counter()
        run = self.loop_chunk if self.driver == "loop" else self.scan_chunk
        state, read = run(state, indices, weights, position, k)
        if position + k == plan.steps_per_epoch and step + k < plan.total_steps:
            # drawn while this chunk trains, so the host need not wait for it at the epoch's end
            self.orders[epoch + 1] = self.draw_order(epoch + 1)
        host = self.accumulate.add(read())
        stop_if_nonfinite(host, step, self.on_nonfinite)
        step += k
        self.show(epoch, host, k, tick)
        if step % plan.steps_per_epoch and step != plan.total_steps:  # inside an epoch
            if self.log_every is not None:
                fraction = epoch + (position + k) / plan.steps_per_epoch
                session.log(
                    {"step": step, "epoch": fraction, "time": session.elapsed()} | epoch_summaries(host, 1)[0]
                )
            return state, step
        speed = plan.batch_size * (position + k) / max(time.perf_counter() - self.epoch_start, 1e-9)
        state = session.end_epoch(
            state,
            epoch=epoch + 1,
            step=step,
            train=self.accumulate.means(),
            examples_per_second=speed,
            last=step == plan.total_steps,
        )
        return state, step

    def show(self, epoch: int, host: dict, k: int, tick: float) -> None:
        if self.bar is not None:
            self.bar.update(k)
            self.bar.set_postfix(
                epoch=epoch + 1,
                loss=f"{float(np.mean(host['loss'])):.4f}",
                ex_per_s=f"{k * self.plan.batch_size / max(time.perf_counter() - tick, 1e-9):.0f}",
            )

    def whole_epochs(self, state, epoch: int, count: int):
        """``count`` whole epochs from ``epoch`` as one compiled scan; appends one record per epoch."""
        plan, tick = self.plan, time.perf_counter()
        state, stacked = drivers.run_epochs(
            state,
            self.x,
            self.y,
            self.order_key,
            jnp.asarray(epoch, jnp.int32),
            count=count,
            batch_size=plan.batch_size,
            drop_last=plan.drop_last,
            obj=self.obj,
            augment=self.augment,
            batch_sharding=self.batch_sharding,
            norms=self.log_norms,
        )
        host = jax.device_get(stacked)
        spe, first = plan.steps_per_epoch, epoch * plan.steps_per_epoch
        stop_if_nonfinite(host, first, self.on_nonfinite)
        speed = plan.batch_size * spe * count / max(time.perf_counter() - tick, 1e-9)
        now = self.session.elapsed()
        for j, summary in enumerate(epoch_summaries(host, count)):
            self.session.append(
                {"epoch": epoch + j + 1, "step": first + (j + 1) * spe, "time": now}
                | summary
                | {"examples_per_second": speed}
            )
        return state, first + count * spe
