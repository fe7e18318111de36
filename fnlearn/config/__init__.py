"""Experiment configs: the schema, TOML loading, ``--set`` overrides, validation, sweeps.

A config is a TOML file with the sections below; every key has a default, so an empty file is a
valid config (an MLP on digits). ``load(path, overrides)`` reads it with the stdlib ``tomllib``,
applies ``--set key.sub=value`` overrides (values are TOML literals), checks every key and value,
and returns a frozen :class:`Config`. ``fnlearn.runs.build.build(config)`` then turns it into the
objects training needs (data splits, model, head, penalty, optimizer, augmentation), each made by the
library's own registries, and returns the *resolved* config (every default written out, ``"auto"``
values decided) that ``dumps`` writes back as TOML: ``loads(dumps(c)) == c``.

The package imports only the standard library: ``schema`` (the sections and their checks), ``parse``
(TOML text, ``--set``, dict → Config), ``toml`` (Config → TOML text), ``sweep`` (the runs of a
sweep). Registry names (datasets, optimizers, ...) are looked up when a name is checked.

Every mistake raises one :class:`~fnlearn.errors.FnlearnError` whose message starts with the key:
``optimizer.learning_rate = -0.1: out of range: expected a number > 0.`` Values are what TOML holds
(:func:`check_plain`: int64 integers, no dates, at most 32 levels deep); numbers in the schema are
finite and counts at most 2^31 − 1; ``name`` and sweep labels become folder names and follow one rule,
:func:`is_safe_name`.

==============  ===============================================================================
section         keys (defaults in :class:`DataConfig` ... :class:`LoggingConfig`)
==============  ===============================================================================
(top level)     ``name``
``data``        ``name``, ``options``, ``val``, ``test``, ``test_options``, ``split_seed``,
                ``standardize``, ``standardize_targets``, ``standardize_per``, ``[data.augment]``
``model``       ``name`` picks the keys: ``mlp``: ``sizes`` (hidden widths), ``activation``,
                ``dropout``, ``norm``, ``residual``; ``cnn``: ``channels``, ``kernel_size``,
                ``pool``, ``dense``, ``activation``, ``norm``, ``dropout``; ``gpt``: ``width``,
                ``depth``, ``num_heads``, ``dropout``
``loss``        ``distribution``, ``options``, ``l1``, ``l2``, ``penalty_mask``
``optimizer``   ``name``, ``learning_rate``, ``options``, ``weight_decay``,
                ``weight_decay_mask``, ``clip_norm``, ``skip_nonfinite``, ``[optimizer.schedule]``
``training``    ``epochs``, ``steps``, ``batch_size``, ``eval_batch_size``, ``seeds``,
                ``drop_last``, ``devices``, ``accumulate``, ``ema``, ``precision``,
                ``[training.early_stopping]``, ``[training.checkpoint]``
``logging``     ``every``, ``progress``, ``plots``
``sweep``       ``grid``, ``variants``, ``seeds`` (read by ``fnlearn sweep`` only)
==============  ===============================================================================
"""

from fnlearn.config.parse import apply_overrides, from_dict, load, loads, parse_override
from fnlearn.config.schema import (
    MODEL_BUILDERS,
    MODEL_CONFIGS,
    AugmentConfig,
    CheckpointConfig,
    CnnConfig,
    Config,
    DataConfig,
    EarlyStoppingConfig,
    GptConfig,
    LoggingConfig,
    LossConfig,
    ModelConfig,
    OptimizerConfig,
    ScheduleConfig,
    SweepConfig,
    TrainingConfig,
)
from fnlearn.config.sweep import MAX_SWEEP_RUNS, expand_sweep
from fnlearn.config.toml import dumps, to_dict
from fnlearn.config.values import (
    MAX_NAME_BYTES,
    ConfigFileError,
    ConfigKeyError,
    check_name,
    check_plain,
    is_safe_name,
)

__all__ = [
    "MAX_NAME_BYTES",
    "MAX_SWEEP_RUNS",
    "MODEL_BUILDERS",
    "MODEL_CONFIGS",
    "AugmentConfig",
    "CheckpointConfig",
    "CnnConfig",
    "Config",
    "ConfigFileError",
    "ConfigKeyError",
    "DataConfig",
    "EarlyStoppingConfig",
    "GptConfig",
    "LoggingConfig",
    "LossConfig",
    "ModelConfig",
    "OptimizerConfig",
    "ScheduleConfig",
    "SweepConfig",
    "TrainingConfig",
    "apply_overrides",
    "check_name",
    "check_plain",
    "dumps",
    "expand_sweep",
    "from_dict",
    "is_safe_name",
    "load",
    "loads",
    "parse_override",
    "to_dict",
]
