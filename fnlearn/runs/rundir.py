"""Run directories on disk: made safely, written by one process at a time, never half-written.

* ``Claim`` is what one command owns on disk: the folders it made (so a refused run removes
  exactly those, never a folder the user made) and an exclusive lock on every run directory it
  writes. The lock is ``fcntl.flock`` on ``DIR/.fnlearn.lock`` holding the writer's pid, removed
  when the command ends; the operating system drops the lock when the process ends, also by
  ``kill -9``, so a resume after a crash never finds a stale lock. A second process aiming at a held directory, or at one inside it
  (a sweep's run), is refused with one line naming the holder's pid.
* ``output_directory`` picks and claims ``--out`` (default ``runs/NAME``, then ``NAME-2``, ...).
* Files are written through ``fnlearn.atomic.write_text`` (temporary file, then rename):
  ``write_config`` (RUN/config.toml) and ``write_json`` (RUN/summary.json).

Standard library only: nothing here imports jax.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from pathlib import Path

from fnlearn.atomic import write_text
from fnlearn.config import dumps
from fnlearn.errors import FnlearnError

__all__ = [
    "LOCK_NAME",
    "RunDirBusyError",
    "Claim",
    "output_directory",
    "is_taken",
    "check_resumable",
    "write_config",
    "write_json",
]

LOCK_NAME = ".fnlearn.lock"
ANCESTORS_CHECKED = 3
"""A run directory is also refused while one of its nearest folders is locked (a sweep's OUT)."""

RUN_FILES = ("config.toml", "metrics.jsonl", LOCK_NAME)
"""What a run writes before its first record: removed again when the run is refused."""


class RunDirBusyError(FnlearnError):
    """Another process holds the lock of the run directory."""


def is_taken(path: Path) -> bool:
    """A path holding anything: a file, or a folder with entries (a free lock file aside)."""
    return path.exists() and (not path.is_dir() or any(p.name != LOCK_NAME for p in path.iterdir()))


def _holder(lock_path: Path) -> str:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        pid = lock_path.read_text(encoding="utf-8").strip()
        if pid.isdigit():
            return f"pid {pid}"
    return "an unknown pid"


def _try_lock(lock_path: Path, *, create: bool) -> int | None:
    """An open descriptor holding ``lock_path``'s exclusive lock, or None when another process has
    it (or, with ``create=False``, when there is no lock file)."""
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT if create else os.O_RDONLY, 0o644)
    except (FileNotFoundError, NotADirectoryError):
        if create:
            raise
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        same = os.path.exists(lock_path) and os.fstat(fd).st_ino == os.stat(lock_path).st_ino
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    if not same:  # its holder removed it between our open and our lock: take the new one
        os.close(fd)
        return _try_lock(lock_path, create=create)
    return fd


class Claim:
    """The folders one command made and the run directories it holds locked.

    Use as a context manager: leaving it releases the locks and removes their files (a process
    that dies keeps its lock file, unlocked: the next one takes it over). ``writer=False``: one of
    several processes training one run together, not process 0 (``fnlearn.distributed``), which
    alone makes, locks and removes folders; this claim only remembers what it was given.
    """

    def __init__(self, writer: bool = True):
        self.writer = writer
        self.created: list[Path] = []
        self._locks: dict[Path, int | None] = {}

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        for directory in list(self._locks):
            self.unlock(directory)

    def holds(self, directory: Path) -> bool:
        return directory.absolute() in self._locks

    def unlock(self, directory: Path) -> None:
        """Release ``directory``'s lock; its file goes first, so nobody can lock a file that is gone."""
        fd = self._locks.pop(directory.absolute(), None)
        if fd is not None:  # None: held by process 0 for this one
            with contextlib.suppress(OSError):
                (directory.absolute() / LOCK_NAME).unlink()
            os.close(fd)

    def make_dirs(self, directory: Path) -> None:
        """``mkdir -p`` that remembers every folder it made; a file in the way is one clear line."""
        if not self.writer:
            return
        missing = []
        path = directory.absolute()
        while not path.exists():
            if path.is_symlink():  # a dangling link: mkdir would fail anyway, say why
                raise FnlearnError(
                    f"{path} is a symbolic link to a missing folder. Remove it or choose another path."
                )
            missing.append(path)
            path = path.parent
        if not path.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "a file is in the way (not a folder)", str(path))
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                if not path.is_dir():
                    raise NotADirectoryError(
                        errno.ENOTDIR, "a file is in the way (not a folder)", str(path)
                    ) from None
                continue  # made by someone else just now: not ours to remove
            self.created.append(path)

    def lock(self, directory: Path) -> None:
        """Make ``directory`` (as needed) and hold its lock; refuse while this process or another
        holds it, or while another holds one of its nearest folders (a sweep writing into it)."""
        directory = directory.absolute()
        if directory in self._locks or not self.writer:
            self._locks.setdefault(directory, None)
            return
        for ancestor in list(directory.parents)[:ANCESTORS_CHECKED]:
            if ancestor in self._locks:
                continue
            if _is_locked(ancestor):
                raise self._busy(ancestor, inside=directory)
        self.make_dirs(directory)
        lock_path = directory / LOCK_NAME
        fd = _try_lock(lock_path, create=True)
        if fd is None:
            raise self._busy(directory)
        self._locks[directory] = fd
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as error:
            raise type(error)(error.errno, error.strerror, str(lock_path)) from None

    @staticmethod
    def _busy(directory: Path, inside: Path | None = None) -> RunDirBusyError:
        where = f"{inside} is inside {directory}, which" if inside else f"{directory}"
        return RunDirBusyError(
            f"{where} is in use by another fnlearn process ({_holder(directory / LOCK_NAME)}). "
            "Wait for it to finish (or stop it), or write to another --out."
        )

    def discard(self, run_dir: Path, untouched: bool) -> None:
        """Remove what this command put into ``run_dir`` before its first record (``untouched``),
        then every folder this command made that is left empty, innermost first."""
        run_dir = run_dir.absolute()
        self.unlock(run_dir)
        if not self.writer:
            return
        if untouched and run_dir.is_dir():
            for name in RUN_FILES:
                (run_dir / name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                (run_dir / "checkpoints").rmdir()
        for path in sorted(self.created, key=lambda p: len(p.parts), reverse=True):
            if path == run_dir or run_dir in path.parents or path in run_dir.parents:
                with contextlib.suppress(OSError):  # not empty: keep it
                    path.rmdir()
                    self.created.remove(path)


def output_directory(claim: Claim, given: str | None, default: Path, resume: bool) -> Path:
    """The run directory of a command, claimed: ``--out`` as given (it must exist for ``--resume``
    and be free otherwise), else ``default`` or the first free ``default-2``, ``-3``, ..."""
    if resume:
        out = check_resumable(Path(given) if given else default)
        claim.lock(out)
        return out
    if given is not None:
        out = Path(given)
        if out.exists() and not out.is_dir():
            raise FnlearnError(
                f"--out {given}: is a file, not a folder. Choose a folder path for the run directory."
            )
        if is_taken(out):
            _refuse_taken(given, out)
        claim.lock(out)
        return out
    candidate, n = default, 1
    while True:
        if not is_taken(candidate):
            with contextlib.suppress(RunDirBusyError):
                claim.lock(candidate)
                if not is_taken(candidate):  # nobody wrote into it before the lock was ours
                    return candidate
                claim.unlock(candidate)
        n += 1
        candidate = default.with_name(f"{default.name}-{n}")


def check_resumable(out: Path) -> Path:
    """``out``, an existing folder to resume, or one clear line."""
    if out.exists() and not out.is_dir():
        raise FnlearnError(f"--resume --out {out}: is a file, not a run directory. Pass the run's folder.")
    if not out.is_dir():
        raise FnlearnError(
            f"--resume: {str(out)!r} does not exist. Pass the run directory to continue with --out DIR."
        )
    return out


def _is_locked(directory: Path) -> bool:
    fd = _try_lock(directory / LOCK_NAME, create=False)
    if fd is not None:
        os.close(fd)
        return False
    return (directory / LOCK_NAME).exists()


def _refuse_taken(given: str, out: Path) -> None:
    if _is_locked(out):
        raise RunDirBusyError(
            f"--out {given}: is in use by another fnlearn process ({_holder(out / LOCK_NAME)}). "
            "Wait for it to finish, or choose another --out."
        )
    raise FnlearnError(
        f"--out {given}: the directory is not empty. Pass --resume to continue the run in it, or choose another --out."
    )


def write_config(run_dir: Path, built) -> None:
    """``RUN/config.toml``: the resolved config of one seed, with a header naming it, atomically;
    for sequence data also ``RUN/vocab.json``: the tokens' text and the model's sequence length,
    what ``fnlearn sample`` needs to encode a prompt and decode the output."""
    config = built.config
    header = f"The resolved config of run {config.name!r}, seed {config.training.seeds[0]}, written by fnlearn train."
    write_text(run_dir / "config.toml", dumps(config, header=header))
    train = built.splits.train
    if train.vocab is not None:
        write_json(run_dir / "vocab.json", {"vocab": list(train.vocab), "max_len": int(train.x.shape[1])})


def write_json(path: Path, value: dict) -> None:
    """``value`` as indented JSON (numpy scalars as floats), atomically."""
    write_text(path, json.dumps(value, indent=2, default=float) + "\n")
