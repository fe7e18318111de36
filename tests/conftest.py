"""Session set-up shared by every test module: a persistent XLA compilation cache per test process.

XLA compilation is most of this suite's time, and many tests build programs that are the same
computation on the same shapes from different Python objects (a fresh ``mlp([6, 16, 3])`` and
``adam(1e-2)`` per test, every in-process ``fnlearn train`` tracing a fresh model, the same run
trained again in a subprocess to be killed and resumed), which jax's in-memory cache cannot see as
equal. JAX's persistent compilation cache keys on the compiled module itself, so with it on each
distinct program is compiled once and loaded from the cache afterwards: the same executable, so
every result is unchanged.

The cache lives in a temporary directory of this test process (one per xdist worker), which the
subprocesses it starts inherit through the environment (it waits for them, so they do not write
to it at the same time), and is deleted when the session ends. It is world-writable because some
tests drop to an unprivileged user to meet real permission errors.
"""

import os
import shutil
import tempfile

import jax

_CACHE_DIR = None
_SETTINGS = {
    "jax_compilation_cache_dir": None,  # filled in by pytest_configure
    "jax_persistent_cache_min_compile_time_secs": 0.0,  # cache every program, however quick
    "jax_persistent_cache_min_entry_size_bytes": 0,
}


def pytest_configure(config):
    global _CACHE_DIR
    _CACHE_DIR = tempfile.mkdtemp(prefix="fnlearn-tests-xla-cache-")
    os.chmod(_CACHE_DIR, 0o777)
    for name, value in (_SETTINGS | {"jax_compilation_cache_dir": _CACHE_DIR}).items():
        jax.config.update(name, value)
        os.environ[name.upper()] = str(value)  # for the subprocesses tests start


def pytest_unconfigure(config):
    if _CACHE_DIR is not None:
        shutil.rmtree(_CACHE_DIR, ignore_errors=True)
