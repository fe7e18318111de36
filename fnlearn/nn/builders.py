"""Builders: whole models from a few numbers. Each returns a ``Model``.

* ``mlp(sizes)``: dense blocks and a dense output layer;
* ``cnn(input_shape, num_outputs=...)``: conv blocks, flatten, a dense head;
* ``gpt(vocab_size, max_len)``: a decoder-only transformer giving next-token logits.

``BUILDERS`` names them, an explicit table (nothing registers itself on import).
"""

from __future__ import annotations

from collections.abc import Sequence

from fnlearn import checks
from fnlearn import init as initializers
from fnlearn.errors import FnlearnError, unknown_name
from fnlearn.nn.activations import ACTIVATIONS, default_w_init
from fnlearn.nn.base import Model, build, check_inits, positive_int
from fnlearn.nn.combinators import remat as remat_layer
from fnlearn.nn.combinators import residual as residual_layer
from fnlearn.nn.combinators import serial
from fnlearn.nn.convolution import conv
from fnlearn.nn.embeddings import embedding, positional_embedding
from fnlearn.nn.linear import dense as dense_layer
from fnlearn.nn.normalization import NORMS, layer_norm
from fnlearn.nn.pooling import flatten, max_pool
from fnlearn.nn.stochastic import check_rate
from fnlearn.nn.stochastic import dropout as dropout_layer
from fnlearn.nn.transformer import transformer_block

__all__ = ["BUILDERS", "cnn", "gpt", "mlp"]

# The layer factories are imported as dense_layer and dropout_layer: the builders' arguments
# ``dense`` and ``dropout`` would shadow them.


def _check_names(activation: str, norm: str | None) -> None:
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise unknown_name("activation", activation, ACTIVATIONS)
    if norm is not None and (not isinstance(norm, str) or norm not in NORMS):
        raise unknown_name("norm", norm, NORMS)


def _block(core, activation: str, norm: str | None, extra=(), *, name: str):
    """core → norm (optional) → activation → extra layers (dropout, pooling), as one serial block."""
    norm_layers = [] if norm is None else [NORMS[norm]()]
    return serial(core, *norm_layers, ACTIVATIONS[activation](), *extra, name=name)


def _maybe_remat(owner: str, layers: list, remat: bool) -> list:
    """With ``remat``, every block wrapped in ``remat`` (activations recomputed in the backward pass)."""
    checks.boolean(owner, "remat", remat)
    return [remat_layer(layer) for layer in layers] if remat else layers


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
    remat: bool = False,
) -> Model:
    """A multilayer perceptron: ``sizes = [in, hidden..., out]``.

    Each hidden block is dense → norm (optional) → activation → dropout (optional); with
    ``residual=True`` a block whose input and output widths agree becomes x + block(x). The last
    layer is a plain dense layer (no activation; its weights are LeCun-initialised, Var = 1/fan_in,
    since no activation follows). ``w_init`` defaults to ``default_w_init(activation)``.
    ``remat=True`` recomputes each hidden block's activations in the backward pass (``remat``).
    """
    sizes = _check_sizes(sizes)
    check_rate("mlp", dropout, "dropout")
    checks.boolean("mlp", "residual", residual)
    check_inits("mlp", w_init=w_init, b_init=b_init)
    _check_names(activation, norm)
    hidden_init = w_init or default_w_init(activation)
    layers = []
    for i, width in enumerate(sizes[1:-1]):
        core = dense_layer(width, w_init=hidden_init, b_init=b_init, name=f"dense_{i}")
        block = _block(core, activation, norm, _dropout_tail(dropout), name=f"block_{i}")
        layers.append(residual_layer(block) if residual and sizes[i] == width else block)
    layers = _maybe_remat("mlp", layers, remat)
    out_init = w_init or initializers.lecun_normal()
    layers.append(dense_layer(sizes[-1], w_init=out_init, b_init=b_init, name="output"))
    return build(serial(*layers, name="mlp"), sizes[0], fix=f"smaller widths in sizes={sizes}")


def _check_sizes(sizes) -> list[int]:
    """mlp's ``sizes``: a list of at least two positive integers (input, hidden..., output)."""
    expected = "a list of at least two positive integers [input, hidden..., output], e.g. [64, 128, 10]"
    if not isinstance(sizes, (list, tuple)) or len(sizes) < 2:
        raise FnlearnError(f"mlp: sizes must be {expected}, got {checks.show(sizes)}.")
    hint = "sizes lists the input, hidden and output widths."
    return [positive_int("mlp", f"sizes[{i}]", s, hint) for i, s in enumerate(sizes)]


def cnn(
    input_shape: Sequence[int],
    *,
    channels: Sequence[int] = (32, 64),
    kernel_size=3,
    pool=2,
    dense: Sequence[int] = (128,),
    num_outputs: int,
    activation: str = "relu",
    norm: str | None = None,
    dropout: float = 0.0,
    remat: bool = False,
) -> Model:
    """A convolutional network for channels-last examples, e.g. images (H, W, C).

    Conv blocks, one per entry of ``channels``: conv ("SAME" padding) → norm (optional) →
    activation → max-pool (``pool`` window and stride; None or 1: no pooling). Then flatten, dense
    blocks of the widths in ``dense`` (dense → activation → dropout), and a plain dense output of
    ``num_outputs``. Hidden weights follow the activation (``default_w_init``, the fans counting the
    receptive field); the output layer is LeCun-initialised. ``norm="batch_norm"`` normalises each
    channel over the batch and every position; ``"layer_norm"`` each position over its channels.
    ``remat=True`` recomputes each block's activations in the backward pass (``remat``).
    """
    _check_names(activation, norm)
    num_outputs = positive_int("cnn", "num_outputs", num_outputs)
    check_rate("cnn", dropout, "dropout")
    hidden_init = default_w_init(activation)
    pooling = [] if pool in (None, 1) else [max_pool(pool)]
    layers = []
    for i, width in enumerate(channels):
        core = conv(width, kernel_size, w_init=hidden_init, name=f"conv_{i}")
        layers.append(_block(core, activation, norm, pooling, name=f"conv_block_{i}"))
    layers = _maybe_remat("cnn", layers, remat)
    layers.append(flatten())
    dense_blocks = []
    for i, width in enumerate(dense):
        core = dense_layer(width, w_init=hidden_init, name=f"dense_{i}")
        dense_blocks.append(_block(core, activation, None, _dropout_tail(dropout), name=f"block_{i}"))
    layers += _maybe_remat("cnn", dense_blocks, remat)
    layers.append(dense_layer(num_outputs, name="output"))
    return build(serial(*layers, name="cnn"), input_shape)


def gpt(
    vocab_size: int,
    max_len: int,
    *,
    width: int = 128,
    depth: int = 4,
    num_heads: int = 4,
    dropout: float = 0.0,
    remat: bool = False,
) -> Model:
    """A decoder-only transformer (GPT): token ids (T,) → next-token logits (T, vocab_size).

    Token embedding + learned positions → (dropout) → ``depth`` causal pre-norm transformer blocks
    → layer norm → dense to ``vocab_size`` logits. The model takes sequences of exactly ``max_len``
    ids (integers, or floats holding whole numbers); the logits at position t depend on ids ≤ t only.
    ``remat=True`` recomputes each transformer block's activations in the backward pass (``remat``).
    """
    vocab_size = positive_int("gpt", "vocab_size", vocab_size)
    width = positive_int("gpt", "width", width)
    depth = positive_int("gpt", "depth", depth)
    check_rate("gpt", dropout, "dropout")
    blocks = [
        transformer_block(num_heads, dropout=dropout, causal=True, name=f"block_{i}") for i in range(depth)
    ]
    blocks = _maybe_remat("gpt", blocks, remat)
    layers = [
        embedding(vocab_size, width, name="token_embedding"),
        positional_embedding(max_len),
        *_dropout_tail(dropout),
        *blocks,
        layer_norm(),
        dense_layer(vocab_size, name="logits"),
    ]
    return build(serial(*layers, name="gpt"), (max_len,))


BUILDERS = {"mlp": mlp, "cnn": cnn, "gpt": gpt}
