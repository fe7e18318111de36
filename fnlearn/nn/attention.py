"""Multi-head self-attention over sequences (T, D) (Vaswani et al., 2017).

With H heads of width d = D/H, for each head h:

    Q = x·W_q + b_q,  K = x·W_k + b_k,  V = x·W_v + b_v      (each split into H slices of width d)
    A_h = softmax(Q_h K_hᵀ / √d + M)                          (row t: how much position t attends to s)
    y = concat_h(A_h V_h)·W_o + b_o

M is 0, or −∞ above the diagonal with ``causal=True`` (position t sees positions s ≤ t only).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from fnlearn import init as initializers
from fnlearn.errors import FnlearnError
from fnlearn.nn.base import Layer, positive_int
from fnlearn.nn.stochastic import check_rate, drop

__all__ = ["PROJECTIONS", "attention_weights", "multi_head_attention"]

PROJECTIONS = ("query", "key", "value", "out")


def attention_weights(scores: jax.Array, causal: bool) -> jax.Array:
    """softmax over the last axis of ``scores`` (…, T, S), masked above the diagonal when ``causal``.

    Computed in at least float32 (a bfloat16 softmax loses the small weights), then cast back.
    """
    in_dtype = scores.dtype
    dtype = jnp.promote_types(in_dtype, jnp.float32)
    scores = scores.astype(dtype)
    if causal:
        t, s = scores.shape[-2:]
        visible = jnp.arange(s)[None, :] <= jnp.arange(t)[:, None]
        scores = jnp.where(visible, scores, jnp.finfo(dtype).min)
    return jax.nn.softmax(scores, axis=-1).astype(in_dtype)


def _check_width(name: str, in_shape, num_heads: int) -> None:
    if len(in_shape) != 2 or in_shape[-1] % num_heads:
        raise FnlearnError(
            f"{name}: examples must be sequences (T, D) with D divisible by num_heads={num_heads}, "
            f"got shape {tuple(in_shape)}. Choose a width D that is a multiple of num_heads."
        )


def multi_head_attention(
    num_heads: int, *, causal: bool = False, dropout: float = 0.0, w_init=None, name: str = "attention"
) -> Layer:
    """Self-attention with ``num_heads`` heads; (T, D) → (T, D).

    Params: ``{"query", "key", "value", "out"}``, each ``{"w": (D, D), "b": (D,)}``; ``w_init``
    defaults to LeCun normal (Var = 1/D). ``dropout`` drops attention weights in training (the rate
    lives in ``state`` as the ``dropout`` layer's does, so replicas can vary it).
    """
    num_heads = positive_int(name, "num_heads", num_heads)
    check_rate(name, dropout, "dropout")
    w_init = w_init or initializers.lecun_normal()

    def init(key, in_shape):
        _check_width(name, in_shape, num_heads)
        width = in_shape[-1]
        keys = jax.random.split(key, len(PROJECTIONS))
        params = {
            p: {"w": w_init(k, (width, width)), "b": jnp.zeros((width,))} for p, k in zip(PROJECTIONS, keys)
        }
        state = {"rate": jnp.asarray(dropout, jnp.float32)} if dropout > 0 else {}
        return tuple(in_shape), params, state

    def apply(params, state, x, *, train=False, key=None):
        *lead, t, width = x.shape
        head_width = width // num_heads

        def project(p, h):
            return h @ params[p]["w"] + params[p]["b"]

        q, k, v = (project(p, x).reshape(*lead, t, num_heads, head_width) for p in PROJECTIONS[:3])
        scores = jnp.einsum("...thd,...shd->...hts", q, k) / math.sqrt(head_width)
        weights = attention_weights(scores, causal)
        if train and "rate" in state:
            weights = drop(weights, state["rate"], key, name)
        heads = jnp.einsum("...hts,...shd->...thd", weights, v)
        return project("out", heads.reshape(x.shape)), state

    return Layer(name, init, apply)
