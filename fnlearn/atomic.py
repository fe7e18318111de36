"""Files that are either wholly there or not changed: write to a temporary file, then rename.

``os.replace`` is atomic on POSIX: a reader (or a process killed mid-write, or a full disk) sees
the old file or the new one, never half of one. The temporary file sits in the target's folder
(a rename cannot cross file systems), is flushed to disk before the rename, and is removed when
anything fails, so a failed write leaves no stray file behind.
"""

from __future__ import annotations

import contextlib
import os
import re
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
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(error, OSError) and error.errno is not None and not error.filename:
            raise type(error)(error.errno, error.strerror, str(path)) from None
        raise
    return path


_OS_ERROR_CODE = re.compile(r"os_error_code='?(\d+)")
_LOCAL_FILE = re.compile(r'local file "([^"]+)"')


def os_failure(error: BaseException) -> OSError | None:
    """The ``OSError`` behind ``error``, or None. Libraries wrap a full disk in their own types:
    the nearest ``OSError`` in the ``__cause__`` / ``__context__`` chain, else an error number in
    the message as TensorStore (under orbax) writes it: ``... [os_error_code='28']``."""
    seen = set()
    current = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    code = _OS_ERROR_CODE.search(str(error))
    if code is None:
        return None
    number = int(code[1])
    where = _LOCAL_FILE.search(str(error))
    return OSError(number, os.strerror(number), where[1] if where else None)
