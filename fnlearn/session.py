"""The host side of training, shared by ``fit``'s strategies and ``fl.replicas``: the plan of steps,
per-epoch summaries of the per-step metrics, the NaN guard, the session (resume, history,
``metrics.jsonl``, evaluation, callbacks, checkpoints), the callbacks' saved states, the
progress bar."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

from fnlearn import atomic, distributed, sharding
from fnlearn.callbacks import FitContext, NonFiniteError, monitored_value
from fnlearn.errors import FnlearnError
from fnlearn.evaluation import evaluate
from fnlearn.order import steps_per_epoch
from fnlearn.rules import LATEST_VALUE, with_perplexity
from fnlearn.train import Objective, TrainState

__all__ = [
    "History",
    "Plan",
    "Accumulator",
    "Session",
    "epoch_summaries",
    "plan_steps",
    "progress_bar",
    "stop_if_nonfinite",
    "open_metrics",
    "write_record",
]


class History(list):
    """One dict per epoch: ``{"epoch", "step", "time", "train_*", "val_*", ...}``. ``driver``: how
    fit drove the steps (``fnlearn.drivers.DriverChoice.as_dict()``: the driver, why, and the
    measured seconds per step), also kept in every checkpoint; None before fit chose."""

    driver: dict | None = None


@dataclasses.dataclass
class Plan:
    n: int
    batch_size: int
    drop_last: bool
    steps_per_epoch: int
    total_steps: int
    chunk: int


def plan_steps(n, batch_size, drop_last, epochs, steps, log_every) -> Plan:
    if (epochs is None) == (steps is None):
        raise FnlearnError("fit needs exactly one of epochs=... or steps=... (how long to train).")
    spe = steps_per_epoch(n, batch_size, drop_last)
    total = epochs * spe if epochs is not None else int(steps)
    if total < 1:
        raise FnlearnError(f"fit: nothing to train (epochs={epochs}, steps={steps}); give a positive number.")
    chunk = spe if log_every is None else max(1, min(int(log_every), spe))
    return Plan(n, batch_size, drop_last, spe, total, chunk)


def epoch_summaries(host: dict, epochs: int) -> list[dict]:
    """The ``train_*`` entries of ``epochs`` consecutive epochs' records from their per-step
    metrics (each stacked as [epochs · steps]): the mean over each epoch's steps, or its last value
    for the ``LATEST_VALUE`` metrics."""
    summaries = [{} for _ in range(epochs)]
    for name, values in host.items():
        per_epoch = np.asarray(values).reshape(epochs, -1)
        values = per_epoch[:, -1] if name in LATEST_VALUE else per_epoch.mean(axis=1, dtype=np.float64)
        for summary, value in zip(summaries, values):
            summary[f"train_{name}"] = float(value)
    return [with_perplexity(summary) for summary in summaries]


class Accumulator:
    """Per-step metrics between epoch ends, summarised by ``epoch_summaries`` at the epoch's end."""

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
        return epoch_summaries(host, 1)[0]


def stop_if_nonfinite(host: dict, first_step: int, on_nonfinite: str) -> None:
    """The NaN guard: raise ``NonFiniteError`` naming the step and the first non-finite metric
    (unless non-finite updates are being skipped)."""
    bad = None if on_nonfinite == "skip" else first_nonfinite(host, first_step)
    if bad is not None:
        raise NonFiniteError(
            f"training diverged: {bad} (first non-finite metric). Lower the learning rate, clip "
            f"gradients (optimizer clipping), or pass on_nonfinite='skip' with "
            f"fl.optim.apply_if_finite."
        )


def first_nonfinite(host: dict, first_step: int) -> str | None:
    """'loss = nan at step 17' for the first step (1-based) with a non-finite metric, else None."""
    bad_steps = {name: np.flatnonzero(~np.isfinite(values)) for name, values in host.items()}
    firsts = {name: int(steps[0]) for name, steps in bad_steps.items() if len(steps)}
    if not firsts:
        return None
    i = min(firsts.values())
    name = next(name for name in host if firsts.get(name) == i)  # the first metric, in logging order
    return f"{name} = {host[name][i]} at step {first_step + i + 1}"


class Session:
    """The host side of one fit call, the same for device-resident arrays and for streamed
    batches: resuming, the history and ``metrics.jsonl``, evaluation, callbacks and checkpoints."""

    def __init__(
        self,
        obj: Objective,
        *,
        callbacks,
        run_dir,
        eval,
        eval_every,
        eval_batch_size,  # noqa: A002
        checkpoint_every,
        keep_checkpoints,
        best_metric,
        config,
        mesh,
        shard=None,
    ):
        from fnlearn.checkpoint import RunCheckpoints  # noqa: PLC0415 - orbax loads only when used

        self.obj, self.callbacks, self.run_dir, self.mesh = obj, list(callbacks), run_dir, mesh
        self.shard = shard  # the state's layout on the mesh (fnlearn.sharding), restored states too
        self.eval, self.eval_every, self.eval_batch_size = eval, eval_every, eval_batch_size
        self.checkpoint_every, self.best_metric, self.config = checkpoint_every, best_metric, config
        use_checkpoints = run_dir is not None and checkpoint_every
        self.checkpoints = (
            RunCheckpoints(Path(run_dir) / "checkpoints", keep=keep_checkpoints) if use_checkpoints else None
        )
        self.history = History()
        self.start_time = time.perf_counter()
        self.metrics_file = None
        self.ctx = None
        self.restored_driver: dict | None = None  # the choice recorded in the checkpoint resumed from

    def open(self, state: TrainState, resume: bool) -> TrainState:
        """Continue from the newest checkpoint (with ``resume``: the state, the history, the time
        so far and the callbacks' states), open ``metrics.jsonl`` and start the callbacks."""
        extra = None
        if resume:
            if self.checkpoints is None:
                raise FnlearnError(
                    "resume=True needs run_dir=... (where the checkpoints are) and checkpoint_every set."
                )
            restored = self.checkpoints.restore_latest(state)
            if restored is not None:
                state, extra = restored
                if self.mesh is not None:
                    state = sharding.place(state, self.mesh, self.shard)
                self.history = History(extra["history"])
                self.restored_driver = extra.get("driver")
                self.start_time -= extra.get("elapsed", 0.0)
        self.metrics_file = open_metrics(self.run_dir, resume, self.history)
        self.ctx = FitContext(
            state=state,
            epoch=self.epochs_done(),
            step=int(state.step),
            history=self.history,
            run_dir=self.run_dir,
        )
        for cb in self.callbacks:
            cb.on_fit_start(self.ctx)
        if extra is not None:
            _load_callback_states(self.callbacks, extra, self.ctx)
        return state

    def record_driver(self, choice: dict) -> None:
        """How the steps are driven: into the history (``history.driver``) and every checkpoint."""
        self.history.driver = dict(choice)

    def epochs_done(self) -> int:
        return int(self.history[-1]["epoch"]) if self.history else 0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start_time

    @property
    def stop_training(self) -> bool:
        return self.ctx.stop_training

    def log(self, record: dict) -> None:
        """A record between epoch ends (``log_every``): in metrics.jsonl, not in the history."""
        write_record(self.metrics_file, record)

    def append(self, record: dict) -> None:
        """An epoch's record: into the history and metrics.jsonl."""
        self.history.append(record)
        write_record(self.metrics_file, record)

    def end_epoch(
        self, state: TrainState, *, epoch: int, step: int, train: dict, examples_per_second: float, last: bool
    ) -> TrainState:
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
        write_record(self.metrics_file, record)  # after the callbacks, with whatever they added to the record
        state = self.ctx.state
        if self.checkpoints is not None and (
            epoch % self.checkpoint_every == 0 or last or self.ctx.stop_training
        ):
            self._save(state, step, record)
        return state

    def _save(self, state: TrainState, step: int, record: dict) -> None:
        values, arrays = _callback_states(self.callbacks)
        extra = {
            "history": self.history,
            "elapsed": self.elapsed(),
            "config": self.config or {},
            "callbacks": values,
            "driver": self.history.driver,
        }
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
            cb.load_state_dict(
                entry["json"] | {key: [arrays[n] for n in names] for key, names in entry["arrays"].items()},
                ctx,
            )


def open_metrics(run_dir, resume: bool, history: History):
    """``RUN/metrics.jsonl`` opened for appending; None without a run directory, and in every
    process but process 0, which alone writes the run directory (``fnlearn.distributed``)."""
    if run_dir is None or not distributed.is_leader():
        return None
    path = Path(run_dir) / "metrics.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Resuming keeps exactly the records up to the checkpoint (lines written after it are replayed);
    # with no checkpoint to resume from, the run starts over and so does its file. Replaced
    # atomically: a failure here (a full disk) leaves the old file whole.
    atomic.write_text(path, "".join(json.dumps(r) + "\n" for r in history) if resume else "")
    return path.open("a", encoding="utf-8")


def write_record(file, record: dict) -> None:
    if file is not None:
        try:
            file.write(json.dumps(record) + "\n")
            file.flush()
        except OSError as error:  # a full disk: name the file
            raise type(error)(error.errno, error.strerror, file.name) from None


def progress_bar(progress: bool | None, total: int, initial: int):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress or not distributed.is_leader():  # one bar, process 0's, when several train together
        return None
    from tqdm.auto import tqdm  # noqa: PLC0415 - optional, loaded when shown

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
