"""The config schema: one frozen dataclass per section, each key with its default and its check."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from fnlearn.errors import did_you_mean

# ------------------------------------------------------------------------------------------------
# Value checks: each returns None when the value is fine, else what was expected.

Check = Callable[[Any], "str | None"]


def _at_least(low: float, strict: bool = False) -> Check:
    def check(value):
        ok = value > low if strict else value >= low
        return None if ok else f"{'>' if strict else '>='} {low:g}"

    return check


def _unit_interval(value) -> str | None:
    return None if 0.0 <= value < 1.0 else "in [0, 1)"


def _one_of(*choices: str) -> Check:
    def check(value):
        return (
            None
            if value in choices
            else f"one of {', '.join(map(repr, choices))}.{did_you_mean(value, choices)}"
        )

    return check


def _each(check: Check) -> Check:
    def each(values):
        for v in values:
            problem = check(v)
            if problem:
                return f"each {problem}"
        return None

    return each


def _distinct_nonempty(values) -> str | None:
    if not values:
        return "that is not empty"
    if len(set(values)) != len(values):
        return "without repeats"
    return _each(_at_least(0))(values)


def _field(
    default,
    check: Check | None = None,
    names: Callable[[], Sequence[str]] | None = None,
    kind: str = "",
):
    """A schema field: its default, a range check, and (for names) the registry's known names."""
    metadata = {"check": check, "names": names, "kind": kind}
    if isinstance(default, (dict, list, tuple)) or dataclasses.is_dataclass(default):
        value = default
        factory = (lambda: type(value)(value)) if not dataclasses.is_dataclass(value) else type(value)
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# Registries are imported when a name is checked, so `import fnlearn.config` stays light.


def _dataset_names():
    from fnlearn import data

    return data.names()


def _activation_names():
    from fnlearn import nn

    return list(nn.ACTIVATIONS)


def _norm_names():
    from fnlearn import nn

    return ["none", *nn.NORMS]


def _distribution_names():
    from fnlearn import distributions

    return ["auto", *distributions.names()]


def _optimizer_names():
    from fnlearn import optim

    return optim.names()


def _schedule_names():
    from fnlearn.optim import schedules

    return schedules.names()


def _model_names():
    return list(MODEL_BUILDERS)


# ------------------------------------------------------------------------------------------------
# The schema


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation (``fnlearn.data.augment.make_augment``); all off by default."""

    noise_std: float = _field(0.0, _at_least(0))  # Gaussian input noise x + σε
    max_shift: int = _field(0, _at_least(0))  # circular shifts by up to this many pixels (images)
    crop_padding: int = _field(0, _at_least(0))  # pad-and-crop shifts that fill with 0 (images)
    flip: bool = _field(False)  # left-right flips with probability ½ (images)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which dataset, how it is split and standardised, and how it is augmented."""

    name: str = _field("digits", names=_dataset_names, kind="dataset")
    options: dict = _field({})  # the dataset's options, fnlearn.data.options(name)
    val: float = _field(0.1, _unit_interval)  # validation fraction
    test: float = _field(0.2, _unit_interval)  # test fraction (0 when test_options is used)
    test_options: dict = _field({})  # non-empty: the test set is load(name, **options, **test_options)
    split_seed: int = _field(0, _at_least(0))  # the split is the same for every training seed
    standardize: bool = _field(True)  # x̂ = (x − μ)/σ fitted on the training split
    standardize_targets: bool = _field(True)  # the same for regression targets (ignored for classes)
    # one μ, σ per feature (per pixel) or, for images [n, H, W, C], per channel
    standardize_per: str = _field("feature", names=lambda: ("feature", "channel"), kind="standardisation")
    augment: AugmentConfig = _field(AugmentConfig())


def _nonempty_each_positive(values) -> str | None:
    return "that is not empty" if not values else _each(_at_least(1))(values)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """``model.name = "mlp"``: ``fnlearn.nn.mlp``; its input and output widths come from the data
    and the head. :class:`CnnConfig` and :class:`GptConfig` are the other models."""

    name: str = _field("mlp", names=_model_names, kind="model")
    sizes: tuple = _field((128, 128), _each(_at_least(1)), kind="int list")  # hidden widths
    activation: str = _field("relu", names=_activation_names, kind="activation")
    dropout: float = _field(0.0, _unit_interval)
    norm: str = _field("none", names=_norm_names, kind="norm")
    residual: bool = _field(False)  # x + block(x) for blocks whose widths agree
    remat: bool = _field(False)  # recompute each hidden block's activations in the backward pass


@dataclasses.dataclass(frozen=True)
class CnnConfig:
    """``model.name = "cnn"``: ``fnlearn.nn.cnn``; the input shape (H, W, C) comes from the data,
    the number of outputs from the head."""

    name: str = _field("cnn", names=_model_names, kind="model")
    channels: tuple = _field((32, 64), _nonempty_each_positive, kind="int list")  # one conv block each
    kernel_size: int = _field(3, _at_least(1))
    pool: int = _field(2, _at_least(1))  # max-pool window and stride after each conv; 1 = none
    dense: tuple = _field((128,), _each(_at_least(1)), kind="int list")  # dense widths after flatten
    activation: str = _field("relu", names=_activation_names, kind="activation")
    norm: str = _field("none", names=_norm_names, kind="norm")
    dropout: float = _field(0.0, _unit_interval)  # after each dense block
    remat: bool = _field(False)  # recompute each block's activations in the backward pass


@dataclasses.dataclass(frozen=True)
class GptConfig:
    """``model.name = "gpt"``: ``fnlearn.nn.gpt``; the vocabulary size and max_len (the sequence
    length T) come from the data."""

    name: str = _field("gpt", names=_model_names, kind="model")
    width: int = _field(128, _at_least(1))  # D, split evenly over the heads
    depth: int = _field(4, _at_least(1))  # transformer blocks
    num_heads: int = _field(4, _at_least(1))
    dropout: float = _field(0.0, _unit_interval)
    remat: bool = _field(False)  # recompute each transformer block's activations in the backward pass


MODEL_CONFIGS = {"mlp": ModelConfig, "cnn": CnnConfig, "gpt": GptConfig}
"""The model registry of configs: ``model.name`` picks the section's schema (and so its keys)."""

MODEL_BUILDERS = tuple(MODEL_CONFIGS)


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """The loss: the NLL of a distribution head, plus an optional L1/L2 (elastic-net) penalty."""

    distribution: str = _field("auto", names=_distribution_names, kind="distribution")
    options: dict = _field({})  # the head's options, e.g. {scale = "learned"}
    l1: float = _field(0.0, _at_least(0))  # λ₁ Σ|w|
    l2: float = _field(0.0, _at_least(0))  # λ₂ ½Σw²
    penalty_mask: str = _field("weights_only", _one_of("weights_only", "all"))


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    """The learning-rate schedule: a name from ``fnlearn.optim.schedules`` and its options."""

    name: str = _field("constant", names=_schedule_names, kind="schedule")
    options: dict = _field({})  # unset init_value/peak_value and decay/transition steps are filled in
    warmup_steps: int = _field(0, _at_least(0))  # linear warmup from 0 in front of the schedule


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer: a name from ``fnlearn.optim``, its options, decay, clipping, schedule."""

    name: str = _field("adam", names=_optimizer_names, kind="optimizer")
    learning_rate: float = _field(1e-3, _at_least(0, strict=True))
    options: dict = _field({})  # the optimizer's other options, e.g. {b2 = 0.99} or {momentum = 0.9}
    weight_decay: float = _field(0.0, _at_least(0))
    weight_decay_mask: str = _field("weights_only", _one_of("weights_only", "all"))
    clip_norm: float = _field(0.0, _at_least(0))  # clip the global gradient norm; 0 = off
    skip_nonfinite: int = _field(0, _at_least(0))  # skip up to this many NaN/inf updates in a row; 0 = off
    schedule: ScheduleConfig = _field(ScheduleConfig())


@dataclasses.dataclass(frozen=True)
class EarlyStoppingConfig:
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""

    enabled: bool = _field(False)
    monitor: str = _field("val_loss")
    mode: str = _field("min", _one_of("min", "max"))
    patience: int = _field(10, _at_least(1))
    min_delta: float = _field(0.0, _at_least(0))
    restore_best: bool = _field(True)


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """Checkpoints in ``RUN_DIR/checkpoints`` (what ``--resume`` continues from)."""

    every: int = _field(1, _at_least(0))  # epochs between checkpoints (and the last); 0 = none
    keep: int = _field(3, _at_least(1))


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """How long, in what batches, with which seeds."""

    epochs: int = _field(20, _at_least(0))  # set exactly one of epochs and steps
    steps: int = _field(0, _at_least(0))
    batch_size: int = _field(32, _at_least(1))
    eval_batch_size: int = _field(512, _at_least(1))
    seeds: tuple = _field((0,), _distinct_nonempty, kind="int list")  # one run per seed
    drop_last: bool = _field(False)
    devices: int = _field(1, _at_least(0))  # data parallelism over this many devices; 0 = all
    # how fit drives the steps: "scan" (one compiled lax.scan per chunk), "loop" (a jitted step per
    # batch, dispatched ahead), "auto" (time both at the start, keep the faster; docs/speed.md)
    driver: str = _field("auto", _one_of("auto", "scan", "loop"))
    # "params": parameters, model and optimizer state split over the devices (each holds ~1/n of
    # them; needs devices > 1 or 0); "none": a copy on every device (docs/training.md)
    shard: str = _field("none", _one_of("none", "params"))
    # runs that differ only in per-replica values (seeds, rates, ...): one vmapped program
    # (fl.replicas), each run checkpointed every checkpoint.every epochs; false: one after another
    replicas: bool = _field(True)
    # micro-batches of batch_size per update (gradient accumulation): updates see accumulate x batch_size
    accumulate: int = _field(1, _at_least(1))
    ema: float = _field(0.0, _unit_interval)  # decay of a moving average of the params; 0 = none
    precision: str = _field("f32", _one_of("f32", "bf16"))  # bf16: forward/backward in bfloat16
    early_stopping: EarlyStoppingConfig = _field(EarlyStoppingConfig())
    checkpoint: CheckpointConfig = _field(CheckpointConfig())


@dataclasses.dataclass(frozen=True)
class LoggingConfig:
    """What is written while training."""

    every: int = _field(0, _at_least(0))  # steps between metrics.jsonl lines; 0 = once per epoch
    progress: bool = _field(False)  # progress bar on stderr
    plots: bool = _field(True)  # write RUN_DIR/plots/ at the end
    tensorboard: bool = _field(False)  # also write RUN_DIR/tensorboard/ (needs fnlearn[tensorboard])
    norms: bool = _field(False)  # log the gradient and update norms of every step (costs speed)


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """Runs that ``fnlearn sweep`` makes from this config (ignored by ``fnlearn train``).

    ``grid``: {"dotted.key" = [values]}, every combination; ``variants``: a list of tables of
    {"dotted.key" = value} (plus an optional ``label``), each crossed with the grid;
    ``seeds``: N > 0 replaces ``training.seeds`` by 0..N-1.
    """

    grid: dict = _field({})
    variants: tuple = _field((), kind="table list")
    seeds: int = _field(0, _at_least(0))


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole experiment. ``name`` defaults to the config file's stem."""

    name: str = _field("")
    data: DataConfig = _field(DataConfig())
    model: ModelConfig | CnnConfig | GptConfig = _field(ModelConfig(), kind="model section")
    loss: LossConfig = _field(LossConfig())
    optimizer: OptimizerConfig = _field(OptimizerConfig())
    training: TrainingConfig = _field(TrainingConfig())
    logging: LoggingConfig = _field(LoggingConfig())
    sweep: SweepConfig = _field(SweepConfig())
