"""Sharded parameters and optimizer state (FSDP / ZeRO-3 style) over the mesh's "data" axis.

With ``fit(..., devices=n, shard="params")`` every leaf of the train state (parameters, model
state, optimizer state, moving averages) is split across the n devices instead of copied onto each:
a leaf of shape ``s`` is cut along its largest axis ``a`` with ``s[a] % n == 0`` (the first such
axis on a tie), so each device holds ``s[a] / n`` of its slices; a leaf with no such axis (biases
of odd width, scalars such as the step count and Adam's count, the PRNG key) stays replicated.
A device then holds

    Σ_sharded B_i / n  +  Σ_replicated B_j   bytes   (B: a leaf's bytes),

about 1/n of the replicated layout's Σ B when the replicated leaves are small. The train step is
unchanged: ``jit`` partitions it from the arrays' shardings, gathering each weight where the
forward and backward passes use it and summing each gradient over the devices onto the shard that
updates it (XLA's collectives), and the updated state keeps the layout it came in with (XLA's
sharding propagation; tests/test_sharding.py checks it for both drivers).
The data batch is split over the same axis as in plain data parallelism (``fnlearn.parallel``).
"""

from __future__ import annotations

from collections import defaultdict

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fnlearn import parallel
from fnlearn.errors import FnlearnError

__all__ = ["SHARDS", "bytes_per_device", "check", "leaf_spec", "place", "state_sharding"]

SHARDS = (None, "params")  # fit's shard=...: None replicates the state, "params" shards it


def check(shard, devices) -> None:
    """``shard`` is one of ``SHARDS``, and "params" has a mesh of more than one device to shard over."""
    if shard not in SHARDS:
        raise FnlearnError(
            f"fit: shard must be None (replicated parameters) or 'params' (sharded over the devices), got {shard!r}."
        )
    if shard == "params" and parallel.data_mesh(devices) is None:
        raise FnlearnError(
            f"fit: shard='params' splits the parameters over several devices, but devices={devices!r} "
            f"gives one. Pass devices='all' or a count > 1 (this process sees {len(jax.devices())}), or shard=None."
        )


def leaf_spec(shape: tuple[int, ...], n: int) -> PartitionSpec:
    """The leaf's layout over ``n`` devices: its largest axis divisible by n (the first on a tie)
    split over "data", or replicated (``PartitionSpec()``) when no axis divides."""
    axes = [a for a, size in enumerate(shape) if size >= n and size % n == 0]
    if n < 2 or not axes:
        return PartitionSpec()
    axis = max(axes, key=lambda a: (shape[a], -a))
    return PartitionSpec(*([None] * axis), parallel.AXIS)


def state_sharding(tree, mesh: Mesh):
    """A ``NamedSharding`` per leaf of ``tree`` (arrays or ``ShapeDtypeStruct``s), by ``leaf_spec``."""
    n = mesh.shape[parallel.AXIS]
    return jax.tree.map(lambda leaf: NamedSharding(mesh, leaf_spec(np.shape(leaf), n)), tree)


def place(tree, mesh: Mesh, shard):
    """``tree`` on the mesh: replicated (``shard=None``), or sharded by ``state_sharding``
    ("params"). Across hosts each process passes the same whole tree and keeps its devices' part."""
    if shard is None:
        return parallel.put_replicated(tree, mesh)
    shardings = state_sharding(tree, mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, shardings)
    return jax.tree.map(_from_whole_copy, tree, shardings)


def _from_whole_copy(leaf, sharding: NamedSharding):
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(_from_whole_copy(jax.random.key_data(leaf), sharding))
    whole = np.asarray(leaf)
    return jax.make_array_from_callback(whole.shape, sharding, lambda index: whole[index])


def bytes_per_device(tree) -> int:
    """The most bytes of ``tree``'s jax arrays that any one (addressable) device holds: per
    device, the sum of the shards it keeps (a replicated leaf counts in full on every device).
    Leaves that are not jax arrays live on the host and are not counted."""
    totals: dict = defaultdict(int)
    for leaf in jax.tree.leaves(tree):
        if not isinstance(leaf, jax.Array):
            continue
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        for piece in leaf.addressable_shards:
            totals[piece.device] += piece.data.nbytes
    return max(totals.values(), default=0)
