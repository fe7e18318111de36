"""jax's persistent compilation cache for the commands that compile, and the settings a run logs.

Every ``fnlearn`` command that trains or predicts compiles its programs once for good: the
executables XLA builds are stored on disk, and a later run that builds the same program loads it
instead of compiling it again.

- **Where**: ``$JAX_COMPILATION_CACHE_DIR`` when it is set (jax's own variable: an explicit choice
  wins), else ``$XDG_CACHE_HOME/fnlearn/jax`` (``~/.cache/fnlearn/jax`` without ``XDG_CACHE_HOME``),
  made readable by its owner only (jax runs what it loads from there).
- **Off**: ``--no-compile-cache``, or ``FNLEARN_COMPILE_CACHE=0`` in the environment.
- **An unwritable folder**: one warning line, and the run goes on without the cache.
- Every program is cached however quick its compilation (jax's own default skips programs that
  compile in under a second: most of a small run's), unless
  ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` says otherwise.

Why a stale cache cannot change results: jax keys every entry on the compiled program itself
(its StableHLO), the jaxlib version, the backend and its version, ``XLA_FLAGS``, the compile
options and the devices. Anything that could change the machine code changes the key, and a new
key is compiled afresh; an entry found is the very executable XLA built for that key. ``settings``
writes all of it, with where the cache was and whether it was on, into each run's summary.json.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
import warnings
from pathlib import Path

import jax

from fnlearn.errors import FnlearnWarning

__all__ = ["SWITCH", "CacheChoice", "choose", "configured", "default_directory", "settings"]

SWITCH = "FNLEARN_COMPILE_CACHE"  # "0" (or "false", "no", "off") turns the cache off
_OFF = ("0", "false", "no", "off")
_OPTIONS = (
    "jax_enable_compilation_cache",
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
)


@dataclasses.dataclass(frozen=True)
class CacheChoice:
    """Whether the cache is on, in which folder, and why (one phrase, for the run's log)."""

    enabled: bool
    directory: str | None
    reason: str


def default_directory(environ=None) -> Path:
    """``$XDG_CACHE_HOME/fnlearn/jax``, or ``~/.cache/fnlearn/jax`` (XDG's default) without it."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME") or ""
    root = Path(base) if Path(base).is_absolute() else Path.home() / ".cache"  # XDG: relative = unset
    return root / "fnlearn" / "jax"


def choose(enabled: bool = True, environ=None) -> CacheChoice:
    """The cache a command uses: off when ``enabled`` is False (``--no-compile-cache``) or the
    environment says ``FNLEARN_COMPILE_CACHE=0``; else in ``JAX_COMPILATION_CACHE_DIR`` or the
    default folder, once it is known to be writable (else off, with one warning)."""
    environ = os.environ if environ is None else environ
    if not enabled:
        return CacheChoice(False, None, "turned off by --no-compile-cache")
    if environ.get(SWITCH, "").strip().lower() in _OFF:
        return CacheChoice(False, None, f"turned off by {SWITCH}={environ[SWITCH]}")
    explicit = environ.get("JAX_COMPILATION_CACHE_DIR")
    directory = Path(explicit) if explicit else default_directory(environ)
    reason = "JAX_COMPILATION_CACHE_DIR" if explicit else "fnlearn's default (XDG cache folder)"
    problem = _unwritable(directory)
    if problem is not None:
        warnings.warn(
            FnlearnWarning(
                f"compilation cache {directory}: {problem}; running without it (every program is "
                f"compiled). Set JAX_COMPILATION_CACHE_DIR to a writable folder, or {SWITCH}=0."
            ),
            stacklevel=2,
        )
        return CacheChoice(False, str(directory), f"{directory} is not writable: {problem}")
    return CacheChoice(True, str(directory), reason)


def _unwritable(directory: Path) -> str | None:
    """None if a file can be made in ``directory`` (made, owner-only, if missing), else why not."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".fnlearn-probe-"):
            pass
    except OSError as error:
        return error.strerror or type(error).__name__
    return None


@contextlib.contextmanager
def configured(enabled: bool = True, environ=None):
    """While the block runs, jax compiles with the cache of ``choose(enabled)``; yields that
    choice. jax's settings are restored afterwards, so calling ``fnlearn.cli.main`` from Python
    leaves the caller's own cache as it was."""
    environ = os.environ if environ is None else environ
    choice = choose(enabled, environ)
    saved = {name: getattr(jax.config, name) for name in _OPTIONS}
    wanted = {"jax_enable_compilation_cache": choice.enabled}
    if choice.enabled:
        wanted["jax_compilation_cache_dir"] = choice.directory
        if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in environ:
            wanted["jax_persistent_cache_min_compile_time_secs"] = 0.0
    _apply(wanted)
    try:
        yield choice
    finally:
        _apply(saved)


def _apply(values: dict) -> None:
    """Set jax's options; jax sets its cache up once, at the first compilation, so when the folder
    or the switch changes it is told to set it up again."""
    changed = {name for name, value in values.items() if getattr(jax.config, name) != value}
    for name in changed:
        jax.config.update(name, values[name])
    if changed & {"jax_enable_compilation_cache", "jax_compilation_cache_dir"}:
        from jax.experimental.compilation_cache import compilation_cache  # noqa: PLC0415

        compilation_cache.reset_cache()


def settings() -> dict:
    """What decides the compiled code, for a run's log: versions, backend, devices, XLA_FLAGS,
    the numerics options, and the compilation cache (on or off, where)."""
    import jaxlib  # noqa: PLC0415

    devices = jax.devices()
    enabled = bool(jax.config.jax_enable_compilation_cache and jax.config.jax_compilation_cache_dir)
    return {
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "backend": jax.default_backend(),
        "platform_version": getattr(devices[0].client, "platform_version", None),
        "devices": [str(device) for device in devices],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "jax_enable_x64": bool(jax.config.jax_enable_x64),
        "jax_default_matmul_precision": jax.config.jax_default_matmul_precision,
        "cache": {
            "enabled": enabled,
            "directory": jax.config.jax_compilation_cache_dir if enabled else None,
            "min_compile_time_s": jax.config.jax_persistent_cache_min_compile_time_secs,
        },
    }
