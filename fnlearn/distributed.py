"""Several processes, one training run, on JAX's own distributed runtime (``jax.distributed``).

Every process runs the same command on the same data and seed; ``jax.distributed.initialize``
joins them, ``jax.devices()`` then lists the devices of all of them, and ``fit(devices="all")``
trains over one mesh spanning them (``fnlearn.parallel``). On CPUs the collectives go through
gloo, so this works on a laptop as well as on a cluster.

Who joins whom, in this order:

1. ``--coordinator HOST:PORT --process-id I --num-processes N`` (``fnlearn train``'s flags);
2. the same three in ``FNLEARN_COORDINATOR``, ``FNLEARN_PROCESS_ID``, ``FNLEARN_NUM_PROCESSES``
   (what ``fnlearn launch`` sets in each process it starts);
3. a scheduler that started several tasks (``SLURM_NTASKS > 1``, ``OMPI_COMM_WORLD_SIZE > 1``):
   ``jax.distributed.initialize()`` with no arguments, JAX's own auto-detection;
4. otherwise one process, nothing to join.

Process 0 is the leader: it alone writes the run directory (``metrics.jsonl``, ``summary.json``,
plots, TensorBoard, ``config.toml``) and prints; checkpoints are written by every process through
orbax's multi-process protocol.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from fnlearn.errors import FnlearnError

__all__ = [
    "Cluster",
    "requested",
    "initialize",
    "several",
    "is_leader",
    "silence_followers",
    "broadcast_text",
]

ENV_COORDINATOR = "FNLEARN_COORDINATOR"
ENV_PROCESS_ID = "FNLEARN_PROCESS_ID"
ENV_NUM_PROCESSES = "FNLEARN_NUM_PROCESSES"
SCHEDULER_SIZES = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE")  # more than 1: started as several tasks
TEXT_BYTES = 4096  # broadcast_text's fixed buffer (every process must pass the same shape)


@dataclasses.dataclass(frozen=True)
class Cluster:
    """How this process joins the others. All three None: JAX's auto-detection (SLURM, Open MPI)."""

    coordinator: str | None = None
    process_id: int | None = None
    num_processes: int | None = None

    @property
    def auto(self) -> bool:
        return self.coordinator is None


def requested(coordinator=None, process_id=None, num_processes=None, environ=None) -> Cluster | None:
    """The cluster this process belongs to (see the module docstring), or None for one process."""
    environ = os.environ if environ is None else environ
    given = (coordinator, process_id, num_processes)
    source = "--coordinator, --process-id and --num-processes"
    if all(v is None for v in given):
        given = tuple(environ.get(name) for name in (ENV_COORDINATOR, ENV_PROCESS_ID, ENV_NUM_PROCESSES))
        source = f"{ENV_COORDINATOR}, {ENV_PROCESS_ID} and {ENV_NUM_PROCESSES}"
    if all(v is None for v in given):
        several = any(_integer(environ.get(name, "1"), name) > 1 for name in SCHEDULER_SIZES)
        return Cluster() if several else None
    if any(v is None for v in given):
        raise FnlearnError(f"give all three of {source} (or none, to let JAX detect SLURM or mpirun).")
    address, pid, count = given
    pid, count = _integer(pid, "process id"), _integer(count, "number of processes")
    if ":" not in str(address) or not str(address).rsplit(":", 1)[1].isdigit():
        raise FnlearnError(f"coordinator {address!r} is not HOST:PORT, e.g. 127.0.0.1:12355.")
    if not 0 <= pid < count:
        raise FnlearnError(f"process id {pid} is not in 0..{count - 1} (number of processes {count}).")
    return Cluster(str(address), pid, count)


def _integer(text, what: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise FnlearnError(f"{what} must be a whole number, got {text!r}.") from None


def initialize(cluster: Cluster | None) -> None:
    """Join the cluster (nothing for None, or when this process already joined one). Must run
    before anything asks jax for its devices."""
    import jax  # noqa: PLC0415 - the command imports jax only when it trains

    if cluster is None or jax.distributed.is_initialized():
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        if cluster.auto:
            jax.distributed.initialize()
        else:
            jax.distributed.initialize(
                coordinator_address=cluster.coordinator,
                num_processes=cluster.num_processes,
                process_id=cluster.process_id,
            )
    except (RuntimeError, ValueError) as error:
        where = "auto-detected from the scheduler" if cluster.auto else f"coordinator {cluster.coordinator}"
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise FnlearnError(
            f"could not join the other processes ({where}): {first}. Check that every process was "
            "started with the same coordinator and number of processes."
        ) from None


def is_leader() -> bool:
    """Process 0 (or the only process): the one that writes the run directory and prints."""
    import jax  # noqa: PLC0415

    return jax.process_index() == 0


def silence_followers() -> None:
    """Processes other than 0 print nothing on stdout (their errors still go to stderr)."""
    if not is_leader():
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the process's life


def broadcast_text(text: str | None) -> str | None:
    """Process 0's ``text`` in every process (None stays None): e.g. the run directory it chose.
    One process: ``text`` itself."""
    import jax  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    from jax.experimental import multihost_utils  # noqa: PLC0415

    if jax.process_count() == 1:
        return text
    buffer = np.zeros(TEXT_BYTES + 1, np.uint8)
    if text is not None and is_leader():
        data = text.encode()[:TEXT_BYTES]
        buffer[0], buffer[1 : 1 + len(data)] = 1, np.frombuffer(data, np.uint8)
    buffer = np.asarray(multihost_utils.broadcast_one_to_all(buffer))
    return bytes(buffer[1:]).rstrip(b"\0").decode() if buffer[0] else None


def several() -> bool:
    """This process joined others (``jax.distributed``), without starting a backend otherwise."""
    import jax  # noqa: PLC0415

    return jax.distributed.is_initialized() and jax.process_count() > 1
