"""A ``Config`` (or its dict) back to TOML text, for the run directory's ``config.toml``."""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from collections.abc import Mapping

from fnlearn.config.schema import Config

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
        return "{" + ", ".join(f"{_toml_key(str(k))} = {_format_value(v)}" for k, v in value.items()) + "}"
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
        k: v for k, v in table.items() if isinstance(v, Mapping) and k in _SECTION_KEYS.get(len(path), ())
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
        if f.metadata.get("kind") == "model section":  # one of MODEL_CONFIGS, none with sub-sections
            out.setdefault(depth, set()).add(f.name)
        elif dataclasses.is_dataclass(hints[f.name]):
            out.setdefault(depth, set()).add(f.name)
            _section_names(hints[f.name], depth + 1, out)
    return out


_SECTION_KEYS = _section_names(Config)


def _deep_copy(value):
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_deep_copy(v) for v in value]
    return value
