"""The train state and the compiled train and evaluation steps.

``TrainState`` is a pytree of the training state: ``step``, ``params``, ``model_state`` (BatchNorm
statistics), ``opt_state`` and the run's PRNG ``key``. As in flax's
``TrainState``, the model and the optimizer ride along as *static* fields: they are functions, not
arrays, so they are part of the compiled program, not of its inputs, and a step needs nothing but
the state and a batch.

A train step is ``(state, batch) -> (state, metrics)`` with ``batch = (x, y)`` or ``(x, y, w)``:

    k_t = fold_in(key, t)                       (t = state.step; dropout, augmentation)
    ℓ(θ) = Σᵢ wᵢ·loss(f_θ(xᵢ), yᵢ) / Σᵢ wᵢ + penalty(θ)
    g = ∇ℓ(θ),  (u, opt_state) = tx.update(g, opt_state, θ, value=ℓ(θ)),  θ ← θ + u

Zero weights make padded examples count for nothing (their gradient is exactly 0), so a last
partial batch can be padded to the fixed batch shape without recompiling and without bias.

Randomness: ``state.key`` stays fixed for the whole run and step t draws from ``fold_in(key, t)``
(the pattern of flax's examples). Every step still gets its own deterministic key, the key of any
step is known without replaying the ones before it, and a model without dropout or augmentation
pays nothing for it: the unused derivation is removed by the compiler, whereas carrying a freshly
split key in the state costs a threefry hash per step (measured: 3–4 % of the 64-128-128-10 MLP's
step at batch 32 on a 2-core CPU). Derivations that are not per step (``fit``'s data order) use data ≥ 2³¹, which no int32 step
reaches, so they never coincide with a step's key.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from fnlearn import checks, losses, optim, precision
from fnlearn import ema as fema
from fnlearn.distributions import Head
from fnlearn.errors import FnlearnError
from fnlearn.nn import Model
from fnlearn.tree import global_norm

__all__ = [
    "TrainState",
    "configure",
    "step_key",
    "Objective",
    "objective",
    "train_step",
    "make_train_step",
    "eval_sums",
    "make_eval_step",
]


@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything training changes, plus the (static) model and optimizer that change it."""

    step: jax.Array
    params: Any
    model_state: Any
    opt_state: Any
    key: jax.Array
    model: Model = dataclasses.field(metadata={"static": True})
    tx: optim.GradientTransformation = dataclasses.field(metadata={"static": True})
    ema: Any = None  # fnlearn.ema.EmaState: a moving average of the params (fit(..., ema=β)), or None

    @classmethod
    def create(cls, model: Model, tx, key: jax.Array) -> TrainState:
        """Initialise the model and the optimizer from one key.

        The key is split in two: one initialises the parameters, the other becomes ``state.key``,
        from which step t derives its key as ``fold_in(key, t)`` (and fit its data order).
        """
        if not isinstance(model, Model):
            raise FnlearnError(
                "TrainState.create: model must be a fl.nn.Model such as fl.nn.mlp([4, 16, 3]), got "
                f"{checks.show(model)}."
            )
        if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
            raise FnlearnError(
                "TrainState.create: tx must be an optimizer (init and update) such as fl.optim.adam(1e-3), "
                f"got {checks.show(tx)}."
            )
        return _create(model, tx, _as_typed_key(key))

    def replace(self, **changes) -> TrainState:
        return dataclasses.replace(self, **changes)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _create(model, tx, key) -> TrainState:
    """Compiled: one program instead of an eager dispatch per layer and per optimizer leaf (and
    every leaf its own buffer, as donation needs)."""
    init_key, train_key = jax.random.split(key)
    params, model_state = model.init(init_key)
    return TrainState(jnp.zeros((), jnp.int32), params, model_state, tx.init(params), train_key, model, tx)


jax.tree_util.register_dataclass(
    TrainState,
    data_fields=["step", "params", "model_state", "opt_state", "key", "ema"],
    meta_fields=["model", "tx"],
)


def _as_typed_key(key) -> jax.Array:
    """Accept a typed key, a legacy uint32[2] key, or an int seed (a 64-bit signed integer)."""
    if checks.is_integer(key):
        if not -(2**63) <= key < 2**63:
            raise FnlearnError(
                f"TrainState.create: an int seed must fit in 64 bits (|seed| < 2**63), got {key}."
            )
        return jax.random.key(int(key))
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        return key
    if dtype == jnp.uint32 and shape == (2,):
        return jax.random.wrap_key_data(key)
    raise FnlearnError(
        f"TrainState.create needs a PRNG key such as jax.random.key(0) (or an int seed), got {key!r}."
    )


@dataclasses.dataclass(frozen=True)
class Objective:
    """What a step minimises and reports: the mean NLL of a ``head``, or a plain ``loss(outputs, y,
    weights) -> scalar`` (then ``head`` is None), plus an optional parameter penalty; and how a
    step computes it (``accumulate`` micro-batches, ``compute_dtype``).

    It is hashable and compares by its fields, so it can be a static argument of ``jit``: fitting
    twice with the same head, model and optimizer reuses the compiled program.
    """

    loss: Callable | None
    head: Head | None
    penalty: Callable | None = None
    # how a step computes it: micro-batches per update (gradient accumulation) and the dtype of
    # the forward and backward passes (None: float32; "bfloat16": see fnlearn.precision)
    accumulate: int = 1
    compute_dtype: str | None = None

    def __call__(self, outputs, y, weights):
        """The data loss: Σ wᵢ·(−log p(yᵢ | outputsᵢ)) / Σ wᵢ for a head, else ``loss(...)``."""
        if self.loss is None:
            return losses.nll(self.head)(outputs, y, weights)
        return self.loss(outputs, y, weights)

    def per_example_metrics(self, outputs, y) -> dict:
        """The head's natural metrics per example (accuracy for classifiers, mse/mae for regression);
        for sequences the mean over each example's tokens, plus ``sequence_accuracy``."""
        return {} if self.head is None else losses.per_example(self.head.metrics(outputs, y))


def objective(loss, penalty=None) -> Objective:
    """Accept a distribution head (→ its NLL and metrics), an ``Objective``, or a loss function."""
    if isinstance(loss, Objective):
        return loss if penalty is None else dataclasses.replace(loss, penalty=penalty)
    if isinstance(loss, Head):
        return Objective(None, loss, penalty)
    if callable(loss):
        return Objective(loss, getattr(loss, "head", None), penalty)
    raise FnlearnError(
        f"loss must be a distribution head (fl.distributions.get('categorical')) or a function "
        f"loss(outputs, y, weights) -> scalar, got {type(loss).__name__}."
    )


def configure(obj: Objective, state: TrainState, *, accumulate=1, ema=None, compute_dtype=None):
    """``(obj, state)`` set up for ``fit(..., accumulate=k, ema=β, compute_dtype=...)``: k and the
    dtype become part of the (static) objective; β starts a moving average in the state (a state that
    already keeps one, restored or trained before, keeps it, and must have the same β)."""
    accumulate = checks.positive_int("fit", "accumulate", accumulate, "1 switches accumulation off.")
    compute_dtype = precision.check_compute_dtype("fit", compute_dtype)
    obj = dataclasses.replace(obj, accumulate=accumulate, compute_dtype=compute_dtype)
    if ema is None:
        return obj, state
    decay = fema.check_decay("fit", ema)
    if state.ema is None:
        return obj, state.replace(ema=fema.init(state.params, decay))
    if abs(float(state.ema.decay) - decay) > 1e-7:
        raise FnlearnError(
            f"fit: ema={decay}, but the state already averages its parameters with β = "
            f"{float(state.ema.decay):.6g}. Pass ema={float(state.ema.decay):.6g} (or state.replace(ema=None) to start over)."
        )
    return obj, state


def _unpack(batch):
    if len(batch) == 3:
        return batch
    if len(batch) == 2:
        x, y = batch
        return x, y, jnp.ones((jnp.shape(x)[0],), jnp.float32)
    raise FnlearnError(f"a batch is (x, y) or (x, y, weights); got a tuple of {len(batch)} entries.")


def step_key(state: TrainState) -> jax.Array:
    """The key of the step ``state`` is about to take: ``fold_in(state.key, state.step)``."""
    return jax.random.fold_in(state.key, state.step)


def _micro_loss(params, state, model_state, batch, obj: Objective, key, share):
    """share·data_loss + penalty/accumulate of one (micro-)batch, computed in ``obj.compute_dtype``
    with the outputs (and so the loss) in float32; aux: the data loss, the penalty, the outputs and
    the new model state."""
    x, y, w = batch
    dtype = None if obj.compute_dtype is None else jnp.dtype(obj.compute_dtype)
    compute_params, x = precision.cast_floating((params, x), dtype)
    outputs, model_state = state.model.apply(compute_params, model_state, x, train=True, key=key)
    outputs = outputs.astype(jnp.float32) if dtype is not None else outputs
    data_loss = obj(outputs, y, w)
    penalty = obj.penalty(params) if obj.penalty is not None else jnp.zeros((), data_loss.dtype)
    total = data_loss * share + penalty / obj.accumulate if obj.accumulate > 1 else data_loss + penalty
    return total, (data_loss, penalty, outputs, model_state)


def _batch_metrics(obj: Objective, outputs, y, w) -> dict:
    return {
        name: losses.weighted_mean(values, w)
        for name, values in obj.per_example_metrics(jax.lax.stop_gradient(outputs), y).items()
    }


def _accumulated(state, batch, obj: Objective, key):
    """The gradient of the whole batch's loss, summed over ``obj.accumulate`` micro-batches in a scan.

    The batch of k·b examples is cut into k micro-batches of b; with W_j = Σ_{i∈j} wᵢ and W = Σ_j W_j,
    ℓ = Σ_j (W_j/W)·ℓ_j + penalty, so ∇ℓ = Σ_j ∇[(W_j/W)·ℓ_j + penalty/k]: the full batch's gradient
    (to rounding) with one micro-batch's activations in memory. Micro-batch j draws its dropout
    from fold_in(key, j); BatchNorm's statistics are those of each micro-batch, threaded through.
    """
    k = obj.accumulate
    if batch[0].shape[0] % k:
        raise FnlearnError(
            f"accumulate={k} splits every batch into {k} equal micro-batches, but a batch has "
            f"{batch[0].shape[0]} examples. Give batches of a multiple of {k} examples."
        )
    micro = jax.tree.map(lambda a: a.reshape(k, a.shape[0] // k, *a.shape[1:]), batch)
    weight = jnp.sum(micro[2], axis=1)
    shares = weight / jnp.where(jnp.sum(weight) > 0, jnp.sum(weight), 1.0)
    grad_fn = jax.grad(_micro_loss, has_aux=True)

    def body(carry, inputs):
        grads, model_state = carry
        j, mb, share = inputs
        g, (data_loss, penalty, outputs, model_state) = grad_fn(
            state.params, state, model_state, mb, obj, jax.random.fold_in(key, j), share
        )
        metrics = {"loss": data_loss, "penalty": penalty} | _batch_metrics(obj, outputs, mb[1], mb[2])
        return (jax.tree.map(jnp.add, grads, g), model_state), metrics

    zeros = jax.tree.map(jnp.zeros_like, state.params)
    (grads, model_state), per_micro = jax.lax.scan(
        body, (zeros, state.model_state), (jnp.arange(k), micro, shares)
    )
    means = {name: jnp.sum(shares * v) for name, v in per_micro.items() if name != "penalty"}
    return grads, means, per_micro["penalty"][0], model_state


def train_step(state: TrainState, batch, obj: Objective, augment: Callable | None = None, norms: bool = True):
    """One update (not jitted; ``make_train_step`` and ``fit`` compile it).

    ``norms=False`` leaves out ``grad_norm`` and ``update_norm``: two reductions over every
    parameter, about a sixth of a small MLP's step on a CPU (measured), so ``fit`` logs them only
    when asked (``log_norms=True``). With ``obj.accumulate = k`` the batch is k micro-batches
    (``_accumulated``); a state with ``ema`` updates its moving average (``fnlearn.ema``).
    """
    x, y, w = _unpack(batch)
    dropout_key = step_key(state)
    if augment is not None:
        augment_key, dropout_key = jax.random.split(dropout_key)
        x = augment(augment_key, x)
    if obj.accumulate > 1:
        grads, metrics, penalty, model_state = _accumulated(state, (x, y, w), obj, dropout_key)
    else:
        grads, (data_loss, penalty, outputs, model_state) = jax.grad(_micro_loss, has_aux=True)(
            state.params, state, state.model_state, (x, y, w), obj, dropout_key, 1.0
        )
        metrics = {"loss": data_loss} | _batch_metrics(obj, outputs, y, w)
    # The loss goes to the optimizer as optax's extra argument ``value`` (reduce_on_plateau reads it).
    tx = optim.with_extra_args_support(state.tx)
    updates, opt_state = tx.update(grads, state.opt_state, state.params, value=metrics["loss"] + penalty)
    params = optim.apply_updates(state.params, updates)
    metrics = _step_metrics(metrics, grads, updates, penalty, opt_state, obj, norms)
    ema = None if state.ema is None else fema.update(state.ema, params)
    new_state = state.replace(
        step=state.step + 1, params=params, model_state=model_state, opt_state=opt_state, ema=ema
    )
    return new_state, metrics


def _step_metrics(metrics, grads, updates, penalty, opt_state, obj, norms) -> dict:
    """loss, [grad_norm, update_norm], [penalty], [learning_rate], [skipped_steps], the head's metrics."""
    out = {"loss": metrics["loss"]}
    if norms:
        out |= {"grad_norm": global_norm(grads), "update_norm": global_norm(updates)}
    if obj.penalty is not None:
        out["penalty"] = penalty
    lr = optim.learning_rate(opt_state)
    if lr is not None:
        out["learning_rate"] = jnp.asarray(lr, jnp.float32)
    skipped = optim.skipped_steps(opt_state)
    if skipped is not None:
        out["skipped_steps"] = jnp.asarray(skipped, jnp.float32)
    return out | {name: v for name, v in metrics.items() if name != "loss"}


def make_train_step(loss, *, penalty=None, augment=None, donate: bool = True, norms: bool = True):
    """A jitted ``(state, batch) -> (state, metrics)``; the old state's buffers are donated.

    ``loss`` is a distribution head (its NLL is minimised, its natural metric reported) or a loss
    function ``loss(outputs, y, weights) -> scalar``. ``penalty(params) -> scalar`` is added to the
    loss (``fl.losses.l2(1e-4)``). The model and optimizer come from the state. ``norms=False``
    leaves the gradient and update norms out of the metrics (see ``train_step``).
    """
    obj = objective(loss, penalty)
    step = _train_step_donated if donate else _train_step_jit
    return functools.partial(step, obj=obj, augment=augment, norms=norms)


def eval_sums(state: TrainState, batch, obj: Objective) -> dict:
    """Weighted *sums* over a batch (no dropout, running BatchNorm statistics):
    Σ wᵢ·ℓᵢ for the loss and every per-example metric, and Σ wᵢ as "weight"; divide after summing
    over all batches, so a dataset whose size is not a multiple of the batch size is averaged
    exactly."""
    x, y, w = _unpack(batch)
    outputs, _ = state.model.apply(state.params, state.model_state, x, train=False)
    if obj.head is not None:
        per_example = losses.per_example({"loss": -obj.head.log_prob(outputs, y)})  # token mean
    else:  # a plain loss function gives the weighted batch mean m; Σ wᵢ·m = m·Σ wᵢ
        per_example = {"loss": jnp.full(w.shape, obj(outputs, y, w))}
    per_example.update(obj.per_example_metrics(outputs, y))
    sums = {name: jnp.sum(w * values) for name, values in per_example.items()}
    sums["weight"] = jnp.sum(w)
    return sums


def make_eval_step(loss):
    """A jitted ``(state, batch) -> weighted sums`` (see ``eval_sums``); ``fit.evaluate`` divides."""
    return functools.partial(_eval_sums_jit, obj=objective(loss))


# Module-level compiled functions: the objective and augmentation are static (hashable) arguments,
# so every step made for the same head, model and optimizer shares one compiled program.
_train_step_jit = jax.jit(train_step, static_argnames=("obj", "augment", "norms"))
_train_step_donated = jax.jit(train_step, static_argnames=("obj", "augment", "norms"), donate_argnums=(0,))
_eval_sums_jit = jax.jit(eval_sums, static_argnames=("obj",))
