"""Looking inside a model: every layer's output (``intermediates``), a table of its layers (``summary``)."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fnlearn.checks import show
from fnlearn.errors import FnlearnError
from fnlearn.nn.base import Layer, Model

__all__ = ["intermediates", "summary"]


def intermediates(model: Model, params, state, x, *, train=False, key=None) -> list[tuple[str, jax.Array]]:
    """Run a serial model layer by layer and return ``(name, output)`` of every leaf layer.

    Nested ``serial`` blocks are flattened (a residual block is one entry, its output x + f(x); so
    is a transformer block). Used to watch signal propagation: the outputs named ``dense_*`` (and
    ``conv_*`` in a ``cnn``) are the pre-activations.
    """
    out = []

    def walk(layer, p, s, h, k):
        if layer.sublayers and not layer.name.startswith(("residual", "repeat")):
            for i, (sub, sp, ss) in enumerate(zip(layer.sublayers, p, s, strict=True)):
                h = walk(sub, sp, ss, h, None if k is None else jax.random.fold_in(k, i))
            return h
        h, _ = layer.apply(p, s, h, train=train, key=k)
        out.append((layer.name, h))
        return h

    walk(model.layer, params, state, jnp.asarray(x), key)
    return out


# --------------------------------------------------------------------------------------------
# summary: a table of the layers


class _Row(NamedTuple):
    path: str
    kind: str
    shape: tuple
    params: int
    state: int


def _kind(layer: Layer) -> str:
    """The factory that made the layer (``dense``, ``conv``, ``serial``, ...), from its apply;
    the layer's name where that factory is a private helper (the activations)."""
    kind = getattr(layer.apply, "__qualname__", "").split(".")[0]
    return layer.name if not kind or kind.startswith("_") else kind


def _count(tree) -> tuple[int, int]:
    leaves = jax.tree.leaves(tree)
    return sum(math.prod(a.shape) for a in leaves), sum(math.prod(a.shape) * a.dtype.itemsize for a in leaves)


def _leaf_shape(layer: Layer, in_shape) -> tuple:
    box = {}

    def shapes_only(key):
        box["out"], params, state = layer.init(key, in_shape)
        return params, state

    jax.eval_shape(shapes_only, jax.random.key(0))
    return tuple(box["out"])


def _rows(layer: Layer, params, state, in_shape, path: str, rows: list, name: str | None = None) -> tuple:
    """Append a row per leaf layer (depth first); returns the layer's output shape. A wrapper of
    one block (residual, remat) lends the block its name in the path."""
    path = f"{path}/{name or layer.name}" if path else (name or layer.name)
    subs = layer.sublayers
    if subs and isinstance(params, list) and len(params) == len(subs):  # serial: chained shapes
        shape = in_shape
        for sub, p, s in zip(subs, params, state, strict=True):
            shape = _rows(sub, p, s, shape, path, rows)
        return shape
    if len(subs) == 1:  # a wrapper of one block (residual, remat): the block's parameters
        _rows(subs[0], params, state, in_shape, path.rpartition("/")[0], rows, name or layer.name)
        return _leaf_shape(layer, in_shape)
    shape = _leaf_shape(layer, in_shape)
    rows.append(_Row(path, _kind(layer), shape, _count(params)[0], _count(state)[0]))
    return shape


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _fit(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the middle elided (paths keep both ends)."""
    if len(text) <= width:
        return text
    half = (width - 1) // 2
    return text[:half] + "…" + text[len(text) - (width - 1 - half) :]


def summary(model: Model, *, width: int = 99) -> str:
    """A table of ``model``'s layers: path, type, output shape (per example), parameters and state
    values per layer, then the totals and their bytes. Nothing is allocated (``jax.eval_shape``).

    The totals equal ``fl.tree.num_params`` of the params and of the state; the table is at most
    ``width`` characters wide (long paths are elided in the middle).
    """
    if not isinstance(model, Model):
        raise FnlearnError(
            f"summary: model must be a fl.nn.Model such as fl.nn.mlp([4, 8, 2]), got {show(model)}."
        )
    params, state = jax.eval_shape(model.init, jax.random.key(0))
    rows: list[_Row] = []
    _rows(model.layer, params, state, tuple(model.input_shape), "", rows)
    n_params, params_bytes = _count(params)
    n_state, state_bytes = _count(state)
    header = _Row("layer", "type", "output shape", "params", "state")
    cells = [(r.path, r.kind, str(r.shape), f"{r.params:,}", f"{r.state:,}") for r in rows]
    numbers = [max(len(c[i]) for c in [*cells, ("", "", "", "params", "state")]) for i in (3, 4)]
    kind_w = max(len(c[1]) for c in [*cells, ("", "type")])
    shape_w = max(len(c[2]) for c in [*cells, ("", "", "output shape")])
    path_w = max(5, min(max(len(c[0]) for c in cells), width - kind_w - shape_w - sum(numbers) - 8))

    def line(c):
        return f"{_fit(c[0], path_w):<{path_w}}  {c[1]:<{kind_w}}  {c[2]:<{shape_w}}  {c[3]:>{numbers[0]}}  {c[4]:>{numbers[1]}}"

    body = [line(header), "-" * len(line(header)), *map(line, cells), "-" * len(line(header))]
    body.append(f"input {tuple(model.input_shape)} -> output {tuple(model.output_shape)}, per example")
    body.append(
        f"params: {n_params:,} values, {_bytes(params_bytes)}   state: {n_state:,} values, {_bytes(state_bytes)}"
    )
    return "\n".join(body)
