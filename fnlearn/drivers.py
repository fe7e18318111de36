"""How ``fit`` drives its compiled steps over device-resident data, and how it chooses.

Two drivers run the same steps on the same batches (each gathers its minibatch from the
device-resident arrays by index, on the device):

* ``"scan"``: the k steps between two host interactions as **one compiled ``lax.scan``**
  (``run_chunk``; or whole epochs, ``run_epochs``): no Python per step. Compiled once per
  distinct k (at most three: the chunk, the epoch's remainder, the run's last chunk).
* ``"loop"``: **one jitted step** (``loop_stepper``) called from a Python loop, asynchronously:
  the host dispatches every step of a chunk without waiting, each step writes its metrics into
  a donated device buffer (one row per step of the epoch), and the host reads that buffer once,
  at the chunk's end. Compiled once per run, whatever the chunk lengths.

Neither is faster everywhere. On XLA:CPU a convolution inside a loop body is several times
slower than the same convolution in a straight-line program (jax-ml/jax#12868, open), so the
scan loses on CNNs; on small MLPs the scan saves the ~0.1 ms a Python dispatch costs per step and
wins by up to 1.5×. ``choose_driver`` therefore decides by measurement (``driver="auto"``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import signal
import statistics
import threading
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp

from fnlearn.order import epoch_order
from fnlearn.train import train_step

__all__ = [
    "DRIVERS",
    "DriverChoice",
    "choose_driver",
    "loop_stepper",
    "metric_shapes",
    "run_chunk",
    "run_epochs",
    "zero_buffers",
]

DRIVERS = ("auto", "scan", "loop")

# auto: below this many seconds of loop steps, the scan is not measured (see choose_driver)
MEASURE_ABOVE_S = 0.25
PROBE_BUDGET_S = 0.1  # seconds of timed steps per driver, at most (plus one warm-up call each)
# the scan probe's length is chosen so one call takes about this long: long enough that the fixed
# cost of a call (dispatch, wait, read back: ~1 ms) is small against its steps (with 16 steps of a
# 0.07 ms MLP step it was most of the call, and auto wrongly chose the loop)
SCAN_PROBE_CALL_S = 0.05
SCAN_PROBE_LENGTHS = (2, 512)  # ... within these bounds (2: XLA keeps a loop of two trips a loop)
# ... unless the run's own chunk (scan_length) takes at most this long per call: then the probe runs
# the very program training runs, compiled once for both (and, its length fixed by the run rather
# than by a timing, found again in the persistent compilation cache by the next run)
SCAN_PROBE_MAX_CALL_S = 0.25


# --------------------------------------------------------------------------------------------
# the compiled programs


def _gather(x, y, idx, w, batch_sharding):
    batch = (x[idx], y[idx], w)
    if batch_sharding is not None:
        batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
    return batch


def scan_steps(state, x, y, indices, weights, obj, augment, batch_sharding=None, norms=False):
    """k train steps as one lax.scan over rows of (indices, weights); returns stacked metrics.
    With ``batch_sharding`` each gathered minibatch is split across the devices of a mesh."""

    def body(state, row):
        idx, w = row
        return train_step(state, _gather(x, y, idx, w, batch_sharding), obj, augment, norms)

    return jax.lax.scan(body, state, (indices, weights))


def scan_epochs(
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
    draws each one's order on the device, an inner one (``scan_steps``) takes its steps. Returns the
    metrics stacked as [count · steps_per_epoch]."""

    def one_epoch(state, epoch):
        indices, weights = epoch_order(order_key, epoch, len(x), batch_size, drop_last)
        return scan_steps(state, x, y, indices, weights, obj, augment, batch_sharding, norms)

    state, stacked = jax.lax.scan(one_epoch, state, first_epoch + jnp.arange(count))
    return state, jax.tree.map(lambda v: v.reshape(-1, *v.shape[2:]), stacked)


# Compiled once per (objective, augmentation, sharding, shapes), shared by every fit call: fitting
# again with the same head, model and optimizer reuses the program.
run_chunk = jax.jit(
    scan_steps, static_argnames=("obj", "augment", "batch_sharding", "norms"), donate_argnums=(0,)
)
run_epochs = jax.jit(
    scan_epochs,
    static_argnames=("count", "batch_size", "drop_last", "obj", "augment", "batch_sharding", "norms"),
    donate_argnums=(0,),
)


def _loop_step(
    state, buffers, x, y, indices, weights, *, steps_per_epoch, obj, augment, batch_sharding, norms
):
    """Step ``t = state.step`` on row ``p = t mod steps_per_epoch`` of the epoch's (indices,
    weights); its metrics go to row p of ``buffers``. Only device values in, so nothing is copied
    from the host per step."""
    p = state.step % steps_per_epoch
    batch = _gather(x, y, indices[p], weights[p], batch_sharding)
    state, metrics = train_step(state, batch, obj, augment, norms)
    return state, {name: buffers[name].at[p].set(value) for name, value in metrics.items()}


@functools.lru_cache(maxsize=64)
def loop_stepper(steps_per_epoch: int, obj, augment, batch_sharding, norms: bool) -> Callable:
    """The jitted ``(state, buffers, x, y, indices, weights) -> (state, buffers)`` of the loop
    driver, the state and buffers donated; one per configuration, shared by every fit call (the
    static arguments are bound here so that the per-step call hashes nothing)."""
    step = functools.partial(
        _loop_step,
        steps_per_epoch=steps_per_epoch,
        obj=obj,
        augment=augment,
        batch_sharding=batch_sharding,
        norms=norms,
    )
    return jax.jit(step, donate_argnums=(0, 1))


def metric_shapes(state, batch, obj, augment, norms: bool) -> dict:
    """The shape and dtype of every metric the train step returns (traced, not run)."""
    return jax.eval_shape(lambda s, b: train_step(s, b, obj, augment, norms)[1], state, batch)


def zero_buffers(shapes: dict, rows: int) -> dict:
    """The loop driver's metric buffers: ``rows`` (one per step of an epoch) per metric."""
    return {name: jnp.zeros((rows, *v.shape), v.dtype) for name, v in shapes.items()}


@contextlib.contextmanager
def noticed_interrupts():
    """Yields ``check()``, which raises KeyboardInterrupt if Ctrl-C came since the block began.

    The loop driver spends its time inside jax's dispatch of the jitted step, where a
    KeyboardInterrupt raised by Python's handler could be caught on the way (by a fallback from
    jax's fast path, say) and the run would train on. While the block runs, SIGINT also sets a
    flag, and the loop calls ``check()`` after every step, so Ctrl-C stops it within one step. Only in the main thread and over Python's default handler:
    a handler of the caller's is left alone."""
    hit: list[int] = []
    own = threading.current_thread() is threading.main_thread()
    own = own and signal.getsignal(signal.SIGINT) is signal.default_int_handler

    def handler(signum, frame):
        hit.append(signum)
        signal.default_int_handler(signum, frame)

    def check():
        if hit:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler) if own else None
    try:
        yield check
    finally:
        if own:
            signal.signal(signal.SIGINT, previous)


# --------------------------------------------------------------------------------------------
# auto: the choice, by measurement


@dataclasses.dataclass(frozen=True)
class DriverChoice:
    """Which driver runs the steps, why, and the measured seconds per step (None: not measured)."""

    driver: str
    reason: str
    loop_s_per_step: float | None = None
    scan_s_per_step: float | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def choose_driver(
    loop_step: Callable[[], object],
    scan_steps: Callable[[int], object],
    *,
    remaining_steps: int,
    scan_length: int | None = None,
    measure_above_s: float | None = None,
    budget_s: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> DriverChoice:
    """Time the same training step both ways and pick the faster.

    ``loop_step()`` dispatches one jitted step and returns its output (not waited for);
    ``scan_steps(k)`` runs k steps as one compiled scan and returns its output. Both should run on
    a throwaway copy of the state. Any driver can use this: ``fit`` passes its own steps; a
    vmapped trainer (``fl.replicas``) passes its vmapped step and vmapped scan.

    1. The loop: one warm-up step (compilation), then rounds of 1, 2, 4, ... steps dispatched ahead
       and waited for at the round's end, until ``budget_s``; t_loop = the last round's time ÷ its
       steps (the largest round: the least weight on the one wait per round).
    2. The scan's probe runs k steps per call (step 3), a warm-up call and at least two timed
       ones: 3k steps. If the whole run by the loop is shorter than that,
       remaining_steps · t_loop < max(measure_above_s, 3k · t_loop) (``measure_above_s`` = 0.25 s
       stands for the scan's compilation, a few tenths of a second on a CPU even for a tiny
       model), measuring the scan would cost more than the loop can lose on such a run (its
       overhead is one dispatch, ~0.1 ms, per step): choose the loop without measuring. Tiny runs
       (tests, smoke runs) and a few steps of a large model thus pay one compilation, the loop's,
       and a few probe steps.
    3. The scan: k = ``scan_length`` (the run's chunk, whose program training compiles anyway) if
       it is 2 or more and a call takes at most SCAN_PROBE_MAX_CALL_S (0.25 s) by t_loop, else
       k = clamp(SCAN_PROBE_CALL_S / t_loop, 2, 512) steps per call (about 0.05 s); one warm-up
       call, then calls until ``budget_s`` (2 to 5 of them); t_scan = median call ÷ k.
    4. The loop if t_loop < t_scan, else the scan (a tie keeps the scan: no Python per step).
    """
    measure_above_s = MEASURE_ABOVE_S if measure_above_s is None else measure_above_s
    budget_s = PROBE_BUDGET_S if budget_s is None else budget_s
    jax.block_until_ready(loop_step())
    t_loop = _time_loop(loop_step, budget_s, clock)
    length = _scan_probe_length(t_loop, scan_length)
    if remaining_steps * t_loop < max(measure_above_s, (1 + _MIN_CALLS) * length * t_loop):
        return DriverChoice(
            "loop",
            f"short run ({remaining_steps} steps, ~{remaining_steps * t_loop:.2g} s by the loop): "
            f"not worth measuring the scan",
            t_loop,
        )
    jax.block_until_ready(scan_steps(length))
    t_scan = _time_calls(lambda: scan_steps(length), budget_s, clock) / length
    faster = "loop" if t_loop < t_scan else "scan"
    return DriverChoice(
        faster,
        f"measured: {faster} faster ({t_loop:.3g} s/step loop, {t_scan:.3g} s/step scan)",
        t_loop,
        t_scan,
    )


def _scan_probe_length(t_loop: float, scan_length: int | None) -> int:
    """Steps per probe call of the scan: the run's own chunk when it is short enough (see
    ``choose_driver``), else about SCAN_PROBE_CALL_S of steps, within SCAN_PROBE_LENGTHS."""
    low, high = SCAN_PROBE_LENGTHS
    if scan_length is not None and low <= scan_length and scan_length * t_loop <= SCAN_PROBE_MAX_CALL_S:
        return int(scan_length)
    return int(min(high, max(low, math.ceil(SCAN_PROBE_CALL_S / t_loop))))


def _time_loop(loop_step, budget_s: float, clock, max_round: int = 64) -> float:
    """Seconds per step of the largest round of steps dispatched ahead (see ``choose_driver``)."""
    spent, n = 0.0, 1
    while True:
        tick = clock()
        out = None
        for _ in range(n):
            out = loop_step()
        jax.block_until_ready(out)
        took = clock() - tick
        spent += took
        if spent >= budget_s or n >= max_round:
            return took / n
        n *= 2


_MIN_CALLS = 2  # timed calls of the scan's probe, at least


def _time_calls(call, budget_s: float, clock, min_calls: int = _MIN_CALLS, max_calls: int = 5) -> float:
    """The median time of calls of ``call()`` (each waited for), until ``budget_s``."""
    times: list[float] = []
    while len(times) < min_calls or (sum(times) < budget_s and len(times) < max_calls):
        tick = clock()
        jax.block_until_ready(call())
        times.append(clock() - tick)
    return statistics.median(times)
