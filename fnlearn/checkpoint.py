"""Save and restore a whole ``TrainState``, with orbax-checkpoint behind a thin wrapper.

What is stored: the state's arrays (step, params, model state, optimizer state, and the PRNG key as
its raw uint32 data) through orbax's ``StandardSave``, and a JSON document beside them with the
leaf paths, shapes and dtypes (to check a restore against), a SHA-256 checksum of every saved
array's bytes, a SHA-256 digest of the document itself, and whatever ``extra`` the caller
passes (fit stores the history, the time so far, the callbacks' counters and the config; the data
order is derived from the state's key). Other arrays may ride along as a flat ``{name: array}`` dict (``arrays=``; fit stores early
stopping's best weights there); they come back as ``extra["arrays"]``. No pickle anywhere.

Integrity: orbax writes each checkpoint into a temporary directory and renames it when complete, so
a process killed at any moment, also in the middle of a save, leaves the previous checkpoints
readable; a half-written one is invisible. What orbax does not see is damage after the fact (a
flipped bit, a truncated or deleted file, edited metadata): every restore recomputes each array's
checksum and the document's digest, and refuses a checkpoint that does not match with a
``CheckpointError`` naming what is wrong. ``RunCheckpoints`` keeps the last ``keep`` checkpoints in
``checkpoints/last`` and the best one by a metric in ``checkpoints/best``; resuming skips damaged
newest checkpoints (moving them to ``checkpoints/damaged/``, nothing is deleted) and continues from
the newest good one.

A failure of the disk while saving (full, read-only, gone) is raised as the ``OSError`` that caused
it, whatever orbax wrapped it in, so the caller can name the path and the cause.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import json
import logging
import shutil
import sys
import threading
import warnings
from pathlib import Path

import jax
import numpy as np

from fnlearn import distributed, ema
from fnlearn.atomic import os_failure
from fnlearn.errors import FnlearnError, FnlearnWarning
from fnlearn.rules import higher_is_better, improved
from fnlearn.tree import path_str

__all__ = [
    "save",
    "restore",
    "latest_step",
    "read_meta",
    "RunCheckpoints",
    "CheckpointError",
    "CheckpointMismatchError",
]


class CheckpointError(FnlearnError):
    """A checkpoint that is missing, corrupt, truncated, or does not fit the state."""


class CheckpointMismatchError(CheckpointError):
    """A readable checkpoint of another model or optimizer: its leaves do not fit the state."""


def _ocp():
    import orbax.checkpoint as ocp  # noqa: PLC0415 - heavy (1.4 s): loaded on first use

    return ocp


def _arrays(state):
    """The state as a tree of plain arrays (the typed PRNG key as its uint32 data). The moving
    average of the params is an entry only when the state keeps one, so states without it have the
    signature they had before ``TrainState.ema`` existed and older checkpoints restore unchanged."""
    tree = {
        "step": state.step,
        "params": state.params,
        "model_state": state.model_state,
        "opt_state": state.opt_state,
        "key": jax.random.key_data(state.key),
    }
    if getattr(state, "ema", None) is not None:
        tree["ema"] = state.ema
    return tree


def _checksums(tree) -> list[str]:
    """SHA-256 of every leaf's bytes (C order), in ``tree_flatten`` order."""
    return [
        hashlib.sha256(np.ascontiguousarray(np.asarray(leaf)).tobytes()).hexdigest()
        for leaf in jax.tree.leaves(tree)
    ]


def _digest(meta: dict) -> str:
    """SHA-256 of the metadata document without its own digest (canonical JSON)."""
    body = {k: v for k, v in meta.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=True).encode()).hexdigest()


def _verify(tree, expected: list[str], signature: list[list], where: Path, item: str) -> None:
    if len(expected) != len(signature):
        raise CheckpointError(
            f"checkpoint {where} is corrupt: its metadata lists {len(signature)} {item} arrays "
            f"but {len(expected)} checksums."
        )
    for (path, _, _), saved, now in zip(signature, expected, _checksums(tree)):
        if saved != now:
            raise CheckpointError(
                f"checkpoint {where} is corrupt: {item} array {path!r} does not match the checksum it was saved "
                f"with (its file changed after it was written)."
            )


def _signature(tree) -> list[list]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [
        [path_str(path), list(np.shape(leaf)), str(getattr(leaf, "dtype", np.asarray(leaf).dtype))]
        for path, leaf in flat
    ]


def _check_signature(saved: list, template: list, where: Path) -> None:
    if saved == template:
        return
    ema.check_restorable(saved, template, where)
    for (s_path, s_shape, s_dtype), (t_path, t_shape, t_dtype) in zip(saved, template):
        if (s_path, s_shape, s_dtype) != (t_path, t_shape, t_dtype):
            raise CheckpointMismatchError(
                f"checkpoint {where} does not fit this state: first mismatching leaf is {t_path!r} "
                f"(state: shape {tuple(t_shape)} {t_dtype}; checkpoint: {s_path!r} shape {tuple(s_shape)} {s_dtype}). "
                f"Build the same model and optimizer as the run that wrote it."
            )
    longer, which = (saved, "checkpoint") if len(saved) > len(template) else (template, "state")
    extra = longer[min(len(saved), len(template))][0]
    raise CheckpointMismatchError(
        f"checkpoint {where} does not fit this state: the {which} has {len(longer)} leaves, the other "
        f"{min(len(saved), len(template))}; first unmatched leaf: {extra!r}. Build the same model and optimizer."
    )


def _manager(directory: Path, keep: int | None):
    ocp = _ocp()
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, enable_async_checkpointing=False, create=True, cleanup_tmp_directories=True
    )  # what a killed save left
    return ocp.CheckpointManager(directory.absolute(), options=options)


def _save_with(manager, state, step: int, extra: dict, arrays: dict | None = None) -> None:
    ocp = _ocp()
    if "arrays" in extra:
        raise FnlearnError(
            'checkpoint extra may not use the key "arrays": pass arrays with arrays={name: array}.'
        )
    tree = _arrays(state)
    meta = {"signature": _signature(tree), "checksums": {"state": _checksums(tree)}, "extra": extra}
    items = {"state": ocp.args.StandardSave(tree)}
    if arrays:
        if not all(isinstance(name, str) and name.isidentifier() for name in arrays):
            raise FnlearnError(
                f"checkpoint arrays= needs a flat dict with identifier names, got keys {sorted(map(repr, arrays))}."
            )
        meta["arrays"] = _signature(arrays)
        meta["checksums"]["arrays"] = _checksums(arrays)
        items["arrays"] = ocp.args.StandardSave(dict(arrays))
    meta["digest"] = _digest(meta)
    try:
        manager.save(int(step), args=ocp.args.Composite(**items, meta=ocp.args.JsonSave(meta)), force=True)
        manager.wait_until_finished()
    except BaseException as error:  # also Ctrl-C in the middle of a save
        for leftover in Path(manager.directory).glob(f"{int(step)}.orbax-checkpoint-tmp*"):
            shutil.rmtree(leftover, ignore_errors=True)  # a failed save leaves nothing half-written
        if not isinstance(error, Exception):
            raise
        raise _as_os_error(error, manager.directory / str(step)) from None


def _as_os_error(error: Exception, where) -> Exception:
    """A failed save as a plain ``OSError`` naming the file: the disk failure behind orbax's error,
    or (when none can be found) an I/O error carrying orbax's first line."""
    if isinstance(error, FnlearnError):
        return error
    cause = os_failure(error)
    if cause is None:
        return OSError(errno.EIO, f"the checkpoint could not be written ({_first_line(error)})", str(where))
    return type(cause)(cause.errno, cause.strerror or str(cause), str(cause.filename or where))


def _read_meta(manager, directory: Path, step: int) -> dict:
    """The checkpoint's JSON document, checked against its own digest."""
    ocp = _ocp()
    where = directory / str(step)
    try:
        meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as error:  # orbax raises many types for a damaged directory
        raise CheckpointError(
            f"checkpoint {where} is corrupt or incomplete: its metadata cannot be read "
            f"({type(error).__name__}: {_first_line(error)})."
        ) from None
    if not isinstance(meta, dict) or "digest" not in meta or "checksums" not in meta:
        raise CheckpointError(
            f"checkpoint {where} has no checksums (damaged metadata, or written by an older fnlearn); "
            "it cannot be verified."
        )
    if meta["digest"] != _digest(meta):
        raise CheckpointError(
            f"checkpoint {where} is corrupt: its metadata does not match its digest (edited or damaged)."
        )
    return meta


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else ""


@contextlib.contextmanager
def _quiet_failures():
    """Inside: a damaged checkpoint's read errors are ours to report, in one line. orbax's reader
    threads and coroutines would otherwise print hundreds of lines of tracebacks (through
    ``sys.unraisablehook``, ``threading.excepthook``, ``sys.excepthook`` and the asyncio logger) as
    they die."""
    hooks = sys.unraisablehook, threading.excepthook, sys.excepthook
    asyncio_logger = logging.getLogger("asyncio")
    level = asyncio_logger.level
    sys.unraisablehook = threading.excepthook = sys.excepthook = lambda *args: None
    asyncio_logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        gc.collect()  # the failed reads' coroutines die here, while their noise is still muted
        sys.unraisablehook, threading.excepthook, sys.excepthook = hooks
        asyncio_logger.setLevel(level)


def _restore_item(manager, where: Path, step: int, name: str, abstract):
    ocp = _ocp()
    try:
        with _quiet_failures():
            return manager.restore(
                step, args=ocp.args.Composite(**{name: ocp.args.StandardRestore(abstract)})
            )[name]
    except Exception as error:
        raise CheckpointError(
            f"checkpoint {where} is corrupt or truncated: its {name} arrays cannot be read "
            f"({type(error).__name__}: {_first_line(error)})."
        ) from None


def _placement(leaf):
    """Where a restored leaf goes: where the template's leaf is, whatever devices or processes
    the checkpoint was written from (8 devices, two processes, restored on one; or the reverse)."""
    return leaf.sharding if isinstance(leaf, jax.Array) else None


def _restore_with(manager, directory: Path, state, step: int):
    where = directory / str(step)
    meta = _read_meta(manager, directory, step)
    template = _arrays(state)
    _check_signature(meta["signature"], _signature(template), where)
    abstract = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype, sharding=_placement(a)), template
    )
    arrays = _restore_item(manager, where, step, "state", abstract)
    _verify(arrays, meta["checksums"]["state"], meta["signature"], where, "state")
    restored = state.replace(
        step=arrays["step"],
        params=arrays["params"],
        model_state=arrays["model_state"],
        opt_state=arrays["opt_state"],
        key=jax.random.wrap_key_data(arrays["key"]),
    )
    if "ema" in arrays:
        restored = restored.replace(ema=type(state.ema)(*arrays["ema"]))
    extra = dict(meta["extra"])
    if meta.get("arrays"):
        placement = _placement(template["step"])
        abstract = {
            name: jax.ShapeDtypeStruct(tuple(shape), np.dtype(dtype), sharding=placement)
            for name, shape, dtype in meta["arrays"]
        }
        extra["arrays"] = _restore_item(manager, where, step, "arrays", abstract)
        _verify(extra["arrays"], meta["checksums"].get("arrays", []), meta["arrays"], where, "extra")
    return restored, extra


def save(
    directory,
    state,
    *,
    step: int | None = None,
    extra: dict | None = None,
    arrays: dict | None = None,
    keep: int | None = None,
) -> Path:
    """Write ``state``, a JSON-able ``extra`` and a flat dict of other ``arrays`` (they come back
    as ``extra["arrays"]``) as checkpoint ``step`` (default: state.step)."""
    directory = Path(directory)
    step = int(state.step) if step is None else int(step)
    manager = _manager(directory, keep)
    try:
        _save_with(manager, state, step, extra or {}, arrays)
    finally:
        manager.close()
    return directory / str(step)


_NOTHING_CHANGED = (
    " Nothing was changed. Start a new run (another --out), or put back good copies of the checkpoints."
)


def read_meta(directory, step: int | None = None) -> tuple[int, dict] | None:
    """``(step, extra)`` of checkpoint ``step`` (default: the newest whose metadata is intact) in
    ``directory``, reading no arrays; None when there is no checkpoint, ``CheckpointError`` when
    none is intact."""
    directory = Path(directory)
    if latest_step(directory) is None:
        return None
    manager = _manager(directory, None)
    try:
        reasons = []
        for candidate in sorted(manager.all_steps(), reverse=True) if step is None else [int(step)]:
            try:
                return candidate, _read_meta(manager, directory, candidate)["extra"]
            except CheckpointError as error:
                reasons.append(str(error))
        raise CheckpointError(
            f"no readable checkpoint in {directory}: " + " ".join(reasons) + _NOTHING_CHANGED
        )
    finally:
        manager.close()


def latest_step(directory) -> int | None:
    """The newest complete checkpoint's step in ``directory``, or None."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    manager = _manager(directory, None)
    try:
        return manager.latest_step()
    finally:
        manager.close()


def restore(directory, state, *, step: int | None = None):
    """``(state, extra)`` from checkpoint ``step`` (default: the latest) in ``directory``.

    ``state`` is a template (e.g. ``TrainState.create`` of the same model and optimizer): the
    restore checks every leaf's path, shape and dtype against it and names the first mismatch.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(
            f"no checkpoint directory at {directory}. Train with run_dir=... to write checkpoints."
        )
    manager = _manager(directory, None)
    try:
        steps = manager.all_steps()
        if not steps:
            raise CheckpointError(f"{directory} holds no complete checkpoint.")
        step = max(steps) if step is None else int(step)
        if step not in steps:
            raise CheckpointError(f"{directory} has no checkpoint for step {step}; it has {sorted(steps)}.")
        return _restore_with(manager, directory, state, step)
    finally:
        manager.close()


class RunCheckpoints:
    """The checkpoints of one run: the last ``keep`` in ``last/``, the best by a metric in ``best/``.

    A save writes ``best/`` (when the metric improved) before ``last/``: a kill between the two
    leaves ``best/`` one epoch ahead, and the resumed run, which repeats that epoch bit for bit,
    finds the same value already there (``restore_latest`` reads the best value back), so the
    best checkpoint is never replaced by a worse one across a resume.
    """

    def __init__(self, directory, keep: int = 3):
        self.directory = Path(directory)
        self.keep = keep
        self._last = None
        self._best = None
        self._best_value = None

    def save(
        self,
        state,
        step: int,
        extra: dict,
        best: tuple[str, float | None] | None = None,
        arrays: dict | None = None,
    ) -> None:
        """Checkpoint ``step`` into ``last/``, and into ``best/`` when ``best = (metric, value)``
        improves on the best so far (lower is better, higher for accuracy-like metrics)."""
        if best is not None and best[1] is not None and np.isfinite(best[1]):
            name, value = best
            if improved(value, self._best_value, maximise=higher_is_better(name)):
                if self._best is None:
                    self._best = _manager(self.directory / "best", 1)
                _save_with(self._best, state, step, extra | {"best": {name: value}}, arrays)
                self._best_value = value
        if self._last is None:
            self._last = _manager(self.directory / "last", self.keep)
        _save_with(self._last, state, step, extra, arrays)

    def restore_latest(self, state):
        """``(state, extra)`` from the newest good checkpoint in ``last/``, or None if there is none.

        Newer checkpoints that are damaged (unreadable, or failing their checksums) are reported
        (a ``FnlearnWarning`` naming each) and moved to ``damaged/``, so the resumed run can write
        those steps again; nothing is deleted. With no good checkpoint at all, nothing is moved
        and ``CheckpointError`` lists why each one was refused. The best value so far is read back
        from ``best/``, so later saves compare against it.
        """
        directory = self.directory / "last"
        if latest_step(directory) is None:
            return None
        manager = _manager(directory, None)
        try:
            damaged = []
            for step in sorted(manager.all_steps(), reverse=True):
                try:
                    restored = _restore_with(manager, directory, state, step)
                except CheckpointMismatchError:
                    raise
                except CheckpointError as error:
                    damaged.append((step, str(error)))
                    continue
                break
            else:
                raise CheckpointError(
                    f"no readable checkpoint in {directory}: "
                    + " ".join(reason for _, reason in damaged)
                    + _NOTHING_CHANGED
                )
        finally:
            manager.close()
        for bad_step, reason in damaged:
            moved = self._quarantine(directory / str(bad_step), "last")
            warnings.warn(
                FnlearnWarning(f"{reason} Moved it to {moved}; resuming from step {int(restored[0].step)}."),
                stacklevel=2,
            )
        self._best_value = self._saved_best_value()
        return restored

    def _quarantine(self, path: Path, kind: str) -> Path:
        """Move a damaged checkpoint out of orbax's sight into ``damaged/KIND-STEP[-N]``."""
        target = self.directory / "damaged" / f"{kind}-{path.name}"
        if not distributed.is_leader():  # process 0 moves it (fnlearn.distributed)
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        n = 1
        while target.exists():
            n += 1
            target = target.with_name(f"{kind}-{path.name}-{n}")
        path.rename(target)
        return target

    def _saved_best_value(self) -> float | None:
        """The metric value stored with ``best/``'s checkpoint (None when there is none; a damaged
        one is reported and moved to ``damaged/``, and the next save becomes the best)."""
        directory = self.directory / "best"
        step = latest_step(directory)
        if step is None:
            return None
        manager = _manager(directory, None)
        try:
            best = _read_meta(manager, directory, step)["extra"].get("best", {})
        except CheckpointError as error:
            best = None
            reason = str(error)
        finally:
            manager.close()
        if best is None:
            moved = self._quarantine(directory / str(step), "best")
            warnings.warn(
                FnlearnWarning(f"{reason} Moved it to {moved}; the next improvement becomes the best."),
                stacklevel=2,
            )
            return None
        return next(iter(best.values()), None)

    def close(self) -> None:
        """Close the managers (their background writes end here), then remove what a save that
        failed or was interrupted left half-written: orbax's ``*.orbax-checkpoint-tmp*`` folders."""
        try:
            for manager in (self._last, self._best):
                if manager is not None:
                    manager.close()
        finally:
            for leftover in (
                self.directory.glob("*/*.orbax-checkpoint-tmp*") if distributed.is_leader() else ()
            ):
                shutil.rmtree(leftover, ignore_errors=True)
