"""fit's path for data that does not fit in device memory: ``train`` is an iterable of host
batches ``(x, y)`` or ``(x, y, w)``, iterated once per epoch; each batch is checked on the host and
copied to the device while the step before it trains (prefetching), and one jitted step runs per
batch (the loop driver's way; a scan needs its data on the device).

With a mesh (``fit(..., devices=...)``, ``fnlearn.parallel``) every process yields only its own
rows of each global batch, the same number in every process and a multiple of its devices on the
mesh; the global batch is the processes' rows in process order, split over the devices
(``jax.make_array_from_process_local_data``). Every process must yield the same number of batches."""

from __future__ import annotations

import time
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn import parallel
from fnlearn.errors import FnlearnError
from fnlearn.inputs import check_arrays
from fnlearn.session import Session, epoch_summaries, progress_bar, stop_if_nonfinite
from fnlearn.train import Objective, TrainState, make_train_step

__all__ = ["STREAMED", "fit_streaming"]

# how the streamed path drives its steps, as recorded in ``history.driver``
STREAMED = {
    "driver": "loop",
    "reason": "streamed host batches: one jitted step per batch",
    "loop_s_per_step": None,
    "scan_s_per_step": None,
}


def fit_streaming(
    state,
    batches: Iterable,
    obj,
    session: Session,
    driver: dict,
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
    _check_length(batches, epochs, steps)
    step_fn = make_train_step(obj, augment=augment, norms=log_norms)
    bar = None
    try:
        state = session.open(state, resume)
        session.record_driver(driver)
        epoch, step = session.epochs_done(), int(state.step)
        bar = progress_bar(progress, steps, step)
        while (
            not session.stop_training
            and (epochs is None or epoch < epochs)
            and (steps is None or step < steps)
        ):
            tick, first = time.perf_counter(), step
            pending, logged, examples = [], 0, 0
            for batch in _prefetch(_checked_batches(batches, state, obj, epoch, session.mesh), session.mesh):
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


def _check_length(batches: Iterable, epochs, steps) -> None:
    """Exactly one of epochs and steps; several epochs need something that can be iterated again."""
    if (epochs is None) == (steps is None):
        raise FnlearnError("fit needs exactly one of epochs=... or steps=... (how long to train).")
    if epochs is not None and epochs > 1 and iter(batches) is batches:
        raise FnlearnError(
            f"train is an iterator, which runs out after one pass, but epochs={epochs}. Pass something "
            f"iterable again every epoch (a list, or a class whose __iter__ returns a fresh generator), or use steps=...."
        )


def _stack_to_host(per_step: list[dict]) -> dict:
    """Per-step metric dicts (on the device) as one host array per metric."""
    return jax.device_get(jax.tree.map(lambda *v: jnp.stack(v), *per_step))


def _checked_batches(batches: Iterable, state: TrainState, obj: Objective, epoch: int, mesh=None):
    """The streamed batches as tuples, each checked on the host before it goes anywhere (shapes,
    targets, NaN/Inf): a bad batch gets the same clear error as bad arrays, naming the batch."""
    for i, batch in enumerate(batches):
        if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
            raise FnlearnError(
                f"streamed batch {i + 1} of epoch {epoch + 1} is not (x, y) or (x, y, weights): got {type(batch).__name__}."
            )
        check_arrays(state, batch[0], batch[1], obj, name=f"streamed batch {i + 1} of epoch {epoch + 1}")
        if mesh is not None and len(batch[0]) % len(mesh.local_devices):
            raise FnlearnError(
                f"streamed batch {i + 1} of epoch {epoch + 1} has {len(batch[0])} rows, which do not split "
                f"evenly over this process's {len(mesh.local_devices)} devices. Yield a multiple of "
                f"{len(mesh.local_devices)} rows (this process's share of the global batch)."
            )
        yield tuple(batch)


def _prefetch(batches: Iterable, mesh=None):
    """Yield device copies of ``batches``, the next one already on its way (jax copies
    asynchronously); with a mesh, each batch as this process's rows of the global batch."""
    put = jax.device_put if mesh is None else lambda batch: parallel.put_process_rows(batch, mesh)
    iterator = iter(batches)
    try:
        ahead = put(tuple(next(iterator)))
    except StopIteration:
        return
    for batch in iterator:
        current, ahead = ahead, put(tuple(batch))
        yield current
    yield ahead
