"""Small pytree helpers shared by the optimizers, the train step and the reports."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["global_norm", "zeros_like", "num_params", "cast_like", "leaf_paths"]


def global_norm(tree) -> jax.Array:
    """‖tree‖₂ = sqrt(Σ_leaves Σ_i x_i²), the norm of all leaves seen as one flat vector."""
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        return jnp.zeros((), jnp.float32)
    return jnp.sqrt(sum(jnp.sum(jnp.square(jnp.asarray(x, jnp.float32))) for x in leaves))


def zeros_like(tree, dtype=None):
    """A tree of zeros with the structure, shapes and (unless given) dtypes of ``tree``."""
    return jax.tree_util.tree_map(lambda x: jnp.zeros_like(x, dtype=dtype), tree)


def num_params(tree) -> int:
    """Total number of scalar entries over all leaves."""
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(tree)))


def cast_like(tree, reference):
    """Cast every leaf of ``tree`` to the dtype of the matching leaf of ``reference``."""
    return jax.tree_util.tree_map(lambda x, r: jnp.asarray(x, r.dtype), tree, reference)


def leaf_paths(tree) -> list[str]:
    """Readable paths of every leaf, e.g. ``['layers/0/w', 'layers/0/b']``, for error messages."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [path_str(path) for path, _ in flat]


def path_str(path) -> str:
    """Render a jax key path (DictKey/SequenceKey/GetAttrKey entries) as ``a/b/0``."""
    parts = []
    for entry in path:
        for attr in ("key", "idx", "name"):
            if hasattr(entry, attr):
                parts.append(str(getattr(entry, attr)))
                break
        else:
            parts.append(str(entry))
    return "/".join(parts)
