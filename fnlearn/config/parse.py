"""Config text and dicts to a checked ``Config``: TOML files, ``--set`` overrides, one-line errors naming the key."""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fnlearn.config.schema import Config
from fnlearn.config.toml import _deep_copy, _format_value, _toml_key
from fnlearn.errors import FnlearnError, did_you_mean


class ConfigKeyError(FnlearnError):
    """A config mistake whose message starts with the key it is about (``key = value: ...``)."""


class ConfigFileError(FnlearnError):
    """A config that cannot be read as TOML at all; the message names the file (or source)."""


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
            key,
            value,
            f"a string, number, boolean, array or table, got {_type_name(value)} (dates and "
            "times are not config values)",
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


def _error(key: str, value, expected: str, hint: str = "") -> ConfigKeyError:
    return ConfigKeyError(f"{key} = {_show(value)}: expected {expected}.{hint}")


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


def loads(text: str, overrides: Sequence[str] = (), *, name: str = "", source: str = "config") -> Config:
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


def load(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read the config file ``path`` (its stem is the default ``name``), apply ``overrides``."""
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


def _slug_text(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", text).strip("-.")
