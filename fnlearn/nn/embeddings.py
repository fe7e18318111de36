"""Token embeddings and position encodings for sequences (T, D)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn import init as initializers
from fnlearn.errors import FnlearnError
from fnlearn.nn.base import Layer, positive_int

__all__ = ["embedding", "positional_embedding", "sinusoidal_positions"]


def _default_table_init():
    """Rows ~ N(0, 1/features): Var = 1/fan_in with the features axis as the fan."""
    return initializers.variance_scaling(1.0, "fan_in", "normal", in_axis=-1, out_axis=-2)


def _check_ids(ids, num_embeddings: int) -> None:
    """Eagerly, the error for ids outside [0, num_embeddings); under jit such ids give NaN rows."""
    if isinstance(ids, jax.core.Tracer):
        return
    ids = np.asarray(ids)
    bad = (ids < 0) | (ids >= num_embeddings) | (ids != np.floor(ids))
    if bad.any():
        first = ids[bad].flat[0]
        raise FnlearnError(
            f"embedding: token ids must be whole numbers in [0, {num_embeddings}), got {first.item()!r} "
            f"({int(bad.sum())} bad id(s)). Check the vocabulary size against the data."
        )


def embedding(num_embeddings: int, features: int, *, w_init=None, name: str = "embedding") -> Layer:
    """Integer ids → rows of a table: y[..., :] = E[id] with ``params = {"embedding": (num, features)}``.

    Maps examples of shape S (e.g. (T,)) to S + (features,). The ids may be integers or floats
    holding whole numbers (``fl.fit`` wants floating x); they are cast to int32. Outside
    [0, num_embeddings) an eager call raises; under ``jit`` the row is NaN, so the loss shows it.
    ``w_init`` defaults to N(0, 1/features).
    """
    num_embeddings = positive_int(name, "num_embeddings", num_embeddings)
    features = positive_int(name, "features", features)
    w_init = w_init or _default_table_init()

    def init(key, in_shape):
        return (*in_shape, features), {"embedding": w_init(key, (num_embeddings, features))}, {}

    def apply(params, state, x, *, train=False, key=None):
        del train, key
        _check_ids(x, num_embeddings)
        ids = x.astype(jnp.int32)
        ids = jnp.where(ids < 0, num_embeddings, ids)  # negative ids are out of range, not from the end
        return jnp.take(params["embedding"], ids, axis=0, mode="fill", fill_value=jnp.nan), state

    return Layer(name, init, apply)


def _check_sequence(layer: str, in_shape, max_len: int | None = None) -> None:
    if len(in_shape) != 2 or (max_len is not None and in_shape[0] > max_len):
        limit = "" if max_len is None else f" with T <= max_len = {max_len}"
        raise FnlearnError(
            f"{layer}: examples must be sequences (T, D){limit}, got shape {tuple(in_shape)}. "
            "Put an embedding first, or build the model for shorter sequences."
        )


def positional_embedding(max_len: int, *, w_init=None, name: str = "positional_embedding") -> Layer:
    """Learned positions added to a sequence: y[t] = x[t] + P[t], ``params = {"embedding": (max_len, D)}``.

    Sequences may be shorter than ``max_len`` (the first T rows are used). ``w_init`` defaults to
    N(0, 1/D), as ``embedding``.
    """
    positive_int(name, "max_len", max_len)
    w_init = w_init or _default_table_init()

    def init(key, in_shape):
        _check_sequence(name, in_shape, max_len)
        return tuple(in_shape), {"embedding": w_init(key, (max_len, in_shape[-1]))}, {}

    def apply(params, state, x, *, train=False, key=None):
        del train, key
        table = params["embedding"]
        if x.shape[-2] > table.shape[0]:
            raise FnlearnError(
                f"{name}: sequences of length {x.shape[-2]} are longer than max_len = {table.shape[0]} "
                f"(input shape {x.shape}). Build the layer with a larger max_len, or cut the sequences."
            )
        return x + table[: x.shape[-2]].astype(x.dtype), state

    return Layer(name, init, apply)


def sinusoids(length: int, width: int, base: float = 10_000.0) -> np.ndarray:
    """P[t, 2i] = sin(t / base^(2i/D)), P[t, 2i+1] = cos(t / base^(2i/D)) (Vaswani et al., 2017)."""
    t = np.arange(length)[:, None]
    frequencies = base ** (-np.arange(0, width, 2) / width)
    table = np.zeros((length, width))
    table[:, 0::2] = np.sin(t * frequencies)
    table[:, 1::2] = np.cos(t * frequencies[: width // 2])
    return table


def sinusoidal_positions(base: float = 10_000.0) -> Layer:
    """Fixed positions added to a sequence (T, D): y[t] = x[t] + P[t] with P from ``sinusoids``."""

    def init(key, in_shape):
        del key
        _check_sequence("sinusoidal_positions", in_shape)
        return tuple(in_shape), {}, {}

    def apply(params, state, x, *, train=False, key=None):
        del params, train, key
        return x + jnp.asarray(sinusoids(x.shape[-2], x.shape[-1], base), x.dtype), state

    return Layer("sinusoidal_positions", init, apply)
