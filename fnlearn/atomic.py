"""Files that are either wholly there or not changed: write to a temporary file, then rename.

``os.replace`` is atomic on POSIX: a reader (or a process killed mid-write, or a full disk) sees
the old file or the new one, never half of one. The temporary file sits in the target's folder
(a rename cannot cross file systems), is flushed to disk before the rename, and is removed when
anything fails, so a failed write leaves no stray file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["write_text", "os_failure"]


def _umask() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def write_text(path: str | Path, text: str) -> Path:
    """Replace ``path`` by a file holding ``text`` (UTF-8), atomically; the folder must exist.
    The file gets the permissions a plain ``open(path, "w")`` would give it (0666 less the umask)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def os_failure(error: BaseException) -> OSError | None:
    """The ``OSError`` that caused ``error`` (itself, or the nearest one in its ``__cause__`` /
    ``__context__`` chain), or None: libraries such as orbax wrap a full disk in their own types."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None
