"""A checked ``Config`` becomes what a run needs: data splits, model, head, penalty, optimizer, augmentation.

``build`` makes them all (a ``Built``) before any file is written; ``fit_kwargs`` and
``early_stopping`` translate the config into the arguments of ``fl.fit`` and ``fl.replicas.fit``,
once for both training paths.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from fnlearn import checks
from fnlearn.config.parse import INT32_MAX
from fnlearn.config.schema import (
    AugmentConfig,
    CnnConfig,
    Config,
    DataConfig,
    GptConfig,
    LossConfig,
    ModelConfig,
    OptimizerConfig,
    ScheduleConfig,
    TrainingConfig,
)
from fnlearn.config.values import ConfigKeyError, _error, _key_path, _show, _type_name
from fnlearn.errors import FnlearnError

# ------------------------------------------------------------------------------------------------
# Building the objects a run needs, each through its registry


class Built(NamedTuple):
    """Everything a run needs, made from a config, plus the config resolved against the data."""

    config: Config  # every "auto" decided, schedule options filled in
    splits: Any  # fnlearn.data.Splits, standardised
    standardizer: Any  # fnlearn.data.Standardizer or None
    head: Any
    model: Any
    penalty: Callable | None
    optimizer: Any
    augment: Callable | None
    steps_per_epoch: int
    total_steps: int


@contextlib.contextmanager
def _in_section(key: str):
    """Re-raise a registry's FnlearnError with the config key in front (once: an error that already
    names its key, a ``ConfigKeyError``, passes as it is)."""
    try:
        yield
    except ConfigKeyError:
        raise
    except FnlearnError as error:
        raise ConfigKeyError(f"{key}: {error}") from None


def build_data(data: DataConfig, *, cache: dict | None = None):
    """``(splits, standardizer)``: load, split (seeded), standardise on the training split.

    ``cache`` (a dict) reuses loaded datasets between calls with the same name and options.
    """
    from fnlearn import data as fdata

    def load(options):
        key = (data.name, repr(sorted(options.items())))
        if cache is not None and key in cache:
            return cache[key]
        with _in_section("data.options"):
            dataset = fdata.load(data.name, **options)
        if cache is not None:
            cache[key] = dataset
        return dataset

    dataset = load(data.options)
    test = load({**data.options, **data.test_options}) if data.test_options else data.test
    with _in_section("data"):
        splits = fdata.split(dataset, val=data.val, test=test, seed=data.split_seed)
    if not data.standardize:
        return splits, None
    targets = data.standardize_targets and dataset.task == "regression"
    with _in_section(f"data.standardize_per = {_show(data.standardize_per)}"):
        return fdata.standardize(splits, targets=targets, per=data.standardize_per)


def resolve_distribution(loss: LossConfig, task: str) -> str:
    """``"auto"`` is ``categorical`` for classification and ``gaussian`` for regression."""
    if loss.distribution != "auto":
        return loss.distribution
    return "categorical" if task == "classification" else "gaussian"


def build_head(loss: LossConfig, train) -> tuple[Any, int]:
    """``(head, num_outputs)`` for the training split ``train``, targets checked on the host.

    For class labels the event size is the number of classes when the head reads one column per
    example (categorical), else the target width (bernoulli reads the 0/1 label itself).
    """
    from fnlearn import distributions

    with _in_section("loss.options"):
        head = distributions.get(loss.distribution, **loss.options)
    if train.task == "classification" and head.target_size(train.num_classes) == 1:
        event = train.num_classes
    else:
        event = train.target_dim
    with _in_section(f"loss.distribution = {_show(loss.distribution)} does not fit dataset {train.name!r}"):
        num_outputs = head.num_outputs(event)
        head.check_targets(train.y, num_outputs)
    return head, int(num_outputs)


def build_model(model: ModelConfig | CnnConfig | GptConfig, train, num_outputs: int):
    """The network ``model.name`` names, its input shape (and the GPT's vocabulary and length) from
    the training split ``train``, its output width from the head:

    * mlp: ``nn.mlp([num_features, *sizes, num_outputs], ...)``, after a flatten for image-shaped x;
    * cnn: ``nn.cnn(example_shape, num_outputs=num_outputs, ...)`` for examples (..., C);
    * gpt: ``nn.gpt(num_outputs, T, ...)`` for token ids x [n, T] in [0, num_outputs).
    """
    from fnlearn import nn

    norm = None if getattr(model, "norm", "none") == "none" else model.norm
    if model.name == "cnn":
        shape = _image_example_shape(train)
        with _in_section("model"):
            return nn.cnn(
                shape,
                channels=model.channels,
                kernel_size=model.kernel_size,
                pool=model.pool,
                dense=model.dense,
                num_outputs=num_outputs,
                activation=model.activation,
                norm=norm,
                dropout=model.dropout,
                remat=model.remat,
            )
    if model.name == "gpt":
        max_len = _token_length(train, num_outputs)
        with _in_section("model"):
            return nn.gpt(
                num_outputs,
                max_len,
                width=model.width,
                depth=model.depth,
                num_heads=model.num_heads,
                dropout=model.dropout,
                remat=model.remat,
            )
    with _in_section("model"):
        mlp = nn.mlp(
            [train.num_features, *model.sizes, num_outputs],
            activation=model.activation,
            dropout=model.dropout,
            norm=norm,
            residual=model.residual,
            remat=model.remat,
        )
    if train.x.ndim > 2:  # image-shaped examples (data.options.layout = "image"): flatten them first
        return nn.build(nn.serial(nn.flatten(), mlp.layer, name="mlp"), train.x.shape[1:])
    return mlp


def _image_example_shape(train) -> tuple[int, ...]:
    """One example's shape (spatial..., C) for the CNN: the data must hold examples with a channel axis."""
    shape = tuple(int(s) for s in train.x.shape[1:])
    if len(shape) < 2:
        raise FnlearnError(
            f"model.name = 'cnn': expected examples with spatial axes and channels, like images (H, W, C); "
            f"dataset {train.name!r} gives flat rows of {train.num_features} features. "
            + (
                'Load it as images: data.options.layout = "image".'
                if train.image_shape is not None
                else "Use an image-shaped dataset, or model.name = 'mlp'."
            )
        )
    return shape


def _token_length(train, vocab_size: int) -> int:
    """T for the GPT: x must be [n, T] whole token ids in [0, vocab_size) (vocab_size: the head's outputs)."""
    import numpy as np

    x = train.x
    ok = x.ndim == 2 and bool(np.all((x == np.round(x)) & (x >= 0) & (x < vocab_size)))
    if not ok:
        raise FnlearnError(
            f"model.name = 'gpt': expected token sequences, x of shape [n, T] holding ids 0..{vocab_size - 1}; "
            f"dataset {train.name!r} gives x of shape {list(x.shape)}"
            + ("" if x.ndim != 2 else " with other values")
            + ". Use a sequence dataset (text, sort, addition, copy), or another model."
        )
    return int(x.shape[1])


def _mask(name: str):
    from fnlearn import losses

    return losses.weights_only if name == "weights_only" else None


def build_penalty(loss: LossConfig) -> Callable | None:
    """R(θ): ``l1``, ``l2`` or ``elastic_net`` from ``fnlearn.losses`` (None when both are 0)."""
    from fnlearn import losses

    mask = _mask(loss.penalty_mask)
    if loss.l1 > 0 and loss.l2 > 0:
        return losses.elastic_net(loss.l1, loss.l2, mask=mask)
    if loss.l1 > 0:
        return losses.l1(loss.l1, mask=mask)
    if loss.l2 > 0:
        return losses.l2(loss.l2, mask=mask)
    return None


_RATE_OPTIONS = ("peak_value", "init_value", "value")
_LENGTH_OPTIONS = ("decay_steps", "transition_steps")


def resolve_schedule(optimizer: OptimizerConfig, total_steps: int) -> ScheduleConfig:
    """Fill the schedule's unset options: its peak/initial rate from ``optimizer.learning_rate``,
    its length (``decay_steps``/``transition_steps``) from the run's total number of steps.
    A missing required option is an error naming it. The constant schedule without warmup is not
    used (the optimizer gets the float learning rate) and is left as it is."""
    from fnlearn.optim import schedules

    schedule = optimizer.schedule
    if schedule.name == "constant" and not schedule.warmup_steps:
        return schedule  # unused: the optimizer gets the plain learning rate
    factory = schedules.SCHEDULES[schedule.name]
    parameters = inspect.signature(factory).parameters
    options = dict(schedule.options)
    rate = next((p for p in _RATE_OPTIONS if p in parameters), None)
    if rate and rate not in options:
        options[rate] = optimizer.learning_rate
    for length in _LENGTH_OPTIONS:
        if length in parameters and length not in options:
            options[length] = max(1, total_steps - schedule.warmup_steps)
    for name, p in parameters.items():
        if p.default is inspect.Parameter.empty and name not in options:
            raise FnlearnError(
                f"optimizer.schedule.options.{name}: missing required value for schedule {schedule.name!r}. "
                f"Its options: {', '.join(parameters)}."
            )
    if "boundaries_and_scales" in options and isinstance(options["boundaries_and_scales"], dict):
        options["boundaries_and_scales"] = {str(k): v for k, v in options["boundaries_and_scales"].items()}
    return dataclasses.replace(schedule, options=options)


def _schedule_fn(schedule: ScheduleConfig):
    from fnlearn.optim import schedules

    options = dict(schedule.options)
    if isinstance(options.get("boundaries_and_scales"), dict):
        try:
            options["boundaries_and_scales"] = {
                int(k): v for k, v in options["boundaries_and_scales"].items()
            }
        except ValueError:
            raise _error(
                "optimizer.schedule.options.boundaries_and_scales",
                schedule.options["boundaries_and_scales"],
                'a table of step = scale with integer steps, like {"100" = 0.1}',
            ) from None
    _check_option_types("optimizer.schedule.options", schedules.SCHEDULES.get(schedule.name), options)
    with _in_section("optimizer.schedule.options"):
        fn = schedules.get(schedule.name, **options)
        return schedules.linear_warmup(fn, schedule.warmup_steps) if schedule.warmup_steps else fn


_OPTION_TYPES = {
    "int": ((int,), "an integer"),
    "float": ((int, float), "a number"),
    "bool": ((bool,), "true or false"),
    "str": ((str,), "a string"),
}


def _check_option_types(key: str, factory: Callable | None, options: Mapping) -> None:
    """Each option value from the config has the type the factory declares for it (its annotation
    'int', 'float', 'bool' or 'str', else the type of a scalar default), so ``b1 = "x"`` is refused
    here rather than failing mid-run. Unknown options and other types are left to the registry."""
    if factory is None:
        return
    parameters = inspect.signature(factory).parameters
    for name, value in options.items():
        p = parameters.get(name)
        if p is None or checks.is_array(value):  # an array: one value per replica (runs.replica_runs)
            continue
        declared = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
        if declared not in _OPTION_TYPES and type(p.default) in (bool, int, float, str):
            declared = type(p.default).__name__
        if declared in _OPTION_TYPES and type(value) not in _OPTION_TYPES[declared][0]:
            expected = _OPTION_TYPES[declared][1]
            raise _error(_key_path(key, name), value, f"{expected}, got {_type_name(value)}")


def build_optimizer(optimizer: OptimizerConfig):
    """The gradient transformation: clip → weight decay → optimizer (schedule inside), optionally
    wrapped in ``apply_if_finite``.

    ``weight_decay`` goes to the optimizer's own (decoupled) ``weight_decay`` option when it has one
    (adamw, lion: so their decay is the config's, 0 by default, not optax's default); otherwise it is
    added to the gradient, g + λθ, before the optimizer (PyTorch's ``weight_decay``). Expects a
    resolved schedule (see :func:`resolve_schedule`).
    """
    from fnlearn import optim

    options = dict(optimizer.options)
    for reserved in ("learning_rate", "mask"):
        if reserved in options:
            raise FnlearnError(
                f"optimizer.options.{reserved}: set by the config itself; use optimizer.learning_rate / "
                "optimizer.weight_decay_mask instead."
            )
    learning_rate = optimizer.learning_rate
    if optimizer.schedule.name != "constant" or optimizer.schedule.warmup_steps:
        learning_rate = _schedule_fn(optimizer.schedule)
    accepts_decay = "weight_decay" in inspect.signature(optim.OPTIMIZERS[optimizer.name]).parameters
    if accepts_decay and "weight_decay" in options:
        raise FnlearnError(
            "optimizer.options.weight_decay: set it as optimizer.weight_decay (it goes to "
            f"{optimizer.name}'s own decoupled weight_decay option)."
        )
    if accepts_decay:
        options["weight_decay"] = optimizer.weight_decay
        options["mask"] = _mask(optimizer.weight_decay_mask)
    _check_option_types("optimizer.options", optim.OPTIMIZERS.get(optimizer.name), options)
    with _in_section("optimizer.options"):
        tx = optim.get(optimizer.name, learning_rate=learning_rate, **options)
    parts = []
    if optimizer.clip_norm > 0:
        parts.append(optim.clip_by_global_norm(optimizer.clip_norm))
    decays = checks.is_array(optimizer.weight_decay) or optimizer.weight_decay > 0  # an array: per replica
    if decays and not accepts_decay:
        parts.append(
            optim.add_decayed_weights(optimizer.weight_decay, mask=_mask(optimizer.weight_decay_mask))
        )
    tx = optim.chain(*parts, tx) if parts else tx
    return optim.apply_if_finite(tx, optimizer.skip_nonfinite) if optimizer.skip_nonfinite else tx


def build_augment(augment: AugmentConfig, image_shape) -> Callable | None:
    """``fnlearn.data.augment.make_augment`` from the switches (None when all are off)."""
    from fnlearn.data import augment as faugment

    needs_image = augment.max_shift or augment.crop_padding or augment.flip
    if needs_image and image_shape is None:
        on = [k for k in ("max_shift", "crop_padding", "flip") if getattr(augment, k)]
        raise _error(
            f"data.augment.{on[0]}",
            getattr(augment, on[0]),
            "0 / false: image transforms need an image dataset (this one has no image_shape)",
        )
    with _in_section("data.augment"):
        fn = faugment.make_augment(
            image_shape=image_shape,
            noise_std=augment.noise_std,
            max_shift=augment.max_shift,
            crop_padding=augment.crop_padding,
            flip=augment.flip,
        )
    return None if fn is faugment.identity else fn


def _steps(training: TrainingConfig, n_train: int) -> tuple[int, int]:
    """(steps per epoch, total steps); a batch cannot be larger than the training split. A step is
    an update: with ``training.accumulate = k`` it takes k batches."""
    if training.batch_size > n_train:
        raise FnlearnError(
            f"training.batch_size = {training.batch_size}: out of range: expected an integer <= "
            f"{n_train}, the number of training examples."
        )
    per_update = training.batch_size * training.accumulate
    if per_update > n_train:
        raise FnlearnError(
            f"training.accumulate = {training.accumulate}: out of range: {training.accumulate} x batch_size "
            f"{training.batch_size} = {per_update} examples per update, but the training split has {n_train}."
        )
    per_epoch = n_train // per_update if training.drop_last else -(-n_train // per_update)
    total = training.steps or training.epochs * per_epoch
    if total > INT32_MAX:
        raise FnlearnError(
            f"training.epochs = {training.epochs}: out of range: {training.epochs} epochs x {per_epoch} "
            f"steps = {total} steps; expected at most 2^31-1 = {INT32_MAX} (JAX counts steps in 32-bit integers)."
        )
    return per_epoch, total


def fit_devices(training: TrainingConfig):
    """``fit(devices=...)``: None for one device, "all" for 0, else the count."""
    return None if training.devices == 1 else ("all" if training.devices == 0 else training.devices)


def check_devices(training: TrainingConfig) -> None:
    """The devices exist and the batch splits evenly over them."""
    from fnlearn import parallel

    with _in_section(f"training.devices = {training.devices}"):
        mesh = parallel.data_mesh(fit_devices(training))
        if mesh is not None:
            parallel.check_batch_size(training.batch_size, mesh)
        elif training.shard == "params":
            raise _error("training.shard", training.shard, "'none' when this process sees one device")


def early_stopping(config: Config):
    """The ``fl.callbacks.EarlyStopping`` that ``training.early_stopping`` describes, or None."""
    from fnlearn.callbacks import EarlyStopping

    es = config.training.early_stopping
    if not es.enabled:
        return None
    return EarlyStopping(
        es.monitor, patience=es.patience, min_delta=es.min_delta, mode=es.mode, restore_best=es.restore_best
    )


def fit_kwargs(built: Built) -> dict:
    """The arguments of ``fl.fit`` and ``fl.replicas.fit`` that a config sets: one translation."""
    t, splits = built.config.training, built.splits
    return {
        "loss": built.head,
        "epochs": t.epochs or None,
        "steps": t.steps or None,
        "batch_size": t.batch_size,
        "eval": (splits.val.x, splits.val.y) if splits.val is not None else None,
        "eval_batch_size": t.eval_batch_size,
        "penalty": built.penalty,
        "augment": built.augment,
        "drop_last": t.drop_last,
        "progress": built.config.logging.progress,
        "driver": t.driver,
        **({"accumulate": t.accumulate} if t.accumulate != 1 else {}),
        **({"ema": t.ema} if t.ema else {}),
        **({"compute_dtype": "bfloat16"} if t.precision == "bf16" else {}),
        **({"shard": "params"} if t.shard == "params" else {}),  # devices > 1: never the replicas path
    }


def build(config: Config, *, cache: dict | None = None) -> Built:
    """Make everything a run of ``config`` needs (no training, no files written).

    Every problem — a dataset option, a head that does not fit the targets, an optimizer option —
    is raised here as a FnlearnError naming the config key, before any run directory exists.
    """
    check_devices(config.training)
    splits, standardizer = build_data(config.data, cache=cache)
    train = splits.train
    es = config.training.early_stopping
    if es.enabled and es.monitor.startswith("val_") and splits.val is None:
        raise _error(
            "training.early_stopping.monitor",
            es.monitor,
            "a train_* metric, or a validation split (data.val > 0)",
        )
    distribution = resolve_distribution(config.loss, train.task)
    loss = dataclasses.replace(config.loss, distribution=distribution)
    head, num_outputs = build_head(loss, train)
    model = build_model(config.model, train, num_outputs)
    penalty = build_penalty(loss)
    per_epoch, total = _steps(config.training, len(train))
    schedule = resolve_schedule(config.optimizer, total)
    optimizer_config = dataclasses.replace(config.optimizer, schedule=schedule)
    optimizer = build_optimizer(optimizer_config)
    augment = build_augment(config.data.augment, train.image_shape)
    resolved = dataclasses.replace(config, loss=loss, optimizer=optimizer_config)
    return Built(resolved, splits, standardizer, head, model, penalty, optimizer, augment, per_epoch, total)
