"""Building things by name from an explicit table: the one mechanism behind ``distributions.get``,
``optim.get``, ``optim.schedules.get`` and ``data.load``.

Each of those modules writes out its own table (name → factory); nothing registers itself on
import. This module only looks a name up and checks the options against the factory's signature,
so every registry reports mistakes the same way: an unknown name lists the known ones with a "did
you mean", an unknown option lists the accepted ones with a "did you mean", a missing required
option names itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

from fnlearn.errors import FnlearnError, did_you_mean, unknown_name

__all__ = ["lookup", "options", "check_options", "build"]


def lookup(kind: str, table: Mapping[str, Callable], name: str) -> Callable:
    """``table[name]``, or the error listing the known names of this ``kind``."""
    if name not in table:
        raise unknown_name(kind, name, table)
    return table[name]


def options(factory: Callable) -> dict[str, object]:
    """The keyword options ``factory`` accepts, each with its default (``inspect.Parameter.empty``
    for a required one)."""
    return {
        p.name: p.default
        for p in inspect.signature(factory).parameters.values()
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }


def check_options(kind: str, name: str, factory: Callable, given: Mapping[str, object]) -> None:
    """Raise naming the first option ``factory`` does not accept, or the first missing required one."""
    signature = inspect.signature(factory)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return
    accepted = options(factory)
    listed = ", ".join(accepted) or "none"
    for option in given:
        if option not in accepted:
            raise FnlearnError(
                f"{kind} {name!r} has no option {option!r}.{did_you_mean(option, accepted)} Accepted options: {listed}."
            )
    for option, default in accepted.items():
        if default is inspect.Parameter.empty and option not in given:
            raise FnlearnError(f"{kind} {name!r} needs the option {option!r}. Accepted options: {listed}.")


def build(kind: str, table: Mapping[str, Callable], name: str, given: Mapping[str, object]):
    """``table[name](**given)`` after checking the name and the options."""
    factory = lookup(kind, table, name)
    check_options(kind, name, factory, given)
    return factory(**given)
