"""Config text and dicts to a checked ``Config``: TOML files, ``--set`` overrides, one-line errors naming the key."""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
import tomllib
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fnlearn.config.schema import MODEL_CONFIGS, Config
from fnlearn.config.toml import _deep_copy, _toml_key
from fnlearn.config.values import (
    MAX_DEPTH,
    ConfigFileError,
    _error,
    _key_path,
    _show,
    _type_name,
    check_name,
    check_plain,
)
from fnlearn.errors import FnlearnError, did_you_mean

# ------------------------------------------------------------------------------------------------
# dict -> Config, with one-line errors that name the key


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
            _unknown_key(cls, fields, prefix, key, where)
    hints = typing.get_type_hints(cls)
    values = {}
    for name, f in fields.items():
        if name not in raw:
            continue
        key = f"{prefix}.{name}" if prefix else name
        annotation = hints[name]
        if f.metadata["kind"] == "model section":
            values[name] = _model_section(raw[name], key)
            continue
        if dataclasses.is_dataclass(annotation):
            values[name] = _section(annotation, raw[name], key)
            continue
        value = _convert(key, raw[name], annotation, f.metadata["kind"])
        _check_value(key, value, f, raw[name])
        values[name] = value
    return cls(**values)


def _unknown_key(cls, fields, prefix: str, key, where: str):
    """Raise the error for a key the section ``cls`` lacks; in ``[model]`` a key of another model's
    builder says whose option it is."""
    full = _key_path(prefix, str(key))
    owners = [
        name for name, schema in MODEL_CONFIGS.items() if key in {f.name for f in dataclasses.fields(schema)}
    ]
    if cls in MODEL_CONFIGS.values():
        model = fields["name"].default
        if owners:
            whose = (
                f"model {owners[0]!r}" if len(owners) == 1 else "models " + " and ".join(map(repr, owners))
            )
            raise FnlearnError(
                f"{full}: {str(key)!r} is an option of {whose}, not {model!r}. Remove it, or set model.name to "
                f"{' or '.join(map(repr, owners))}. Keys of model {model!r}: {', '.join(fields)}."
            )
        where = f"model {model!r}"
    else:
        where = ("[" + prefix + "]") if prefix else where
    homes = [h for h in _homes(Config, str(key)) if h != prefix]
    if homes:
        others = f" (or {', '.join(f'[{h}]' for h in homes[1:])})" if homes[1:] else ""
        hint = f" This key belongs in [{homes[0]}]{others}."
    else:
        hint = did_you_mean(key, fields)
    raise FnlearnError(f"{full}: unknown key.{hint} Keys of {where}: {', '.join(fields)}.")


def _model_section(raw, key: str):
    """The ``[model]`` table: ``name`` (default ``"mlp"``) picks the schema, whose keys are then checked."""
    if not isinstance(raw, dict):
        raise _error(key, raw, f"a table [{key}], got {_type_name(raw)}")
    name_field = next(f for f in dataclasses.fields(MODEL_CONFIGS["mlp"]) if f.name == "name")
    name = _convert(f"{key}.name", raw.get("name", name_field.default), str, "")
    _check_value(f"{key}.name", name, name_field, raw.get("name"))
    return _section(MODEL_CONFIGS[name], raw, key)


def _homes(cls, key: str, prefix: str = "") -> list[str]:
    """The sections (``"optimizer"``, ``"training.early_stopping"``) of the config that have a
    key named ``key``, outermost first."""
    hints = typing.get_type_hints(cls)
    found, inner = [], []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            inner += _homes(hints[f.name], key, f"{prefix}.{f.name}" if prefix else f.name)
        elif f.name == key and prefix:
            found.append(prefix)
    return found + inner


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


def _check_model(config: Config) -> None:
    """The GPT's heads split its width evenly; its inputs are token ids, never standardised."""
    model = config.model
    if model.name != "gpt":
        return
    if model.width % model.num_heads:
        raise _error(
            "model.num_heads",
            model.num_heads,
            f"a divisor of model.width = {model.width} (heads split it evenly)",
        )
    if config.data.standardize:
        raise _error(
            "data.standardize",
            True,
            "false for model 'gpt': its inputs are token ids, not features to standardise. Set data.standardize = false",
        )


def _check_cross_fields(config: Config) -> None:
    """Rules that involve more than one key."""
    _check_model(config)
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
    if t.shard == "params" and t.devices == 1:
        raise _error("training.shard", t.shard, "'none' with one device, or training.devices > 1 (0 = all)")
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
    text: str,
    overrides: Sequence[str] = (),
    *,
    name: str = "",
    source: str = "config",
    paths_from: str | Path | None = None,
) -> Config:
    """Parse TOML ``text``, apply ``overrides`` (``"key.sub=value"``) and validate. With
    ``paths_from``, relative data paths of ``text`` are taken from that folder (see :func:`load`)."""
    raw = _parse_toml(text.removeprefix("\ufeff"), source)
    check_plain(raw, "")
    if paths_from is not None:
        raw = with_data_paths_from(raw, Path(paths_from))
    return from_dict(apply_overrides(raw, overrides), name=name)


DATA_PATH_KEYS = (("data", "options", "path"), ("data", "test_options", "path"))
"""The config keys that name data files or folders."""


def with_data_paths_from(raw: dict, folder: Path) -> dict:
    """``raw`` with every relative data path (:data:`DATA_PATH_KEYS`) made absolute against
    ``folder``: ``path = "data/table.csv"`` in ``configs/x.toml`` is ``configs/data/table.csv``."""
    raw = copy.deepcopy(raw)
    for section, table, key in DATA_PATH_KEYS:
        options = raw.get(section, {}).get(table) if isinstance(raw.get(section), dict) else None
        value = options.get(key) if isinstance(options, dict) else None
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            options[key] = os.path.normpath(folder.absolute() / value)
    return raw


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
        raise ConfigFileError(
            f"{source} is not valid TOML{where}: {' '.join(what.split())}. Fix it there (TOML: "
            'key = value, strings in "quotes", [section] headers).'
        ) from None
    except ValueError as err:  # int() of an integer literal with thousands of digits
        raise ConfigFileError(f"{source}: {_too_long(err)}") from None
    except RecursionError:
        raise ConfigFileError(
            f"{source}: arrays or tables nested too deeply to read (more than {MAX_DEPTH} levels "
            "is never needed)."
        ) from None


def _too_long(err: ValueError) -> str:
    return f"a number is too long to read ({str(err).split(':')[0]}); TOML integers are 64-bit."


def load(path: str | Path, overrides: Sequence[str] = (), *, paths_from: str | Path | None = None) -> Config:
    """Read the config file ``path`` (its stem is the default ``name``), apply ``overrides``.

    A relative data path in the file (``data.options.path``, ``data.test_options.path``) is taken
    from the config file's folder (or ``paths_from``), so the config runs from any working
    directory; the resolved config holds it as an absolute path. Paths given with ``--set``
    (``overrides``) are taken from the working directory, as the shell would.
    """
    path = Path(path)
    if not path.is_file():
        hint = " It is a directory; pass the .toml file in it." if path.is_dir() else ""
        raise ConfigFileError(
            f"config file {str(path)!r} does not exist.{hint} Expected a TOML file such as configs/digits_mlp.toml."
        )
    try:
        data = path.read_bytes()
    except OSError as err:  # permission denied is the operating system's failure (exit 1): name the file
        raise type(err)(err.errno, err.strerror, str(path)) from None
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark (some Windows editors) is allowed
    except UnicodeDecodeError as err:
        raise ConfigFileError(
            f"config file {str(path)!r} is not UTF-8 text (byte {err.start} is {data[err.start : err.start + 1]!r}). "
            "Save it as UTF-8 TOML."
        ) from None
    return loads(
        text,
        overrides,
        name=path.stem,
        source=f"config file {str(path)!r}",
        paths_from=path.parent if paths_from is None else paths_from,
    )


_BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optimizer.learning_rate=1e-3"`` → ``(["optimizer", "learning_rate"], 0.001)``.

    The value is a TOML literal (``1e-3``, ``[64, 32]``, ``"iris"``, ``true``, ``{scale = "learned"}``);
    a bare word that is not one (``iris``) is taken as a string for convenience.
    """
    key, sep, literal = text.partition("=")
    key, literal = key.strip(), literal.strip()
    if not sep or not key:
        raise FnlearnError(f"--set {text!r}: expected KEY=VALUE such as optimizer.learning_rate=1e-3.")
    path = key.split(".")
    if any(not part for part in path):
        raise FnlearnError(f"--set {text!r}: the key {key!r} has an empty part; write it like section.key.")
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
