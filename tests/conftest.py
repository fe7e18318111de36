"""Session set-up shared by every test module: a persistent XLA compilation cache for the session.

XLA compilation is most of this suite's time, and many tests build programs that are the same
computation on the same shapes from different Python objects (a fresh ``mlp([6, 16, 3])`` and
``adam(1e-2)`` per test, every in-process ``fnlearn train`` tracing a fresh model, the same run
trained again in a subprocess to be killed and resumed), which jax's in-memory cache cannot see as
equal. JAX's persistent compilation cache keys on the compiled module itself, so with it on each
distinct program is compiled once and loaded from the cache afterwards: the same executable, so
every result is unchanged.

The session also compiles with LLVM's optimisations off (``--xla_backend_optimization_level=0``,
added to ``XLA_FLAGS`` before any backend starts, so xdist workers, notebook kernels and the
subprocesses tests start inherit it): compilation is most of the time of these small programs, and
this cuts the suite's CPU time by about a fifth. The programs compute the same functions; every
comparison in the suite is between two runs under the same flags, or against a reference within a
tolerance. A user's run compiles with XLA's defaults.

The cache lives in a temporary directory made by the session's first process and deleted when it
ends; xdist workers and the subprocesses tests start inherit it through the environment. fnlearn's
commands, run in-process or as subprocesses, find it in ``JAX_COMPILATION_CACHE_DIR`` and use it
instead of the user's ~/.cache/fnlearn/jax (``fnlearn.compile_cache``: an explicit folder wins). Two
processes writing one entry at once write the same bytes; one reading an entry another is still
writing fails to decompress it, which jax reports as a warning before compiling the program itself.
"""

import os
import shutil
import tempfile

_FAST_COMPILE = "--xla_backend_optimization_level=0"
if _FAST_COMPILE not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FAST_COMPILE}".strip()

import jax  # noqa: E402 - after XLA_FLAGS, which the backend reads when it starts

_CACHE_DIR = None
_SETTINGS = {
    "jax_compilation_cache_dir": None,  # filled in by pytest_configure
    "jax_persistent_cache_min_compile_time_secs": 0.0,  # cache every program, however quick
    "jax_persistent_cache_min_entry_size_bytes": 0,
}


_SHARED = "FNLEARN_TESTS_XLA_CACHE"  # the session's cache directory, for xdist workers


def pytest_configure(config):
    global _CACHE_DIR
    directory = os.environ.get(_SHARED)  # set: this is an xdist worker of a session that made it
    if directory is None:
        directory = _CACHE_DIR = tempfile.mkdtemp(prefix="fnlearn-tests-xla-cache-")
        os.chmod(directory, 0o777)  # some tests drop to an unprivileged user to meet real permission errors
        os.environ[_SHARED] = directory
    for name, value in (_SETTINGS | {"jax_compilation_cache_dir": directory}).items():
        jax.config.update(name, value)
        os.environ[name.upper()] = str(value)  # for the subprocesses tests start


def pytest_unconfigure(config):
    if _CACHE_DIR is not None:  # the process that made it (the xdist controller, or the only one)
        shutil.rmtree(_CACHE_DIR, ignore_errors=True)
