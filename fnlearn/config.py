"""Experiment configs: the schema, TOML loading, ``--set`` overrides, validation, building.

A config is a TOML file with the sections below; every key has a default, so an empty file is a
valid config (an MLP on digits). ``load(path, overrides)`` reads it with the stdlib ``tomllib``,
applies ``--set key.sub=value`` overrides (values are TOML literals), checks every key and value,
and returns a frozen :class:`Config`. ``build(config)`` then turns it into the objects training
needs (data splits, model, head, penalty, optimizer, augmentation), each made by the library's own
registries, and returns the *resolved* config (every default written out, ``"auto"`` values
decided) that ``dumps`` writes back as TOML: ``loads(dumps(c)) == c``.

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
                ``standardize``, ``standardize_targets``, ``[data.augment]``
``model``       ``name``, ``sizes`` (hidden widths), ``activation``, ``dropout``, ``norm``,
                ``residual``
``loss``        ``distribution``, ``options``, ``l1``, ``l2``, ``penalty_mask``
``optimizer``   ``name``, ``learning_rate``, ``options``, ``weight_decay``,
                ``weight_decay_mask``, ``clip_norm``, ``skip_nonfinite``, ``[optimizer.schedule]``
``training``    ``epochs``, ``steps``, ``batch_size``, ``eval_batch_size``, ``seeds``,
                ``drop_last``, ``devices``, ``[training.early_stopping]``, ``[training.checkpoint]``
``logging``     ``every``, ``progress``, ``plots``
``sweep``       ``grid``, ``variants``, ``seeds`` (read by ``fnlearn sweep`` only)
==============  ===============================================================================
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import itertools
import math
import re
import tomllib
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from fnlearn.errors import FnlearnError, did_you_mean

__all__ = [
    "MAX_NAME_BYTES",
    "MAX_SWEEP_RUNS",
    "MODEL_BUILDERS",
    "AugmentConfig",
    "Built",
    "CheckpointConfig",
    "Config",
    "DataConfig",
    "EarlyStoppingConfig",
    "LoggingConfig",
    "LossConfig",
    "ModelConfig",
    "OptimizerConfig",
    "ScheduleConfig",
    "SweepConfig",
    "TrainingConfig",
    "apply_overrides",
    "build",
    "build_augment",
    "build_data",
    "build_head",
    "build_model",
    "build_optimizer",
    "build_penalty",
    "check_devices",
    "check_name",
    "check_plain",
    "dumps",
    "expand_sweep",
    "fit_devices",
    "from_dict",
    "is_safe_name",
    "load",
    "loads",
    "parse_override",
    "resolve_distribution",
    "resolve_schedule",
    "to_dict",
]

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
        factory = (
            (lambda: type(value)(value)) if not dataclasses.is_dataclass(value) else type(value)
        )
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
    test_options: dict = _field(
        {}
    )  # non-empty: the test set is load(name, **options, **test_options)
    split_seed: int = _field(0, _at_least(0))  # the split is the same for every training seed
    standardize: bool = _field(True)  # x̂ = (x − μ)/σ fitted on the training split
    standardize_targets: bool = _field(
        True
    )  # the same for regression targets (ignored for classes)
    augment: AugmentConfig = _field(AugmentConfig())


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The network; the input and output widths come from the data and the head."""

    name: str = _field("mlp", names=_model_names, kind="model")
    sizes: tuple = _field((128, 128), _each(_at_least(1)), kind="int list")  # hidden widths
    activation: str = _field("relu", names=_activation_names, kind="activation")
    dropout: float = _field(0.0, _unit_interval)
    norm: str = _field("none", names=_norm_names, kind="norm")
    residual: bool = _field(False)  # x + block(x) for blocks whose widths agree


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
    options: dict = _field(
        {}
    )  # unset init_value/peak_value and decay/transition steps are filled in
    warmup_steps: int = _field(0, _at_least(0))  # linear warmup from 0 in front of the schedule


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer: a name from ``fnlearn.optim``, its options, decay, clipping, schedule."""

    name: str = _field("adam", names=_optimizer_names, kind="optimizer")
    learning_rate: float = _field(1e-3, _at_least(0, strict=True))
    options: dict = _field(
        {}
    )  # the optimizer's other options, e.g. {b2 = 0.99} or {momentum = 0.9}
    weight_decay: float = _field(0.0, _at_least(0))
    weight_decay_mask: str = _field("weights_only", _one_of("weights_only", "all"))
    clip_norm: float = _field(0.0, _at_least(0))  # clip the global gradient norm; 0 = off
    skip_nonfinite: int = _field(
        0, _at_least(0)
    )  # skip up to this many NaN/inf updates in a row; 0 = off
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
    # several seeds: one vmapped program (fl.replicas), checkpointed when it ends; false: one run
    # after another, each checkpointed every checkpoint.every epochs (exactly resumable mid-run)
    replicas: bool = _field(True)
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
    model: ModelConfig = _field(ModelConfig())
    loss: LossConfig = _field(LossConfig())
    optimizer: OptimizerConfig = _field(OptimizerConfig())
    training: TrainingConfig = _field(TrainingConfig())
    logging: LoggingConfig = _field(LoggingConfig())
    sweep: SweepConfig = _field(SweepConfig())


# ------------------------------------------------------------------------------------------------
# Names that become folder names, and what a config value may be


MAX_NAME_BYTES = 200
"""The longest run name or sweep label (one folder name; file systems allow 255 bytes)."""

_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=-]*")
_NAME_RULE = (
    "one folder name of ASCII letters, digits and '_', '-', '.', '+', '=', not starting with "
    f"'.' or '-', at most {MAX_NAME_BYTES} characters"
)


def is_safe_name(text) -> bool:
    """True when ``text`` is one safe path component: a non-empty string of at most 200 ASCII
    characters from ``[A-Za-z0-9_.+=-]`` that starts with a letter, digit or '_'. So it is never
    '.', '..', a hidden folder, an absolute path, a drive ('C:'), something that reads as an option
    ('-x'), and holds no '/', '\\', NUL or control character."""
    return isinstance(text, str) and len(text) <= MAX_NAME_BYTES and bool(_SAFE_NAME.fullmatch(text))


def check_name(key: str, text, what: str = "a run name", fix_key: str = "") -> None:
    """Raise a FnlearnError naming ``key`` unless ``text`` is a safe folder name (:func:`is_safe_name`);
    the message suggests a safe spelling of it (as ``fix_key = ...``, by default ``key``)."""
    if is_safe_name(text):
        return
    if not isinstance(text, str):
        raise _error(key, text, f"{what} (a string), got {_type_name(text)}")
    fix = _slug_text(text)[:MAX_NAME_BYTES] or "run"
    raise FnlearnError(
        f"{key} = {_show(text)}: expected {what}: {_NAME_RULE}, not a path. "
        f"Fix: {fix_key or key} = {_show(fix)}."
    )


INT64 = (-(2**63), 2**63 - 1)
"""TOML integers are 64-bit: a larger one cannot be read losslessly and is refused."""

MAX_DEPTH = 32
"""Tables and arrays nest at most this deep in a config (the schema needs four levels)."""

_PLAIN = (bool, int, float, str)


def check_plain(value, key: str, depth: int = 0) -> None:
    """Raise a FnlearnError naming the key unless ``value`` is what TOML can hold and fnlearn can
    write back: tables with string keys, arrays, strings, booleans, finite or infinite floats, and
    integers in int64, nested at most :data:`MAX_DEPTH` deep (no dates or times, no other objects)."""
    if depth > MAX_DEPTH:
        raise FnlearnError(
            f"{key}: tables and arrays nested more than {MAX_DEPTH} deep; a config needs a few levels."
        )
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise FnlearnError(f"{key}: the key {k!r} is not a string; TOML keys are strings.")
            check_plain(v, _key_path(key, k), depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_plain(v, f"{key}[{i}]", depth + 1)
    elif type(value) is int and not INT64[0] <= value <= INT64[1]:
        raise _error(key, value, "an integer in the 64-bit range -2^63 .. 2^63-1 (TOML integers)")
    elif isinstance(value, str) and not _is_unicode(value):
        raise _error(key, value, "text that is valid Unicode (it holds an undecodable byte)")
    elif not isinstance(value, _PLAIN):
        raise _error(
            key, value, f"a string, number, boolean, array or table, got {_type_name(value)} (dates and "
            "times are not config values)"
        )


def _is_unicode(text: str) -> bool:
    """False for strings holding lone surrogates (undecodable command-line bytes): not writable."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _key_path(prefix: str, key: str) -> str:
    """``prefix.key`` with ``key`` quoted when it is not a bare TOML key (so it stays one line)."""
    part = _toml_key(key)
    return f"{prefix}.{part}" if prefix else part


# ------------------------------------------------------------------------------------------------
# dict -> Config, with one-line errors that name the key


def _error(key: str, value, expected: str, hint: str = "") -> FnlearnError:
    return FnlearnError(f"{key} = {_show(value)}: expected {expected}.{hint}")


def _show(value, limit: int = 120) -> str:
    """A value as the user would write it in TOML (falls back to repr), on one line, cut to about
    ``limit`` characters."""
    try:
        text = _format_value(value)
    except (TypeError, ValueError, RecursionError):
        text = value.isoformat() if hasattr(value, "isoformat") else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _convert(key: str, value, annotation, kind: str):
    """``value`` as the field's type: ints widen to floats; nothing else is coerced."""
    expected = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        dict: "a table {...}",
    }
    if annotation is bool or annotation is str or annotation is dict:
        if type(value) is not annotation:
            raise _error(key, value, f"{expected[annotation]}, got {_type_name(value)}")
        return dict(value) if annotation is dict else value
    if annotation is int:
        if type(value) is not int:
            raise _error(key, value, f"an integer, got {_type_name(value)}")
        _check_int32(key, value, value)
        return value
    if annotation is float:
        if type(value) not in (int, float):
            raise _error(key, value, f"a number, got {_type_name(value)}")
        if not math.isfinite(value):  # ints are int64 here (check_plain), so float(value) is finite
            raise FnlearnError(f"{key} = {_show(value)}: out of range: expected a finite number.")
        return float(value)
    if kind == "int list":
        if not isinstance(value, (list, tuple)) or any(type(v) is not int for v in value):
            raise _error(key, value, "a list of integers like [128, 64]")
        for v in value:
            _check_int32(key, v, value)
        return tuple(value)
    if kind == "table list":
        if not isinstance(value, (list, tuple)) or any(not isinstance(v, dict) for v in value):
            raise _error(key, value, 'a list of tables like [{label = "a", "model.dropout" = 0.1}]')
        return tuple(dict(v) for v in value)
    raise AssertionError(f"schema field {key} has an unsupported type {annotation!r}")


INT32_MAX = 2**31 - 1
"""The largest count (of steps, epochs, examples, seeds, widths) a config may give: JAX counts in
32-bit integers."""


def _check_int32(key: str, value: int, given) -> None:
    if abs(value) > INT32_MAX:
        raise FnlearnError(
            f"{key} = {_show(given)}: out of range: expected integers of at most 2^31-1 = {INT32_MAX} "
            "(JAX counts in 32-bit integers)."
        )


def _section(cls, raw, prefix: str):
    """Build dataclass ``cls`` from the table ``raw``, checking keys, types, ranges and names."""
    where = prefix or "the top level"
    if not isinstance(raw, dict):
        if not prefix:
            raise FnlearnError(f"a config is a table of sections, got {_type_name(raw)}.")
        raise _error(prefix, raw, f"a table [{prefix}], got {_type_name(raw)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            full = _key_path(prefix, str(key))
            raise FnlearnError(
                f"{full}: unknown key.{did_you_mean(key, fields)} Keys of {('[' + prefix + ']') if prefix else where}: "
                f"{', '.join(fields)}."
            )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, f in fields.items():
        if name not in raw:
            continue
        key = f"{prefix}.{name}" if prefix else name
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            values[name] = _section(annotation, raw[name], key)
            continue
        value = _convert(key, raw[name], annotation, f.metadata["kind"])
        _check_value(key, value, f, raw[name])
        values[name] = value
    return cls(**values)


_NOUNS = {int: "an integer", float: "a number", tuple: "a list of integers", str: ""}


def _check_value(key: str, value, f: dataclasses.Field, given) -> None:
    check, names = f.metadata["check"], f.metadata["names"]
    if check is not None:
        problem = check(value)
        if problem:
            noun = _NOUNS[type(value)]
            message = f"{key} = {_show(given)}: out of range: expected {noun + ' ' if noun else ''}{problem}"
            raise FnlearnError(message if message.endswith((".", "?")) else message + ".")
    if names is not None:
        known = list(names())
        if value not in known:
            raise FnlearnError(
                f"{key} = {_show(value)}: unknown {f.metadata['kind']}.{did_you_mean(value, known)} "
                f"Known: {', '.join(sorted(known))}."
            )


def from_dict(raw: Mapping, *, name: str = "") -> Config:
    """The :class:`Config` for the nested dict ``raw`` (as ``tomllib`` returns it), validated.

    ``name`` is used when ``raw`` has none. ``training.steps`` given without ``training.epochs``
    sets epochs to 0 (train for a number of steps instead of epochs).
    """
    if not isinstance(raw, Mapping):
        raise FnlearnError(f"a config is a table of sections, got {_type_name(raw)}.")
    check_plain(raw, "")
    raw = dict(raw)
    training = raw.get("training")
    if isinstance(training, dict) and training.get("steps") and "epochs" not in training:
        raw["training"] = {**training, "epochs": 0}
    config = _section(Config, raw, "")
    if not config.name:
        key = "name" if not name else "name (the config file's name; set name in the file)"
        check_name(key, name or "run", fix_key="name")
        config = dataclasses.replace(config, name=name or "run")
    _check_cross_fields(config)
    return config


def _check_cross_fields(config: Config) -> None:
    """Rules that involve more than one key."""
    d, t = config.data, config.training
    if d.test_options and d.test > 0:
        raise _error("data.test", d.test, "0 when data.test_options loads a separate test set")
    if d.val + d.test >= 1.0:
        raise _error(
            "data.val",
            d.val,
            f"val + test < 1 so some data is left to train on (data.test = {d.test:g})",
        )
    if (t.epochs > 0) == (t.steps > 0):
        raise _error(
            "training.epochs",
            t.epochs,
            f"exactly one of training.epochs and training.steps to be > 0 (training.steps = {t.steps})",
            " Set the other to 0.",
        )
    check_name("name", config.name)
    es = t.early_stopping
    if es.enabled and not re.fullmatch(r"(train|val)_\w+", es.monitor):
        raise _error(
            "training.early_stopping.monitor",
            es.monitor,
            "a logged metric such as 'val_loss' or 'val_accuracy'",
        )
    for key in config.sweep.grid:
        values = config.sweep.grid[key]
        if not isinstance(values, list) or not values:
            raise _error(_key_path("sweep.grid", key), values, "a non-empty list of values to try")
    for i, variant in enumerate(config.sweep.variants):
        if "label" in variant:
            check_name(f"sweep.variants[{i}].label", variant["label"], "a run label")


# ------------------------------------------------------------------------------------------------
# Files and overrides


def loads(
    text: str, overrides: Sequence[str] = (), *, name: str = "", source: str = "config"
) -> Config:
    """Parse TOML ``text``, apply ``overrides`` (``"key.sub=value"``) and validate."""
    raw = _parse_toml(text.removeprefix("\ufeff"), source)
    check_plain(raw, "")
    return from_dict(apply_overrides(raw, overrides), name=name)


_WHERE = re.compile(r"^(.*) \((at line \d+, column \d+|at end of document)\)$", re.DOTALL)


def _parse_toml(text: str, source: str) -> dict:
    """``tomllib.loads(text)``; a syntax error names the line and column, nesting too deep for the
    parser is refused, both as one FnlearnError starting with ``source``."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        match = _WHERE.match(str(err))
        what, where = (match[1], match[2]) if match else (str(err), "")
        where = " " + where if where else ""
        raise FnlearnError(
            f"{source} is not valid TOML{where}: {' '.join(what.split())}. Fix it there (TOML: "
            'key = value, strings in "quotes", [section] headers).'
        ) from None
    except ValueError as err:  # int() of an integer literal with thousands of digits
        raise FnlearnError(f"{source}: {_too_long(err)}") from None
    except RecursionError:
        raise FnlearnError(
            f"{source}: arrays or tables nested too deeply to read (more than {MAX_DEPTH} levels "
            "is never needed)."
        ) from None


def _too_long(err: ValueError) -> str:
    return f"a number is too long to read ({str(err).split(':')[0]}); TOML integers are 64-bit."


def load(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read the config file ``path`` (its stem is the default ``name``), apply ``overrides``."""
    path = Path(path)
    if not path.is_file():
        hint = " It is a directory; pass the .toml file in it." if path.is_dir() else ""
        raise FnlearnError(
            f"config file {str(path)!r} does not exist.{hint} Expected a TOML file such as configs/digits_mlp.toml."
        )
    data = path.read_bytes()  # an OSError (permission denied) is the operating system's: exit 1
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark (some Windows editors) is allowed
    except UnicodeDecodeError as err:
        raise FnlearnError(
            f"config file {str(path)!r} is not UTF-8 text (byte {err.start} is {data[err.start:err.start + 1]!r}). "
            "Save it as UTF-8 TOML."
        ) from None
    return loads(text, overrides, name=path.stem, source=f"config file {str(path)!r}")


_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optimizer.learning_rate=1e-3"`` → ``(["optimizer", "learning_rate"], 0.001)``.

    The value is a TOML literal (``1e-3``, ``[64, 32]``, ``"iris"``, ``true``, ``{scale = "learned"}``);
    a bare word that is not one (``iris``) is taken as a string for convenience.
    """
    key, sep, literal = text.partition("=")
    key, literal = key.strip(), literal.strip()
    if not sep or not key:
        raise FnlearnError(
            f"--set {text!r}: expected KEY=VALUE such as optimizer.learning_rate=1e-3."
        )
    path = key.split(".")
    if any(not part for part in path):
        raise FnlearnError(
            f"--set {text!r}: the key {key!r} has an empty part; write it like section.key."
        )
    try:
        value = tomllib.loads(f"value = {literal}")["value"]
    except tomllib.TOMLDecodeError:
        if not _BARE_WORD.fullmatch(literal):
            raise FnlearnError(
                f"--set {_show(text)}: the value is not a TOML literal. Expected e.g. 1e-3, [64, 32], "
                '"text", true, {scale = "learned"}.'
            ) from None
        value = literal
    except ValueError as err:
        raise FnlearnError(f"--set {_show(text)}: {_too_long(err)}") from None
    except RecursionError:
        raise FnlearnError(
            f"--set {_show(text)}: the value is nested too deeply to read (more than {MAX_DEPTH} levels "
            "is never needed)."
        ) from None
    check_plain(value, ".".join(_toml_key(part) for part in path))
    return path, value


def apply_overrides(raw: Mapping, overrides: Sequence[str]) -> dict:
    """A copy of the nested dict ``raw`` with each ``"key.sub=value"`` set (tables made as needed)."""
    result = _deep_copy(raw)
    for text in overrides:
        path, value = parse_override(text)
        _set_path(result, path, value, f"--set {_show(text)}")
    return result


def _set_path(table: dict, path: list[str], value, origin: str) -> None:
    node = table
    for i, part in enumerate(path[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            prefix = ".".join(_toml_key(p) for p in path[: i + 1])
            raise FnlearnError(
                f"{origin}: {prefix} = {_show(child)} is a value, not a table, so it has no "
                f"key {path[i + 1]!r}."
            )
        node = child
    node[path[-1]] = value


def _deep_copy(value):
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_deep_copy(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------------
# Config -> dict -> TOML (a small writer for the types the schema uses)


def to_dict(config) -> dict:
    """The config as nested plain dicts/lists, as ``tomllib`` would return it."""
    return _deep_copy(dataclasses.asdict(config))


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in "\b\t\n\f\r":
            out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[ch])
        elif not ch.isprintable():  # control characters, line separators: escaped, one line
            out.append(f"\\u{ord(ch):04X}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _format_value(value) -> str:
    """One TOML value: booleans, integers, floats (inf/nan too), strings, arrays, inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return (
            "{"
            + ", ".join(f"{_toml_key(str(k))} = {_format_value(v)}" for k, v in value.items())
            + "}"
        )
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def dumps(config: Config | Mapping, *, header: str = "") -> str:
    """TOML text for a config (or nested dict); ``tomllib.loads(dumps(d)) == d``.

    Sections of the schema become ``[tables]``; option tables are written inline.
    """
    table = to_dict(config) if dataclasses.is_dataclass(config) else _deep_copy(config)
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    _write_table(table, [], lines)
    return "\n".join(lines).strip("\n") + "\n"


def _write_table(table: Mapping, path: list[str], lines: list[str]) -> None:
    sections = {
        k: v
        for k, v in table.items()
        if isinstance(v, Mapping) and k in _SECTION_KEYS.get(len(path), ())
    }
    if path:
        lines.append("")
        lines.append("[" + ".".join(_toml_key(p) for p in path) + "]")
    for key, value in table.items():
        if key not in sections:
            lines.append(f"{_toml_key(str(key))} = {_format_value(value)}")
    for key, value in sections.items():
        _write_table(value, [*path, key], lines)


def _section_names(cls, depth: int = 0, out=None) -> dict[int, set]:
    """The keys that are sections of the schema (written as [headers]), by nesting depth."""
    out = {} if out is None else out
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out.setdefault(depth, set()).add(f.name)
            _section_names(hints[f.name], depth + 1, out)
    return out


_SECTION_KEYS = _section_names(Config)


# ------------------------------------------------------------------------------------------------
# Sweeps


MAX_SWEEP_RUNS = 10_000
"""The most runs (configurations x seeds) one sweep may make: more is a typo in a grid or --seeds."""


def expand_sweep(
    config: Config, grid: Sequence[str] = (), seeds: int | None = None
) -> list[tuple[str, Config]]:
    """The runs of a sweep: ``(label, config)`` for every variant × grid combination.

    ``grid`` adds ``"key=v1,v2"`` axes (TOML literals split at top-level commas) to
    ``config.sweep.grid``; ``seeds`` (or ``sweep.seeds``) > 0 makes every run use seeds 0..N-1.
    Every run's config is validated; their ``sweep`` sections are emptied. Each label is one safe
    folder name (:func:`is_safe_name`): a variant's ``label``, else ``key=value`` parts.
    """
    axes = {**config.sweep.grid, **_grid_axes(grid)}
    n_seeds = seeds if seeds else config.sweep.seeds
    if n_seeds is not None and (type(n_seeds) is not int or n_seeds < 0):
        raise _error("--seeds", n_seeds, "a positive number of seeds")
    variants = list(config.sweep.variants) or [{}]
    _check_sweep_size(len(variants) * math.prod(len(v) for v in axes.values()), n_seeds or 1)
    base = to_dict(config)
    base["sweep"] = to_dict(SweepConfig())
    runs, labels = [], set()
    for variant in variants:
        variant = dict(variant)
        variant_label = variant.pop("label", "") or _parts_label(variant)
        for combo in itertools.product(*axes.values()):
            settings = {**variant, **dict(zip(axes, combo))}
            raw = _deep_copy(base)
            for key, value in settings.items():
                _set_path(raw, key.split("."), value, f"sweep: {_show(key)} = {_show(value)}")
            if n_seeds:
                _set_path(raw, ["training", "seeds"], list(range(n_seeds)), f"sweep: seeds = {n_seeds}")
            run = from_dict(raw, name=config.name)
            label = _fit_label("_".join(filter(None, [variant_label, _parts_label(dict(zip(axes, combo)))])))
            check_name("sweep label", label, "a run label")
            if label in labels:
                raise FnlearnError(
                    f"sweep: two runs would share the directory {label!r}. Give the variants distinct labels."
                )
            labels.add(label)
            runs.append((label, run))
    return runs


def _grid_axes(grid: Sequence[str]) -> dict[str, list]:
    """``{"key": [values]}`` from ``--grid key=v1,v2`` texts (each value a TOML literal)."""
    axes = {}
    for text in grid:
        key, sep, values = text.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise FnlearnError(
                f"--grid {text!r}: expected KEY=V1,V2,... such as optimizer.name=sgd,adam."
            )
        axes[key.strip()] = [
            parse_override(f"{key.strip()}={part}")[1] for part in _split_top_level(values)
        ]
    return axes


def _check_sweep_size(configurations: int, seeds: int) -> None:
    if configurations * seeds > MAX_SWEEP_RUNS:
        raise FnlearnError(
            f"sweep: {configurations} configurations x {seeds} seeds = {configurations * seeds} runs; "
            f"at most {MAX_SWEEP_RUNS} in one sweep. Fix: fewer grid values, variants or --seeds."
        )


def _parts_label(settings: Mapping) -> str:
    """``lr=0.01_sizes=64-32``: the last part of each key and its value, slugged."""
    return "_".join(f"{_slug(_short(k))}={_slug(v)}" for k, v in settings.items())


def _fit_label(label: str) -> str:
    """``label``, or "base" for none; one longer than a folder name may be is cut and given a
    hash of the whole, so distinct long labels stay distinct."""
    if len(label) <= MAX_NAME_BYTES:
        return label or "base"
    digest = hashlib.sha256(label.encode()).hexdigest()[:12]
    return f"{label[: MAX_NAME_BYTES - 13]}-{digest}"


def _split_top_level(text: str) -> list[str]:
    """Split at commas that are not inside [...], {...} or quotes (a backslash escapes the next
    character inside "double quotes", as in TOML)."""
    parts, depth, quote, current = [], 0, "", []
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif quote == '"' and ch == "\\":
            escaped = True
        elif quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return parts


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _slug(value) -> str:
    """``value`` as a piece of a folder name: runs of other characters become '-', and a leading
    or trailing '-' or '.' is dropped (so ".." becomes "x")."""
    text = _show(value, limit=10 * MAX_NAME_BYTES) if not isinstance(value, str) else value
    return _slug_text(text) or "x"


def _slug_text(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", text).strip("-.")


# ------------------------------------------------------------------------------------------------
# Building the objects a run needs, each through its registry


MODEL_BUILDERS = ("mlp",)
"""Model builders a config can name; ``mlp`` is ``fnlearn.nn.mlp``."""


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
    """Re-raise a registry's FnlearnError with the config key in front."""
    try:
        yield
    except FnlearnError as error:
        if str(error).startswith(key):
            raise
        raise FnlearnError(f"{key}: {error}") from None


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
    return fdata.standardize(splits, targets=targets)


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
    with _in_section(
        f"loss.distribution = {_show(loss.distribution)} does not fit dataset {train.name!r}"
    ):
        num_outputs = head.num_outputs(event)
        head.check_targets(train.y, num_outputs)
    return head, int(num_outputs)


def build_model(model: ModelConfig, num_features: int, num_outputs: int):
    """``fnlearn.nn.mlp([num_features, *model.sizes, num_outputs], ...)``."""
    from fnlearn import nn

    with _in_section("model"):
        return nn.mlp(
            [num_features, *model.sizes, num_outputs],
            activation=model.activation,
            dropout=model.dropout,
            norm=None if model.norm == "none" else model.norm,
            residual=model.residual,
        )


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
        options["boundaries_and_scales"] = {
            str(k): v for k, v in options["boundaries_and_scales"].items()
        }
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
        if p is None:
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
    if optimizer.weight_decay > 0 and not accepts_decay:
        parts.append(
            optim.add_decayed_weights(
                optimizer.weight_decay, mask=_mask(optimizer.weight_decay_mask)
            )
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
    """(steps per epoch, total steps); a batch cannot be larger than the training split."""
    if training.batch_size > n_train:
        raise FnlearnError(
            f"training.batch_size = {training.batch_size}: out of range: expected an integer <= "
            f"{n_train}, the number of training examples."
        )
    per_epoch = (
        n_train // training.batch_size if training.drop_last else -(-n_train // training.batch_size)
    )
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
    model = build_model(config.model, train.num_features, num_outputs)
    penalty = build_penalty(loss)
    per_epoch, total = _steps(config.training, len(train))
    schedule = resolve_schedule(config.optimizer, total)
    optimizer_config = dataclasses.replace(config.optimizer, schedule=schedule)
    optimizer = build_optimizer(optimizer_config)
    augment = build_augment(config.data.augment, train.image_shape)
    resolved = dataclasses.replace(config, loss=loss, optimizer=optimizer_config)
    return Built(
        resolved, splits, standardizer, head, model, penalty, optimizer, augment, per_epoch, total
    )
