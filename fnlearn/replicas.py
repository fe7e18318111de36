"""Many independent training runs in one compiled program: seeds and hyperparameters, vmapped.

``create(model, tx, seeds, hyperparams=...)`` stacks S train states along a leading replica axis:
replica i is exactly ``TrainState.create(model, tx, jax.random.key(seeds[i]))`` with its own
hyperparameters. Hyperparameters that keep shapes can differ between replicas because they are
data, not code: the optimizer's numeric arguments live in its state when it is built with
``fl.optim.inject_hyperparams`` (learning rate, weight decay, β's, ...), and dropout layers keep
their rate in the model state (the name ``"dropout"`` sets every dropout layer's rate).

``fit(states, train, ...)`` trains them together: the steps between host interactions are one
``lax.scan`` of a ``vmap`` of the same train step ``fl.fit`` uses, each replica drawing its own
minibatches from its own key. Replica i's result equals a single ``fl.fit`` with the same seed and
hyperparameters (to float32 rounding: batched matrix products may sum in another order).

Each replica can stop on its own: a replica whose loss or gradient turns non-finite is frozen at its
last finite state and marked ``diverged``; with ``early_stopping`` a replica whose monitored
metric stops improving is frozen (and, with ``restore_best``, gets its best parameters back at the
end). The program runs on until every replica has stopped or the budget is spent.

``fit`` never donates the caller's states (it copies them once), calls ``after_epoch`` with the
states after every epoch (where ``fnlearn sweep`` checkpoints each replica), and continues restored
states with ``initial_step``.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn import checks, rules
from fnlearn.callbacks import EarlyStopping, unknown_metric
from fnlearn.drivers import DRIVERS, DriverChoice, choose_driver
from fnlearn.errors import FnlearnError
from fnlearn.evaluation import eval_scan, padded_batches
from fnlearn.inputs import check_arrays, check_length, check_pair, check_state
from fnlearn.optim.hyperparams import find_hyperparams
from fnlearn.order import ORDER_SALT, epoch_order
from fnlearn.session import Plan as StepPlan
from fnlearn.session import open_metrics, plan_steps, progress_bar, write_record
from fnlearn.train import TrainState, objective, train_step
from fnlearn.tree import path_str

__all__ = ["ReplicaHistory", "create", "fit", "num_replicas", "replica"]


def num_replicas(states: TrainState) -> int:
    return int(states.step.shape[0])


def replica(states: TrainState, i: int) -> TrainState:
    """Replica ``i`` as an ordinary ``TrainState``."""
    return jax.tree.map(lambda a: a[i], states)


def _with_dropout_rates(model_state, rates):
    """``model_state`` with every dropout layer's ``rate`` leaf set to ``rates`` (one per replica),
    and how many such layers there are."""
    found = []

    def visit(path, leaf):
        if path and path_str(path[-1:]) == "rate":
            found.append(path)
            return rates.astype(leaf.dtype)
        return leaf

    return jax.tree_util.tree_map_with_path(visit, model_state), len(found)


def create(
    model, tx, seeds: Sequence[int], *, hyperparams: dict | None = None
) -> tuple[TrainState, list[dict]]:
    """Stack ``len(seeds)`` train states; returns ``(states, info)`` with one dict per replica
    (``{"replica": i, "seed": s, **its hyperparameters}``) for logging.

    ``hyperparams`` maps a name to one value per replica: ``"dropout"`` or any numeric argument of
    an optimizer built with ``fl.optim.inject_hyperparams``.
    """
    seeds = _check_seeds(seeds)
    hyperparams = _check_hyperparams(hyperparams, len(seeds))
    states = jax.vmap(lambda k: TrainState.create(model, tx, k))(jax.vmap(jax.random.key)(jnp.asarray(seeds)))
    injected = find_hyperparams(states.opt_state)
    for name, values in hyperparams.items():
        values = jnp.asarray(values, jnp.float32)
        if name == "dropout":
            model_state, count = _with_dropout_rates(states.model_state, values)
            if count == 0:
                raise FnlearnError(
                    "hyperparams['dropout'] given, but the model has no dropout layer. Build it with mlp(..., dropout=0.1)."
                )
            states = states.replace(model_state=model_state)
        elif injected is not None and name in injected:
            injected[name] = values  # the dict inside the state: replace the array with one value per replica
        else:
            known = ["dropout"] + sorted(injected or [])
            hint = (
                ""
                if injected
                else " Build the optimizer with fl.optim.inject_hyperparams(fl.optim.adam)(learning_rate=...) to vary its arguments."
            )
            raise FnlearnError(
                f"cannot vary hyperparameter {name!r} across replicas. Known: {', '.join(known)}.{hint}"
            )
    info = [
        {"replica": i, "seed": s} | {k: float(v[i]) for k, v in hyperparams.items()}
        for i, s in enumerate(seeds)
    ]
    return states, info


def _check_seeds(seeds) -> list[int]:
    """A non-empty list of int seeds in [0, 2³¹) (they become one int32 array)."""
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise FnlearnError(
            f"replicas.create: seeds must be a list of integers such as range(8), got {checks.show(seeds)}."
        )
    seeds = [checks.int_at_least("replicas.create", "every seed", s, 0) for s in seeds]
    if not seeds:
        raise FnlearnError("replicas.create needs at least one seed, e.g. seeds=range(8).")
    if max(seeds) >= 2**31:
        raise FnlearnError(
            f"replicas.create: seeds must be below 2**31 (they are stored as int32), got {max(seeds)}."
        )
    return seeds


def _check_hyperparams(hyperparams, count: int) -> dict[str, list]:
    """name -> one finite number per replica (a dropout rate in [0, 1))."""
    if hyperparams is None:
        return {}
    if not isinstance(hyperparams, dict):
        raise FnlearnError(
            "replicas.create: hyperparams must be a dict name -> one value per replica, got "
            f"{checks.show(hyperparams)}."
        )
    checked = {}
    for name, values in hyperparams.items():
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise FnlearnError(
                f"hyperparams[{name!r}] must be a list with one value per replica, got {checks.show(values)}."
            )
        values = list(values)
        if len(values) != count:
            raise FnlearnError(
                f"hyperparams[{name!r}] has {len(values)} values for {count} seeds: give one value per replica."
            )
        rule = checks.unit_interval if name == "dropout" else checks.finite
        for value in values:
            rule("replicas.create", f"every value of hyperparams[{name!r}]", value)
        checked[name] = values
    return checked


# --------------------------------------------------------------------------------------------
# selecting per replica


def _select(mask, new, old):
    """Per replica: ``new`` where mask[i], else ``old`` (PRNG keys through their raw data)."""

    def pick(n, o):
        if jnp.issubdtype(n.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(pick(jax.random.key_data(n), jax.random.key_data(o)))
        return jnp.where(mask.reshape(mask.shape + (1,) * (n.ndim - 1)), n, o)

    return jax.tree.map(pick, new, old)


def _scan_replicas(states, active, x, y, indices, weights, obj, augment, norms):
    """k steps of every active replica. indices/weights: [k, S, batch]. A replica whose step gives a
    non-finite loss or gradient keeps its previous state and becomes inactive (the gradient norm
    is always computed for that test; it is logged only with ``norms``)."""
    step = jax.vmap(lambda s, xb, yb, w: train_step(s, (xb, yb, w), obj, augment, norms=True))

    def body(carry, row):
        states, active = carry
        idx, w = row
        new, metrics = step(states, x[idx], y[idx], w)
        finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(metrics["grad_norm"])
        if not norms:
            metrics = {k: v for k, v in metrics.items() if k not in ("grad_norm", "update_norm")}
        keep = active & finite
        return (_select(keep, new, states), keep), (metrics, active, active & ~finite)

    return jax.lax.scan(body, (states, active), (indices, weights))


_run_replica_chunk = jax.jit(_scan_replicas, static_argnames=("obj", "augment", "norms"), donate_argnums=(0,))
_replica_order = jax.jit(jax.vmap(epoch_order, in_axes=(0, None, None, None, None)), static_argnums=(2, 3, 4))
_evaluate_replicas = jax.jit(jax.vmap(eval_scan, in_axes=(0, None, None, None, None)), static_argnums=(4,))


# --------------------------------------------------------------------------------------------
# fit


class ReplicaHistory(list):
    """``replicas.fit``'s records, plus each replica's early-stopping outcome: ``best_epoch[i]``
    (None without early stopping) and ``stopped_early[i]``."""

    best_epoch: list
    stopped_early: list
    driver: dict | None = None  # how the steps were driven (``fnlearn.drivers.DriverChoice.as_dict()``)


def fit(
    states: TrainState,
    train,
    *,
    loss,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int = 32,
    eval=None,  # noqa: A002
    eval_batch_size: int = 512,
    penalty=None,
    augment=None,
    early_stopping: EarlyStopping | None = None,
    info: Sequence[dict] | None = None,
    run_dir=None,
    drop_last: bool = False,
    progress: bool | None = None,
    on_epoch=None,
    log_norms: bool = True,
    initial_step: int = 0,
    initial_time: float = 0.0,
    after_epoch=None,
    driver: str = "auto",
):
    """Train stacked ``states`` (from ``create``) together; returns ``(states, history)``.

    ``history`` (a ``ReplicaHistory``): one record per (epoch, replica), ``{"epoch", "step",
    "replica", ...info, "active", "diverged", "train_*", "val_*"}``, also in ``run_dir``'s
    metrics.jsonl. Arguments are ``fl.fit``'s; ``early_stopping`` applies to each replica on its
    own. ``on_epoch(records)`` is called after every epoch, then ``after_epoch(states, epoch, step,
    last)`` (to checkpoint: the next epoch donates ``states``). ``initial_step``/``initial_time``
    continue restored states (at an epoch boundary); ``driver`` as in ``fl.fit`` (``_steps``,
    ``history.driver``). The caller's ``states`` are never donated."""
    _check_fit_arguments(
        states, epochs, steps, batch_size, eval_batch_size, early_stopping, drop_last, progress
    )
    obj = objective(loss, penalty)
    S = num_replicas(states)
    info = list(info) if info is not None else [{"replica": i} for i in range(S)]
    data = _prepare(states, train, eval, obj, batch_size, eval_batch_size, drop_last, epochs, steps)
    states = jax.tree.map(jnp.copy, states)  # the compiled epochs donate their input: not the caller's
    active, diverged = jnp.ones((S,), bool), np.zeros(S, bool)
    stopper = _PerReplicaStopping(early_stopping, S) if early_stopping is not None else None
    history = ReplicaHistory()
    history.driver = _choose(states, active, data, initial_step, obj, augment, log_norms, driver).as_dict()
    metrics_file = open_metrics(run_dir, False, []) if run_dir is not None else None
    bar = progress_bar(progress, data.plan.total_steps, initial_step)
    start, step = time.perf_counter() - initial_time, initial_step
    try:
        while step < data.plan.total_steps and bool(jnp.any(active)):
            epoch = step // data.plan.steps_per_epoch + 1
            began = time.perf_counter()
            states, active, (metrics, was_active, died), k = _train_epoch(
                states, active, data, step, obj, augment, log_norms, history.driver["driver"]
            )
            step += k
            if bar is not None:
                bar.update(k)
            diverged |= died.any(0)
            speed = S * min(k * data.plan.batch_size, data.plan.n) / (time.perf_counter() - began)
            records = _epoch_records(metrics, was_active, epoch, step, time.perf_counter() - start, speed)
            if data.eval_batches is not None:
                _add_validation(records, states, data.eval_batches, obj)
            if stopper is not None:
                active, states = stopper.update(records, active, states, epoch)
            _add_records(history, metrics_file, records, info, active, diverged)
            if on_epoch is not None:
                on_epoch(records)
            if after_epoch is not None:
                last = step >= data.plan.total_steps or not bool(jnp.any(active))
                after_epoch(states, epoch, step, last)
    finally:
        if bar is not None:
            bar.close()
        if metrics_file is not None:
            metrics_file.close()
    if stopper is not None:
        states = stopper.restore(states)
    history.best_epoch, history.stopped_early = _early_outcome(stopper, S)
    return states, history


def _early_outcome(stopper, count: int) -> tuple[list, list]:
    """Each replica's best epoch (None without early stopping) and whether it stopped early."""
    if stopper is None:
        return [None] * count, [False] * count
    return list(stopper.best_epoch), [bool(x) for x in stopper.stopped]


class _Data(NamedTuple):
    """The checked training data on the device, its step plan, the replicas' shuffling keys, and
    the padded evaluation batches (None without ``eval``)."""

    x: jax.Array
    y: jax.Array
    plan: StepPlan
    order_keys: jax.Array
    eval_batches: tuple | None


def _prepare(states, train, held_out, obj, batch_size, eval_batch_size, drop_last, epochs, steps) -> _Data:
    """Check the data against replica 0, plan the steps, put the data on the device."""
    first = replica(states, 0)
    x, y = check_pair(train, "replicas.fit", "train")
    if held_out is not None:
        held_out = check_pair(held_out, "replicas.fit", "eval")
    check_arrays(first, x, y, obj, name="training data", batch_size=batch_size)
    if held_out is not None:
        check_arrays(first, *held_out, obj, name="evaluation data")
    plan = plan_steps(len(x), batch_size, drop_last, epochs, steps, None)
    x, y = jax.device_put(np.asarray(x)), jax.device_put(np.asarray(y))
    order_keys = jax.vmap(lambda k: jax.random.fold_in(k, ORDER_SALT))(states.key)
    eval_batches = padded_batches(*held_out, eval_batch_size) if held_out is not None else None
    return _Data(x, y, plan, order_keys, eval_batches)


def _epoch_rows(data: _Data, epoch: int):
    """Every replica's minibatch rows and weights of ``epoch``, step-major: [steps, S, batch]."""
    plan = data.plan
    indices, weights = _replica_order(data.order_keys, epoch, plan.n, plan.batch_size, plan.drop_last)
    return jnp.swapaxes(indices, 0, 1), jnp.swapaxes(weights, 0, 1)


def _steps(states, active, data: _Data, indices, weights, obj, augment, norms: bool, driver: str):
    """The steps of ``indices``/``weights`` [k, S, batch]: one compiled scan of k steps ("scan"),
    or k one-step programs dispatched from Python without waiting ("loop"; a one-trip scan is
    straight-line code, so convolutions run at their jitted speed on XLA:CPU)."""
    run = functools.partial(_run_replica_chunk, x=data.x, y=data.y, obj=obj, augment=augment, norms=norms)
    if driver == "scan":
        return run(states, active, indices=indices, weights=weights)
    outs = []
    for i in range(len(indices)):
        (states, active), out = run(states, active, indices=indices[i : i + 1], weights=weights[i : i + 1])
        outs.append(out)
    return (states, active), jax.tree.map(lambda *steps: jnp.concatenate(steps), *outs)


def _choose(states, active, data: _Data, step: int, obj, augment, norms: bool, driver: str):
    """The driver asked for, or with "auto" the faster, timed on a copy of the states."""
    checks.one_of("replicas.fit", "driver", driver, DRIVERS)
    if driver != "auto":
        return DriverChoice(driver, "asked for")
    remaining = data.plan.total_steps - step
    if remaining <= 0:
        return DriverChoice("scan", "nothing left to train")
    indices, weights = _epoch_rows(data, step // data.plan.steps_per_epoch)
    probe = {"states": jax.tree.map(jnp.copy, states)}

    def steps(driver, rows):
        (probe["states"], _), out = _steps(
            probe["states"], active, data, indices[rows], weights[rows], obj, augment, norms, driver
        )
        return out[0]["loss"]

    return choose_driver(
        lambda: steps("loop", jnp.arange(1)),
        lambda k: steps("scan", jnp.arange(k) % len(indices)),
        remaining_steps=remaining,
        scan_length=min(data.plan.steps_per_epoch, remaining),
    )


def _train_epoch(states, active, data: _Data, step: int, obj, augment, norms: bool, driver: str):
    """One epoch from ``step`` (or what is left of the budget) of every active replica:
    ``(states, active, (metrics, was_active, died) on the host, steps taken)``."""
    plan = data.plan
    indices, weights = _epoch_rows(data, step // plan.steps_per_epoch)
    k = min(plan.steps_per_epoch, plan.total_steps - step)
    (states, active), out = _steps(
        states, active, data, indices[:k], weights[:k], obj, augment, norms, driver
    )
    return states, active, jax.device_get(out), k


def _add_validation(records: list[dict], states, eval_batches, obj) -> None:
    """``val_*`` of every replica into its record: the evaluation sums divided by the weight."""
    sums = jax.device_get(_evaluate_replicas(states, *eval_batches, obj))
    weight = sums.pop("weight")
    for name, values in sums.items():
        for i, record in enumerate(records):
            record[f"val_{name}"] = float(values[i] / weight[i])
    for i, record in enumerate(records):
        records[i] = rules.with_perplexity(record)


def _add_records(history, metrics_file, records, info, active, diverged) -> None:
    """An epoch's records, with each replica's info and flags, into the history and the file."""
    for i, record in enumerate(records):
        record |= info[i] | {"active": bool(active[i]), "diverged": bool(diverged[i])}
        history.append(record)
        write_record(metrics_file, record)


def _check_fit_arguments(
    states, epochs, steps, batch_size, eval_batch_size, early_stopping, drop_last, progress
):
    check_state(states, "replicas.fit")
    check_length("replicas.fit", epochs, steps)
    checks.positive_int("replicas.fit", "batch_size", batch_size)
    checks.positive_int("replicas.fit", "eval_batch_size", eval_batch_size)
    checks.boolean("replicas.fit", "drop_last", drop_last)
    if progress is not None:
        checks.boolean("replicas.fit", "progress", progress)
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise FnlearnError(
            "replicas.fit: early_stopping must be a fl.callbacks.EarlyStopping or None, got "
            f"{checks.show(early_stopping)}."
        )


def _epoch_records(metrics, was_active, epoch, step, elapsed, speed):
    """One record per replica: each metric's mean over the steps the replica was active, in the
    order ``fl.fit`` writes them (``examples_per_second``: the whole program's)."""
    S = was_active.shape[1]
    records = []
    for i in range(S):
        on = was_active[:, i]
        record = {"epoch": epoch, "step": step, "time": elapsed}
        for name, values in metrics.items():
            v = values[:, i][on]
            record[f"train_{name}"] = (
                (float(v[-1]) if name in rules.LATEST_VALUE else float(np.mean(v))) if len(v) else None
            )
        record["examples_per_second"] = speed
        records.append(rules.with_perplexity(record))
    return records


@dataclasses.dataclass
class _PerReplicaStopping:
    """EarlyStopping's rule applied to every replica on its own, best weights kept on the device."""

    rule: EarlyStopping
    replicas: int
    best: np.ndarray = None
    wait: np.ndarray = None
    best_params: object = None
    best_model_state: object = None
    has_best: np.ndarray = None
    best_epoch: list = None
    stopped: np.ndarray = None

    def __post_init__(self):
        worst = np.inf if self.rule.mode == "min" else -np.inf
        self.best = np.full(self.replicas, worst)
        self.wait = np.zeros(self.replicas, int)
        self.has_best = np.zeros(self.replicas, bool)
        self.best_epoch = [None] * self.replicas
        self.stopped = np.zeros(self.replicas, bool)

    def update(self, records, active, states, epoch):
        monitor = self.rule.monitor
        if monitor not in records[0]:
            raise unknown_metric("early stopping", monitor, records[0])
        values = np.array([r[monitor] if r[monitor] is not None else np.nan for r in records], float)
        running = np.asarray(active)
        improved = rules.improved(
            values, self.best, maximise=self.rule.mode == "max", min_delta=self.rule.min_delta
        )
        improved &= running & np.isfinite(values)
        self.best = np.where(improved, values, self.best)
        self.best_epoch = [epoch if up else best for up, best in zip(improved, self.best_epoch)]
        self.wait = np.where(improved, 0, self.wait + running)
        if self.rule.restore_best and improved.any():
            mask = jnp.asarray(improved)
            if self.best_params is None:
                self.best_params = jax.tree.map(jnp.copy, states.params)
                self.best_model_state = jax.tree.map(jnp.copy, states.model_state)
            else:
                self.best_params = _select(mask, states.params, self.best_params)
                self.best_model_state = _select(mask, states.model_state, self.best_model_state)
            self.has_best |= improved
        stop = running & (self.wait >= self.rule.patience)
        self.stopped |= stop
        return jnp.asarray(running & ~stop), states

    def restore(self, states):
        if not self.rule.restore_best or self.best_params is None:
            return states
        mask = jnp.asarray(self.has_best)
        return states.replace(
            params=_select(mask, self.best_params, states.params),
            model_state=_select(mask, self.best_model_state, states.model_state),
        )
