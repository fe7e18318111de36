"""What a config value may be, and how a wrong one is reported: safe folder names, plain TOML
values, and the one-line errors that name the key (``ConfigKeyError``, ``ConfigFileError``)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from fnlearn.config.toml import _format_value, _toml_key
from fnlearn.errors import FnlearnError


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


def _slug_text(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", text).strip("-.")
