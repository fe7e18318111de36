"""The pre-norm transformer block (as GPT-2 and nanoGPT):

x ← x + Dropout(Attention(Norm(x)))
x ← x + Dropout(W₂·gelu(W₁·Norm(x) + b₁) + b₂)        (W₁: D → mlp_ratio·D, W₂: back to D)
"""

from __future__ import annotations

from fnlearn.errors import FnlearnError, unknown_name
from fnlearn.nn.activations import default_w_init, gelu
from fnlearn.nn.attention import multi_head_attention
from fnlearn.nn.base import Layer, positive_int
from fnlearn.nn.combinators import residual, serial
from fnlearn.nn.linear import dense
from fnlearn.nn.normalization import layer_norm, rms_norm
from fnlearn.nn.stochastic import check_rate
from fnlearn.nn.stochastic import dropout as dropout_layer

__all__ = ["SEQUENCE_NORMS", "transformer_block"]

# The norms a transformer block can name: both normalise each position over its features.
SEQUENCE_NORMS = {"layer_norm": layer_norm, "rms_norm": rms_norm}


def transformer_block(
    num_heads: int,
    *,
    mlp_ratio: int = 4,
    dropout: float = 0.0,
    causal: bool = True,
    norm: str = "layer_norm",
    name: str = "transformer_block",
) -> Layer:
    """A pre-norm block: an attention and an MLP sub-block, each residual; (T, D) → (T, D).

    ``dropout`` is applied to the attention weights and to each sub-block's output in training.
    Params: ``[attention block, mlp block]``, each the list of its layers' params.
    """
    num_heads = positive_int(name, "num_heads", num_heads)
    mlp_ratio = positive_int(name, "mlp_ratio", mlp_ratio)
    check_rate(name, dropout, "dropout")
    if norm not in SEQUENCE_NORMS:
        raise unknown_name("transformer norm", norm, SEQUENCE_NORMS)
    make_norm = SEQUENCE_NORMS[norm]

    def layers(width: int) -> Layer:
        """The block for inputs of width D (the MLP's widths depend on it)."""
        tail = [dropout_layer(dropout)] if dropout > 0 else []
        attention = serial(
            make_norm(),
            multi_head_attention(num_heads, causal=causal, dropout=dropout),
            *tail,
            name="attention_block",
        )
        mlp = serial(
            make_norm(),
            dense(mlp_ratio * width, w_init=default_w_init("gelu"), name="mlp_in"),
            gelu(),
            dense(width, name="mlp_out"),
            *tail,
            name="mlp_block",
        )
        return serial(residual(attention), residual(mlp), name=name)

    def init(key, in_shape):
        if len(in_shape) != 2:
            raise FnlearnError(f"{name}: examples must be sequences (T, D), got shape {tuple(in_shape)}.")
        return layers(in_shape[-1]).init(key, in_shape)

    def apply(params, state, x, *, train=False, key=None):
        return layers(x.shape[-1]).apply(params, state, x, train=train, key=key)

    return Layer(name, init, apply)
