"""The one error family fnlearn raises for user mistakes, and the "did you mean" helper.

Every message names the problem, what was given, what is expected, and the fix, in the style of
equinox's errors. Catching ``FnlearnError`` catches every user-facing mistake, so the command line
can print one line and exit with status 2 instead of a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["FnlearnError", "FnlearnWarning", "unknown_name", "did_you_mean"]


class FnlearnError(ValueError):
    """A mistake in what the user passed: a name, a shape, a value, a file."""


class FnlearnWarning(UserWarning):
    """Something went wrong and was worked around (a damaged checkpoint skipped, a run skipped in a
    report); the command line prints it as one line."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``" Did you mean 'adam'?"`` for the closest known name, or ``""`` when nothing is close;
    case is ignored ('Relu' → 'relu', not 'elu')."""
    known = list(known)
    lower = {str(k).lower(): k for k in reversed(known)}
    close = difflib.get_close_matches(str(name).lower(), list(lower), n=1, cutoff=0.6)
    return f" Did you mean {lower[close[0]]!r}?" if close else ""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> FnlearnError:
    """The error for a name missing from a registry: lists the known names and the closest one.

    >>> raise unknown_name("distribution", "gausian", ["gaussian", "laplace"])
    FnlearnError: unknown distribution 'gausian'. Did you mean 'gaussian'? Known: gaussian, laplace.
    """
    known = sorted(known)
    return FnlearnError(f"unknown {kind} {name!r}.{did_you_mean(name, known)} Known: {', '.join(known)}.")
