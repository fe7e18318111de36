"""Generating token sequences from a trained sequence model (a GPT): greedy or with a temperature.

``generate(model, params, model_state, prompt_ids, length)`` appends ``length`` tokens, one at a
time: the model reads the last ``max_len`` tokens (T, its input length; the window is padded on the
right, which a causal model never looks at) and the next token is

* greedy (``temperature=0``, the default): argmax_k z_k at the last real position;
* sampled: a draw from softmax(z / temperature), with key ``fold_in(key, i)`` for token i, so the
  same key gives the same text.

One compiled program serves every step (the window has a fixed shape; the position is an argument).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn import checks
from fnlearn.errors import FnlearnError

__all__ = ["generate"]


@functools.partial(jax.jit, static_argnames=("apply",))
def _next_token(apply, params, model_state, window, position, key, temperature):
    logits, _ = apply(params, model_state, window[None].astype(jnp.float32), train=False)
    z = logits[0, position].astype(jnp.float32)
    drawn = jax.random.categorical(key, z / jnp.maximum(temperature, 1e-6))
    return jnp.where(temperature > 0, drawn, jnp.argmax(z)).astype(jnp.int32)


def _window(ids: list[int], max_len: int) -> tuple[np.ndarray, int]:
    """The last max_len ids, padded with 0 on the right to max_len; the last real position."""
    context = ids[-max_len:]
    return np.array(context + [0] * (max_len - len(context)), np.int32), len(context) - 1


def generate(
    model, params, model_state, prompt_ids, length: int, *, temperature: float = 0.0, key=None
) -> np.ndarray:
    """The ``length`` token ids that follow ``prompt_ids`` (a non-empty sequence of ids), as an int array.

    ``model`` maps ids (T,) to logits (T, V) causally, like ``fnlearn.nn.gpt``. ``temperature`` 0
    is greedy; above 0 the tokens are drawn from softmax(z / temperature) with ``key`` (default
    ``jax.random.key(0)``).
    """
    checks.positive_int("generate", "length", length, "It is the number of tokens to append.")
    checks.nonneg("generate", "temperature", temperature, "0 is greedy (the most likely token).")
    ids = [int(i) for i in np.asarray(prompt_ids).reshape(-1)]
    if not ids:
        raise FnlearnError("generate: the prompt is empty; give at least one token to continue from.")
    if len(model.input_shape) != 1 or len(model.output_shape) != 2:
        raise FnlearnError(
            f"generate: expected a sequence model, ids (T,) → logits (T, V), like fnlearn.nn.gpt; this one maps "
            f"{model.input_shape} → {model.output_shape}."
        )
    key = jax.random.key(0) if key is None else key
    max_len = model.input_shape[0]
    for i in range(length):
        window, position = _window(ids, max_len)
        token = _next_token(
            model.apply, params, model_state, window, position, jax.random.fold_in(key, i), float(temperature)
        )
        ids.append(int(token))
    return np.array(ids[-length:], np.int32)
