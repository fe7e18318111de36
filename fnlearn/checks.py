"""Argument checks shared by every public entry point: one function per rule, one message format.

Each check takes the ``owner`` (what the user called, e.g. ``"adam"``), the argument's ``name``
and its ``value``, and raises a one-line ``FnlearnError``::

    adam: learning_rate must be a finite number > 0 (or a schedule), got nan.

A *number* is a Python int or float or a numpy scalar; ``True``/``False`` are never numbers here
(``epochs=True`` is a mistake, not 1). An *integer* is a Python int or a numpy integer scalar
(``2.0`` is not a count of epochs). NaN and ±inf are refused wherever a finite value is meant.

Arrays pass untouched: jax arrays, tracers and numpy arrays. Optimizer factories run again inside
``jit`` with their hyperparameters as traced arrays (``fnlearn.optim.inject_hyperparams``), and
those values were checked as Python numbers when the optimizer was built.

Sizes: :func:`check_bytes` refuses an allocation whose estimated size exceeds :func:`memory_limit`
(half of this machine's physical memory, or ``$FNLEARN_MAX_BYTES``) before it is attempted, with
the estimate in the message, instead of letting numpy fail or the machine swap.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable

import numpy as np

from fnlearn.errors import FnlearnError

__all__ = [
    "MAX_BYTES_ENV",
    "boolean",
    "check_bytes",
    "finite",
    "format_bytes",
    "fraction",
    "int_at_least",
    "integer",
    "is_array",
    "is_integer",
    "is_number",
    "memory_limit",
    "nonneg",
    "nonneg_int",
    "open_unit_interval",
    "positive",
    "positive_int",
    "rate",
    "show",
    "unit_interval",
]

MAX_BYTES_ENV = "FNLEARN_MAX_BYTES"


# --------------------------------------------------------------------------------------------
# what a value is


def is_array(value) -> bool:
    """A jax array, a tracer or a numpy array (not a numpy scalar): checked elsewhere, or traced."""
    return hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, np.generic)


def is_number(value) -> bool:
    """A real Python or numpy scalar that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_integer(value) -> bool:
    """A Python int or numpy integer scalar that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def show(value) -> str:
    """The value as the message shows it: numbers plainly (``nan``, ``1e-3``), others by repr
    with their type, e.g. ``'0.1' (a str)``."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (bool, int, float)) or value is None:
        return repr(value)
    if is_array(value):
        return f"an array of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = " ".join(repr(value).split())  # one line, whatever the repr
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} (a {type(value).__name__})"


def _fail(owner: str, name: str, expected: str, value, hint: str = "") -> FnlearnError:
    return FnlearnError(f"{owner}: {name} must be {expected}, got {show(value)}.{' ' + hint if hint else ''}")


# --------------------------------------------------------------------------------------------
# counts


def integer(owner: str, name: str, value, hint: str = "") -> int:
    """Any whole number (a Python or numpy integer); returns it as an int."""
    if not is_integer(value):
        raise _fail(owner, name, "an integer", value, hint)
    return int(value)


def int_at_least(owner: str, name: str, value, low: int, hint: str = "") -> int:
    """An integer >= ``low``; returns it as an int."""
    if not is_integer(value) or value < low:
        expected = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer >= {low}")
        raise _fail(owner, name, expected, value, hint)
    return int(value)


def positive_int(owner: str, name: str, value, hint: str = "") -> int:
    """An integer >= 1 (a count, a width, a batch size)."""
    return int_at_least(owner, name, value, 1, hint)


def nonneg_int(owner: str, name: str, value, hint: str = "") -> int:
    """An integer >= 0 (a seed, a number of warmup steps)."""
    return int_at_least(owner, name, value, 0, hint)


def one_of(owner: str, name: str, value, choices) -> str:
    """One of the strings ``choices``; returns it."""
    if not isinstance(value, str) or value not in choices:
        raise _fail(owner, name, "one of " + ", ".join(map(repr, choices)), value)
    return value


# --------------------------------------------------------------------------------------------
# real numbers (arrays and tracers pass: see the module docstring)


def _real(owner, name, value, ok: Callable[[float], bool], expected: str, hint: str):
    if is_array(value):
        return value
    if not is_number(value) or not (is_integer(value) or math.isfinite(value)) or not ok(value):
        raise _fail(owner, name, expected, value, hint)
    return value


def finite(owner: str, name: str, value, hint: str = ""):
    """A finite number, any sign."""
    return _real(owner, name, value, lambda v: True, "a finite number", hint)


def positive(owner: str, name: str, value, hint: str = ""):
    """A finite number > 0 (a scale, an epsilon that must not vanish)."""
    return _real(owner, name, value, lambda v: v > 0, "a finite number > 0", hint)


def nonneg(owner: str, name: str, value, hint: str = ""):
    """A finite number >= 0 (an epsilon, a penalty strength, a clipping threshold, a noise level)."""
    return _real(owner, name, value, lambda v: v >= 0, "a finite number >= 0", hint)


def unit_interval(owner: str, name: str, value, hint: str = ""):
    """A number in [0, 1): a decay β, a momentum, a dropout rate."""
    return _real(owner, name, value, lambda v: 0 <= v < 1, "a number in [0, 1)", hint)


def open_unit_interval(owner: str, name: str, value, hint: str = ""):
    """A number in (0, 1): a floor, a line-search constant."""
    return _real(owner, name, value, lambda v: 0 < v < 1, "a number in (0, 1)", hint)


def fraction(owner: str, name: str, value, hint: str = ""):
    """A share of the data in [0, 1) (a validation or test fraction)."""
    return _real(owner, name, value, lambda v: 0 <= v < 1, "a fraction in [0, 1)", hint)


def rate(owner: str, name: str, value, *, allow_zero: bool = False, hint: str = ""):
    """A learning rate or decay strength: a finite number > 0 (>= 0 with ``allow_zero``), or a
    schedule ``count -> value`` (any callable)."""
    if callable(value):
        return value
    low = ">= 0" if allow_zero else "> 0"
    return _real(
        owner,
        name,
        value,
        (lambda v: v >= 0) if allow_zero else (lambda v: v > 0),
        f"a finite number {low} (or a schedule)",
        hint,
    )


def boolean(owner: str, name: str, value, hint: str = "") -> bool:
    """True or False (numpy bools too); 0, 1 and "yes" are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise _fail(owner, name, "True or False (true or false in a config file)", value, hint)
    return bool(value)


# --------------------------------------------------------------------------------------------
# sizes


def memory_limit() -> int:
    """The largest single allocation fnlearn attempts, in bytes: ``$FNLEARN_MAX_BYTES`` if set,
    else half of the physical memory (8 GiB where it cannot be read)."""
    given = os.environ.get(MAX_BYTES_ENV)
    if given:
        try:
            return int(given)
        except ValueError:
            raise FnlearnError(
                f"${MAX_BYTES_ENV}={given!r}: expected a whole number of bytes, e.g. 8000000000."
            ) from None
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def format_bytes(nbytes: int) -> str:
    """``"24000000012 bytes (22.4 GiB)"``."""
    size, unit = float(nbytes), "bytes"
    for next_unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024:
            break
        size, unit = size / 1024, next_unit
    return f"{int(nbytes)} bytes" + ("" if unit == "bytes" else f" ({size:.1f} {unit})")


def check_bytes(owner: str, what: str, nbytes: int, fix: str) -> None:
    """Refuse ``what`` when its estimated size ``nbytes`` exceeds :func:`memory_limit`."""
    limit = memory_limit()
    if nbytes > limit:
        raise FnlearnError(
            f"{owner}: {what} would take about {format_bytes(nbytes)}, more than the limit of "
            f"{format_bytes(limit)} (half the physical memory; ${MAX_BYTES_ENV} sets it). {fix}"
        )
