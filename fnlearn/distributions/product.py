"""Products of independent heads: p(y | f) = Π_j p_j(y_j | f_j)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn import checks
from fnlearn.distributions.base import (
    Head,
    _host_targets,
    _width_error,
)
from fnlearn.errors import FnlearnError

# ----------------------------------------------------------------------------------------------
# Products of independent heads


def _part_keys(heads: Sequence[Head]) -> list[str]:
    """Part names for params/metrics: the head names, suffixed ``_0, _1, ...`` where repeated."""
    counts = {h.name: sum(g.name == h.name for g in heads) for h in heads}
    seen: dict[str, int] = {}
    keys = []
    for h in heads:
        i = seen.get(h.name, 0)
        seen[h.name] = i + 1
        keys.append(h.name if counts[h.name] == 1 else f"{h.name}_{i}")
    return keys


def _parse_parts(parts) -> tuple[list[Head], list[int]]:
    if not parts:
        raise FnlearnError(
            "product() needs at least one (head, event_size) pair, e.g. product((gaussian(), 2), (categorical(), 3))."
        )
    heads, sizes = [], []
    for part in parts:
        ok = isinstance(part, tuple) and len(part) == 2 and isinstance(part[0], Head)
        if not ok or not checks.is_integer(part[1]) or part[1] < 1:
            raise FnlearnError(
                f"product(): each part is a (head, event_size) pair with a positive int size, got {part!r}. "
                "Fix: e.g. product((gaussian(), 2), (categorical(), 3)) for 2 regression targets and a 3-class label."
            )
        heads.append(part[0])
        sizes.append(int(part[1]))
    return heads, sizes


def _offsets(sizes: Sequence[int]) -> list[tuple[int, int]]:
    ends = np.cumsum(sizes).tolist()
    return [(end - size, end) for size, end in zip(sizes, ends)]


@dataclasses.dataclass(frozen=True, eq=False)
class _Parts:
    """A product's layout: its heads, their names, and the output and target column slices."""

    heads: tuple
    keys: tuple
    out_slices: tuple
    tgt_slices: tuple
    spec: str

    @property
    def width(self) -> int:
        return self.out_slices[-1][1]

    @property
    def columns(self) -> int:
        return self.tgt_slices[-1][1]


def _layout(parts) -> _Parts:
    heads, sizes = _parse_parts(parts)
    return _Parts(
        heads=tuple(heads),
        keys=tuple(_part_keys(heads)),
        out_slices=tuple(_offsets([h.num_outputs(e) for h, e in zip(heads, sizes)])),
        tgt_slices=tuple(_offsets([h.target_size(e) for h, e in zip(heads, sizes)])),
        spec="product(" + ", ".join(f"({h.spec}, {e})" for h, e in zip(heads, sizes)) + ")",
    )


def _split_outputs(p: _Parts, outputs) -> list:
    outputs = jnp.asarray(outputs)
    if outputs.shape[-1] != p.width:
        raise _width_error(p.spec, p.width, outputs.shape[-1], "the sum of the parts' num_outputs")
    return [outputs[..., a:b] for a, b in p.out_slices]


def _split_targets(p: _Parts, outputs, y) -> list:
    """Targets ``[..., columns]`` (or a tuple with one array per part) as one array per part."""
    if isinstance(y, (tuple, list)):
        if len(y) != len(p.heads):
            raise FnlearnError(
                f"{p.spec}: got a tuple of {len(y)} target arrays for {len(p.heads)} parts. Fix: pass one "
                f"array per part, or one array with {p.columns} columns."
            )
        return list(y)
    y = jnp.asarray(y)
    if p.columns == 1 and y.shape == outputs.shape[:-1]:
        y = y[..., None]
    if y.shape[:-1] != outputs.shape[:-1] or y.shape[-1] != p.columns:
        columns = ", ".join(f"{k}: {b - a}" for k, (a, b) in zip(p.keys, p.tgt_slices))
        raise FnlearnError(
            f"{p.spec}: targets of shape {tuple(y.shape)} do not fit outputs of shape {tuple(outputs.shape)}; "
            f"expected {p.columns} target columns ({columns})."
        )
    return [y[..., a:b] for a, b in p.tgt_slices]


def _log_prob(p: _Parts, outputs, y):
    outs = _split_outputs(p, outputs)
    return sum(h.log_prob(o, t) for h, o, t in zip(p.heads, outs, _split_targets(p, outs[0], y)))


def _metrics(p: _Parts, outputs, y) -> dict:
    outs = _split_outputs(p, outputs)
    parts = zip(p.keys, p.heads, outs, _split_targets(p, outs[0], y))
    return {f"{k}.{m}": v for k, h, o, t in parts for m, v in h.metrics(o, t).items()}


def _sample(p: _Parts, key, outputs, shape=()):
    subkeys = jax.random.split(key, len(p.heads))
    return tuple(h.sample(sk, o, shape) for h, sk, o in zip(p.heads, subkeys, _split_outputs(p, outputs)))


def _check_targets(p: _Parts, y, num_outputs=None) -> None:
    """Host-side: targets ``[n, ..., columns]`` (``[n, ...]`` for one column), each part's checked."""
    if num_outputs is not None and int(num_outputs) != p.width:
        raise _width_error(p.spec, p.width, int(num_outputs), "the sum of the parts' num_outputs")
    y = _host_targets(p.spec, y)
    y2 = y[..., None] if p.columns == 1 and (y.ndim == 1 or y.shape[-1] != 1) else y
    if y2.ndim < 2 or y2.shape[-1] != p.columns:
        raise FnlearnError(
            f"{p.spec}: expected targets of shape [n, {p.columns}], got {tuple(y.shape)}. Fix: concatenate the "
            "parts' targets column-wise in the order of the parts."
        )
    for h, (a, b), (oa, ob) in zip(p.heads, p.tgt_slices, p.out_slices):
        h.check_targets(y2[..., a:b], ob - oa)


def _num_outputs(p: _Parts, event_size=None) -> int:
    if event_size is not None and int(event_size) != p.columns:
        raise FnlearnError(
            f"{p.spec} reads {p.columns} target columns, got event_size={event_size}. Fix: concatenate the "
            f"parts' targets ({p.columns} columns)."
        )
    return p.width


def product(*parts: tuple[Head, int]) -> Head:
    """Independent heads side by side: p(y | f) = Π_j p_j(y_j | f_j).

    Each part is ``(head, event_size)``. Outputs are split into consecutive slices of
    ``head.num_outputs(event_size)`` columns and targets into slices of ``head.target_size(event_size)``
    columns (one class-id column for a categorical part), in the order given. The notes' example
    N(y₁:₂ | f₁:₂, diag σ) · Cat(y₃ | f₃:₄) is ``product((gaussian(), 2), (categorical(), 2))``:
    4 outputs, 3 target columns ``[y₁, y₂, class id]``.

    ``log_prob`` sums the parts' log-probabilities. Targets may also be a tuple with one array per
    part (then a categorical part may take one-hot rows). ``params`` is a dict of the parts'
    params; ``mode``, ``mean`` and ``sample`` return tuples with one entry per part; metrics are
    prefixed by the part name, e.g. ``"categorical.accuracy"``.
    """
    p = _layout(parts)
    each = lambda fn: lambda outputs: tuple(fn(h)(o) for h, o in zip(p.heads, _split_outputs(p, outputs)))  # noqa: E731
    return Head(
        name="product",
        spec=p.spec,
        num_outputs=functools.partial(_num_outputs, p),
        target_size=lambda event_size=None: p.columns,
        params=lambda outputs: {
            k: h.params(o) for k, h, o in zip(p.keys, p.heads, _split_outputs(p, outputs))
        },
        log_prob=functools.partial(_log_prob, p),
        mode=each(lambda h: h.mode),
        mean=each(lambda h: h.mean),
        sample=functools.partial(_sample, p),
        metrics=functools.partial(_metrics, p),
        check_targets=functools.partial(_check_targets, p),
    )
