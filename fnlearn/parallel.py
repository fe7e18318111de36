"""Data parallelism with JAX's own sharding: one mesh axis "data" over the devices.

The batch is split across the devices along its first axis; the parameters, optimizer state and
the (device-resident) training set are replicated. The train step is the same code on one CPU, on
eight GPUs or on a TPU slice: ``jit`` partitions it from the shardings, and the gradient's mean
over the batch becomes an all-reduce. Nothing here is specific to a platform.

Several processes (``fnlearn.distributed``, ``fnlearn launch``; docs/scaleout.md): every process
calls ``jax.distributed.initialize()`` first, holds the same data and seed, and passes
``devices="all"``: ``jax.devices()`` then lists the devices of every process and the mesh spans
them all. The state and the training set are replicated from each process's identical copy
(``put_replicated``), and each step's gather and sharding constraint inside the compiled program
give every device its slice of the global batch. Streamed batches are the exception: there each
process feeds only its own rows of every global batch (``put_process_rows``).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fnlearn import checks, distributed
from fnlearn.errors import FnlearnError

__all__ = [
    "data_mesh",
    "replicated",
    "batch_sharded",
    "put_replicated",
    "put_process_rows",
    "check_batch_size",
]

AXIS = "data"


def data_mesh(devices) -> Mesh | None:
    """A 1-D mesh named "data" over ``devices``: "all", a number of devices, or a list of devices.
    ``None`` or 1 device means no mesh (plain single-device execution)."""
    if devices is None:
        _check_every_process(jax.local_devices()[:1] if distributed.several() else [])
        return None
    available = jax.devices()
    if devices == "all":
        chosen = available
    elif checks.is_integer(devices):
        if not 1 <= devices <= len(available):
            raise FnlearnError(
                f"devices={devices}, but this process sees {len(available)} device(s): {available}. Use 1..{len(available)} or 'all'."
            )
        chosen = available[:devices]
    elif isinstance(devices, (list, tuple)) and devices and all(isinstance(d, jax.Device) for d in devices):
        chosen = list(devices)
    else:
        raise FnlearnError(
            "fit: devices must be 'all', a number of devices or a list of jax devices (jax.devices()), got "
            f"{checks.show(devices)}."
        )
    _check_every_process(chosen)
    if len(chosen) == 1:
        return None
    return Mesh(np.asarray(chosen), (AXIS,))


def _check_every_process(chosen) -> None:
    """Several processes (``fnlearn.distributed``) train one run only on devices of all of them."""
    if not distributed.several():  # (without starting a backend in one process)
        return
    count = jax.process_count()
    if len({device.process_index for device in chosen}) < count:
        raise FnlearnError(
            f"{count} processes train together, but fit's devices leave out some of them. Pass "
            "devices='all' (training.devices = 0): one mesh over the devices of every process."
        )


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(AXIS))


def put_replicated(tree, mesh: Mesh):
    """Every leaf on every device of the mesh (across hosts: from each process's identical copy)."""
    sharding = replicated(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda a: _global_copy(a, sharding), tree)


def _global_copy(leaf, sharding: NamedSharding):
    """One process's copy of ``leaf`` as the global array ``sharding`` lays out (every process
    holds the same values). PRNG keys travel as their raw data."""
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        data = _global_copy(jax.random.key_data(leaf), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf))
    if isinstance(leaf, jax.Array) and leaf.sharding == sharding:
        return leaf
    host = np.asarray(leaf)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def put_process_rows(tree, mesh: Mesh):
    """This process's rows of a global batch (every leaf's first axis) as the global batch split
    over the mesh's "data" axis: the processes' rows, in process order, make up the global batch."""
    sharding = batch_sharded(mesh)
    return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), tree)


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    n = mesh.devices.size
    if batch_size % n:
        lower, upper = batch_size - batch_size % n, batch_size - batch_size % n + n
        raise FnlearnError(
            f"batch_size={batch_size} does not split evenly over {n} devices. "
            f"Use a multiple of {n} (e.g. {lower or upper} or {upper}), or fewer devices."
        )
