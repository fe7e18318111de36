"""Mixed precision: the forward and backward passes in bfloat16, everything that accumulates in float32.

With ``compute_dtype="bfloat16"`` a train step casts the float32 parameters and the inputs to
bfloat16 inside the differentiated function, runs the model, and casts its outputs back to float32
before the loss. So the parameters and the optimizer state stay float32, the loss is float32, and
the gradient comes back float32 (the transpose of a cast is a cast). The layers keep the parts that
need the precision in float32: normalisation statistics (mean and variance) and softmax (attention)
are computed on float32 copies, and BatchNorm's running statistics stay float32.
bfloat16 has float32's exponent range (8 bits) and an 8-bit mantissa (≈ 3 significant digits), so
no loss scaling is needed, unlike float16.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fnlearn.errors import FnlearnError

__all__ = ["COMPUTE_DTYPES", "check_compute_dtype", "cast_floating"]

COMPUTE_DTYPES = ("float32", "bfloat16")
_ALIASES = {"float32": "float32", "f32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16"}


def check_compute_dtype(owner: str, value) -> str | None:
    """The canonical name, or None for float32 (no casting at all)."""
    if value is None:
        return None
    name = _ALIASES.get(value) if isinstance(value, str) else None
    if name is None:
        name = {jnp.dtype(jnp.bfloat16): "bfloat16", jnp.dtype(jnp.float32): "float32"}.get(_as_dtype(value))
    if name is None:
        raise FnlearnError(
            f"{owner}: compute_dtype must be 'float32' or 'bfloat16' (also 'f32', 'bf16'), got {value!r}."
        )
    return None if name == "float32" else name


def _as_dtype(value):
    try:
        return jnp.dtype(value)
    except TypeError:
        return None


def cast_floating(tree, dtype):
    """Every floating-point leaf of ``tree`` cast to ``dtype`` (integer leaves untouched)."""
    if dtype is None:
        return tree
    return jax.tree.map(
        lambda a: a.astype(dtype) if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating) else a, tree
    )
