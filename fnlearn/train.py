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

from fnlearn import checks, losses, optim
from fnlearn.distributions import Head
from fnlearn.errors import FnlearnError
from fnlearn.nn import Model
from fnlearn.tree import global_norm

__all__ = [
    "TrainState",
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
    data_fields=["step", "params", "model_state", "opt_state", "key"],
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
    weights) -> scalar`` (then ``head`` is None), plus an optional parameter penalty.

    It is hashable and compares by its fields, so it can be a static argument of ``jit``: fitting
    twice with the same head, model and optimizer reuses the compiled program.
    """

    loss: Callable | None
    head: Head | None
    penalty: Callable | None = None

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


def train_step(state: TrainState, batch, obj: Objective, augment: Callable | None = None, norms: bool = True):
    """One update (not jitted; ``make_train_step`` and ``fit`` compile it).

    ``norms=False`` leaves out ``grad_norm`` and ``update_norm``: two reductions over every
    parameter, about a sixth of a small MLP's step on a CPU (measured), so ``fit`` logs them only
    when asked (``log_norms=True``).
    """
    x, y, w = _unpack(batch)
    dropout_key = step_key(state)
    if augment is not None:
        augment_key, dropout_key = jax.random.split(dropout_key)
        x = augment(augment_key, x)

    def total_loss(params):
        outputs, model_state = state.model.apply(params, state.model_state, x, train=True, key=dropout_key)
        data_loss = obj(outputs, y, w)
        penalty = obj.penalty(params) if obj.penalty is not None else jnp.zeros((), data_loss.dtype)
        return data_loss + penalty, (data_loss, penalty, outputs, model_state)

    grads, (data_loss, penalty, outputs, model_state) = jax.grad(total_loss, has_aux=True)(state.params)
    # The loss goes to the optimizer as optax's extra argument ``value`` (reduce_on_plateau reads it).
    tx = optim.with_extra_args_support(state.tx)
    updates, opt_state = tx.update(grads, state.opt_state, state.params, value=data_loss + penalty)
    params = optim.apply_updates(state.params, updates)
    metrics = {"loss": data_loss}
    if norms:
        metrics |= {"grad_norm": global_norm(grads), "update_norm": global_norm(updates)}
    if obj.penalty is not None:
        metrics["penalty"] = penalty
    lr = optim.learning_rate(opt_state)
    if lr is not None:
        metrics["learning_rate"] = jnp.asarray(lr, jnp.float32)
    skipped = optim.skipped_steps(opt_state)
    if skipped is not None:
        metrics["skipped_steps"] = jnp.asarray(skipped, jnp.float32)
    for name, values in obj.per_example_metrics(jax.lax.stop_gradient(outputs), y).items():
        metrics[name] = losses.weighted_mean(values, w)
    new_state = state.replace(
        step=state.step + 1, params=params, model_state=model_state, opt_state=opt_state
    )
    return new_state, metrics


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
