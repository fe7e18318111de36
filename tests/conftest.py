"""Test-session settings: one persistent XLA compilation cache for this run of the suite.

Many tests build the same small programs again (every in-process ``fnlearn train`` traces a fresh
model); with the cache, XLA compiles each distinct program once per session and later builds load
it. The folder is new for every session, so no result can come from an older build. Subprocesses
inherit it through the environment. It is world-writable because some tests drop to an unprivileged
user to meet real permission errors."""

import os
import tempfile

_cache = tempfile.mkdtemp(prefix="fnlearn-test-xla-cache-")
os.chmod(_cache, 0o777)
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _cache)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
