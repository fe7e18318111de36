"""Builders: whole models from a few numbers. Each returns a ``Model``.

* ``mlp(sizes)``: dense blocks and a dense output layer.

``BUILDERS`` names them, an explicit table (nothing registers itself on import).
"""

from __future__ import annotations

from collections.abc import Sequence

from fnlearn import init as initializers
from fnlearn.errors import FnlearnError, unknown_name
from fnlearn.nn.activations import ACTIVATIONS, default_w_init
from fnlearn.nn.base import Model, build
from fnlearn.nn.combinators import residual as residual_layer
from fnlearn.nn.combinators import serial
from fnlearn.nn.linear import dense as dense_layer
from fnlearn.nn.normalization import NORMS
from fnlearn.nn.stochastic import dropout as dropout_layer

__all__ = ["BUILDERS", "mlp"]

# The layer factories are imported as dense_layer and dropout_layer: the builders' arguments
# ``dense`` and ``dropout`` would shadow them.


def _check_names(activation: str, norm: str | None) -> None:
    if activation not in ACTIVATIONS:
        raise unknown_name("activation", activation, ACTIVATIONS)
    if norm is not None and norm not in NORMS:
        raise unknown_name("norm", norm, NORMS)


def _block(core, activation: str, norm: str | None, extra=(), *, name: str):
    """core → norm (optional) → activation → extra layers (dropout, pooling), as one serial block."""
    norm_layers = [] if norm is None else [NORMS[norm]()]
    return serial(core, *norm_layers, ACTIVATIONS[activation](), *extra, name=name)


def _dropout_tail(rate: float) -> list:
    return [dropout_layer(rate)] if rate > 0 else []


def mlp(
    sizes: Sequence[int],
    *,
    activation: str = "relu",
    w_init=None,
    b_init=None,
    dropout: float = 0.0,
    norm: str | None = None,
    residual: bool = False,
) -> Model:
    """A multilayer perceptron: ``sizes = [in, hidden..., out]``.

    Each hidden block is dense → norm (optional) → activation → dropout (optional); with
    ``residual=True`` a block whose input and output widths agree becomes x + block(x). The last
    layer is a plain dense layer (no activation; its weights are LeCun-initialised, Var = 1/fan_in,
    since no activation follows). ``w_init`` defaults to ``default_w_init(activation)``.
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise FnlearnError(f"mlp: sizes lists the input, hidden and output widths (at least two positive ints), got {sizes}.")
    _check_names(activation, norm)
    hidden_init = w_init or default_w_init(activation)
    layers = []
    for i, width in enumerate(sizes[1:-1]):
        core = dense_layer(width, w_init=hidden_init, b_init=b_init, name=f"dense_{i}")
        block = _block(core, activation, norm, _dropout_tail(dropout), name=f"block_{i}")
        layers.append(residual_layer(block) if residual and sizes[i] == width else block)
    out_init = w_init or initializers.lecun_normal()
    layers.append(dense_layer(sizes[-1], w_init=out_init, b_init=b_init, name="output"))
    return build(serial(*layers, name="mlp"), sizes[0])


BUILDERS = {"mlp": mlp}
