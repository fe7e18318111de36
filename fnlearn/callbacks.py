"""Callbacks run by ``fit`` between compiled chunks of steps (never inside them).

A callback gets a ``FitContext`` at the start of fit, at every epoch end and at the end of fit.
It may set ``ctx.stop_training = True`` or replace ``ctx.state`` (early stopping restores the best
weights that way).

A callback that counts or remembers something across epochs returns it from ``state_dict()``; fit
stores that with every checkpoint and hands it back to ``load_state_dict`` when it resumes, so a
resumed run's callbacks continue where they were and the run ends as an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn import checks
from fnlearn.errors import FnlearnError
from fnlearn.optim.hyperparams import find_hyperparams, set_hyperparam
from fnlearn.rules import higher_is_better, improved

__all__ = [
    "FitContext",
    "Callback",
    "EarlyStopping",
    "ReduceLROnPlateau",
    "LambdaCallback",
    "TensorBoard",
    "NonFiniteError",
    "monitored_value",
    "unknown_metric",
]


class NonFiniteError(FnlearnError):
    """Training produced a NaN or an infinity (raised by fit with on_nonfinite='stop')."""


@dataclasses.dataclass
class FitContext:
    """What a callback sees: the current state, epoch, step, the history so far and the epoch's record."""

    state: Any
    epoch: int
    step: int
    history: list
    run_dir: Any = None
    record: dict = dataclasses.field(default_factory=dict)
    stop_training: bool = False


class Callback:
    """Override any of the three hooks; each gets the ``FitContext``. A callback with memory
    (counters, best values, saved weights) also overrides ``state_dict`` and ``load_state_dict``."""

    def on_fit_start(self, ctx: FitContext) -> None:
        pass

    def on_epoch_end(self, ctx: FitContext) -> None:
        pass

    def on_fit_end(self, ctx: FitContext) -> None:
        pass

    def state_dict(self) -> dict:
        """What a resumed run needs to continue this callback: a dict whose values are JSON values
        (numbers, strings, lists, None) or pytrees of arrays. fit stores it with every checkpoint."""
        return {}

    def load_state_dict(self, saved: dict, ctx: FitContext) -> None:
        """Continue from a restored ``state_dict()`` (called after ``on_fit_start``). A pytree of
        arrays comes back as the list of its leaves (``jax.tree.leaves`` order); rebuild it with a
        structure from ``ctx.state``, e.g. ``jax.tree.unflatten(jax.tree.structure(ctx.state.params), leaves)``."""


class LambdaCallback(Callback):
    """A user hook: ``LambdaCallback(on_epoch_end=lambda ctx: print(ctx.record))``."""

    def __init__(
        self,
        on_fit_start: Callable | None = None,
        on_epoch_end: Callable | None = None,
        on_fit_end: Callable | None = None,
    ):
        self._hooks = {"on_fit_start": on_fit_start, "on_epoch_end": on_epoch_end, "on_fit_end": on_fit_end}

    def on_fit_start(self, ctx):
        if self._hooks["on_fit_start"]:
            self._hooks["on_fit_start"](ctx)

    def on_epoch_end(self, ctx):
        if self._hooks["on_epoch_end"]:
            self._hooks["on_epoch_end"](ctx)

    def on_fit_end(self, ctx):
        if self._hooks["on_fit_end"]:
            self._hooks["on_fit_end"](ctx)


def _copy(tree):
    """A copy that survives fit donating the state's buffers to the next chunk."""
    return jax.tree.map(jnp.copy, tree)


def monitored_value(record: dict, metric: str, who: str) -> float | None:
    """``record[metric]`` as a float; None on an epoch without evaluation (a ``val_`` metric when
    ``eval_every`` skipped this epoch). A metric the records never have is an error that lists
    the ones they do have."""
    if metric in record:
        return float(record[metric])
    if metric.startswith("val_") and not any(k.startswith("val_") for k in record):
        return None
    raise unknown_metric(who, metric, record)


def unknown_metric(who: str, metric: str, record: dict) -> FnlearnError:
    """The error for a monitored metric the records never have; it lists the ones they do have."""
    return FnlearnError(
        f"{who} monitors {metric!r}, which the records do not have. "
        f"Available: {', '.join(sorted(k for k in record if k not in ('epoch', 'step', 'time')))}."
    )


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` evaluations.

    Improvement: value < best − min_delta (mode "min") or value > best + min_delta (mode "max";
    the default for metrics named like accuracy). With ``restore_best=True`` the parameters and
    model state of the best epoch are put back at the end of fit — **always**, also when the
    patience never ran out.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        patience: int = 10,
        min_delta: float = 0.0,
        mode: str | None = None,
        restore_best: bool = True,
    ):
        if not isinstance(monitor, str):
            raise FnlearnError(
                "EarlyStopping: monitor must be a metric name such as 'val_loss', got "
                f"{checks.show(monitor)}."
            )
        checks.nonneg_int("EarlyStopping", "patience", patience, "It counts evaluations without improvement.")
        checks.nonneg("EarlyStopping", "min_delta", min_delta)
        checks.boolean("EarlyStopping", "restore_best", restore_best)
        mode = mode or ("max" if higher_is_better(monitor) else "min")
        if mode not in ("min", "max"):
            raise FnlearnError(f"EarlyStopping: mode must be 'min' or 'max', got {mode!r}.")
        self.monitor, self.patience, self.min_delta, self.mode, self.restore_best = (
            monitor,
            patience,
            min_delta,
            mode,
            restore_best,
        )
        self._reset()

    def _reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = None
        self.best_weights = None  # (params, model_state) of the best epoch, with restore_best
        self.wait = 0
        self.stopped_epoch = None

    def on_fit_start(self, ctx):
        self._reset()  # every fit counts afresh (a resumed one then loads its counters back)

    def _improved(self, value: float) -> bool:
        return improved(value, self.best, maximise=self.mode == "max", min_delta=self.min_delta)

    def on_epoch_end(self, ctx):
        value = monitored_value(ctx.record, self.monitor, "EarlyStopping")
        if value is None:
            return  # an epoch without evaluation (eval_every > 1)
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, ctx.epoch, 0
            if self.restore_best:
                self.best_weights = (_copy(ctx.state.params), _copy(ctx.state.model_state))
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = ctx.epoch
                ctx.stop_training = True

    def on_fit_end(self, ctx):
        if self.restore_best and self.best_weights is not None:
            params, model_state = self.best_weights
            ctx.state = ctx.state.replace(params=params, model_state=model_state)

    def state_dict(self) -> dict:
        return {
            "best": self.best if math.isfinite(self.best) else None,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, saved, ctx):
        self._reset()
        if saved["best"] is not None:
            self.best = float(saved["best"])
        self.best_epoch, self.wait, self.stopped_epoch = (
            saved["best_epoch"],
            saved["wait"],
            saved["stopped_epoch"],
        )
        if saved["best_weights"] is not None:
            structure = jax.tree.structure((ctx.state.params, ctx.state.model_state))
            self.best_weights = jax.tree.unflatten(structure, saved["best_weights"])


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving (the Keras and
    PyTorch callback of the name), between epochs, for an optimizer built with
    ``fl.optim.inject_hyperparams`` (the rate is ``hyperparams["learning_rate"]`` in the state).

    After every epoch that has the metric (epochs without evaluation are not counted)::

        counted = no cooldown left (else one cooldown epoch is used up)
        improved (value < best − min_delta; > best + min_delta in mode "max", as EarlyStopping):
            best ← value, wait ← 0
        otherwise, if counted: wait ← wait + 1, and at wait = patience:
            η ← max(η·factor, min_lr), wait ← 0, the next ``cooldown`` epochs are not counted

    The new rate is used from the next epoch on: an epoch's ``train_learning_rate`` is the rate its
    steps used. ``reductions`` lists ``{"epoch", "learning_rate"}`` of every change. The counters
    and ``reductions`` come back on resume; the rate itself is in the checkpointed optimizer state.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        factor: float = 0.1,
        patience: int = 10,
        min_delta: float = 0.0,
        cooldown: int = 0,
        min_lr: float = 0.0,
        mode: str | None = None,
    ):
        mode = mode or ("max" if higher_is_better(monitor) else "min")
        _check_plateau_arguments(factor, patience, min_delta, cooldown, min_lr, mode)
        self.monitor, self.factor, self.patience, self.min_delta = monitor, factor, patience, min_delta
        self.cooldown, self.min_lr, self.mode = cooldown, min_lr, mode
        self._reset()

    def _reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.cooldown_left = 0
        self.reductions: list[dict] = []

    def on_fit_start(self, ctx):
        self._reset()
        _injected_learning_rate(ctx.state.opt_state)  # fail now, not after the first epoch

    def on_epoch_end(self, ctx):
        value = monitored_value(ctx.record, self.monitor, "ReduceLROnPlateau")
        if value is None:
            return
        counted = self.cooldown_left == 0
        self.cooldown_left = max(self.cooldown_left - 1, 0)
        if improved(value, self.best, maximise=self.mode == "max", min_delta=self.min_delta):
            self.best, self.wait = value, 0
        elif counted:
            self.wait += 1
            if self.wait >= self.patience:
                self.wait = 0
                self._reduce(ctx)

    def _reduce(self, ctx):
        rate = _injected_learning_rate(ctx.state.opt_state)
        new = float(np.float32(max(rate * self.factor, self.min_lr)))  # as the float32 state holds it
        if new < rate:
            opt_state = set_hyperparam(ctx.state.opt_state, "learning_rate", new)
            ctx.state = ctx.state.replace(opt_state=opt_state)
            self.cooldown_left = self.cooldown
            self.reductions.append({"epoch": ctx.epoch, "learning_rate": new})

    def state_dict(self) -> dict:
        return {
            "best": self.best if math.isfinite(self.best) else None,
            "wait": self.wait,
            "cooldown_left": self.cooldown_left,
            "reductions": self.reductions,
        }

    def load_state_dict(self, saved, ctx):
        self._reset()
        if saved["best"] is not None:
            self.best = float(saved["best"])
        self.wait, self.cooldown_left = saved["wait"], saved["cooldown_left"]
        self.reductions = [dict(r) for r in saved["reductions"]]


def _check_plateau_arguments(factor, patience, min_delta, cooldown, min_lr, mode) -> None:
    problems = []
    if not 0 < factor < 1:
        problems.append(f"factor={factor!r} must lie in (0, 1) (the rate is multiplied by it), e.g. 0.1")
    if not (isinstance(patience, int) and patience >= 1):
        problems.append(f"patience={patience!r} must be a whole number >= 1 of epochs without improvement")
    if not (isinstance(cooldown, int) and cooldown >= 0):
        problems.append(f"cooldown={cooldown!r} must be a whole number >= 0 of epochs")
    if not (min_delta >= 0 and min_lr >= 0):
        problems.append(f"min_delta={min_delta!r} and min_lr={min_lr!r} must be >= 0")
    if mode not in ("min", "max"):
        problems.append(f"mode must be 'min' or 'max', got {mode!r}")
    if problems:
        raise FnlearnError(f"ReduceLROnPlateau: {'; '.join(problems)}.")


def _injected_learning_rate(opt_state) -> float:
    """The learning rate held in the state by ``inject_hyperparams``; an error naming the fix if none."""
    hyperparams = find_hyperparams(opt_state)
    if hyperparams is None or "learning_rate" not in hyperparams:
        raise FnlearnError(
            "ReduceLROnPlateau changes the learning rate held in the optimizer state, and this optimizer "
            "holds none. Build it with fl.optim.inject_hyperparams(fl.optim.adam)(learning_rate=1e-3) "
            "(a number, not a schedule)."
        )
    rate = np.asarray(hyperparams["learning_rate"])
    if rate.size != 1:
        raise FnlearnError(
            f"ReduceLROnPlateau: the learning rate has shape {rate.shape} (one per replica); "
            "it changes the rate of a single run."
        )
    return float(rate.reshape(()))


class TensorBoard(Callback):
    """Write every epoch's record as TensorBoard scalars (tag = metric name, step = train step)
    into ``log_dir``, through tensorboardX (the optional extra ``fnlearn[tensorboard]``).

    ``metrics.jsonl`` stays the source of truth; this is a view of it for ``tensorboard --logdir``.
    """

    SKIP = ("epoch", "step", "time")

    def __init__(self, log_dir):
        self.log_dir = str(log_dir)
        self._writer = None

    def on_fit_start(self, ctx):
        self._writer = _summary_writer(self.log_dir)

    def on_epoch_end(self, ctx):
        self.write(self._writer, ctx.record)

    def on_fit_end(self, ctx):
        if self._writer is not None:
            self._writer.close()

    @classmethod
    def write(cls, writer, record: dict) -> None:
        for name, value in record.items():
            if name not in cls.SKIP and isinstance(value, (int, float)) and not isinstance(value, bool):
                writer.add_scalar(name, value, global_step=int(record["step"]), walltime=None)
        writer.flush()

    @classmethod
    def write_history(cls, log_dir, records) -> None:
        """The same scalars for a finished history (used for runs trained as replicas)."""
        writer = _summary_writer(str(log_dir))
        try:
            for record in records:
                cls.write(writer, record)
        finally:
            writer.close()


def _summary_writer(log_dir: str):
    try:
        from tensorboardX import SummaryWriter  # noqa: PLC0415 - optional extra
    except ImportError:
        raise FnlearnError(
            "TensorBoard logging needs tensorboardX: pip install 'fnlearn[tensorboard]' "
            "(or turn logging.tensorboard off)."
        ) from None
    return SummaryWriter(log_dir)
