"""Which allocator Arrow's memory comes from."""

from __future__ import annotations

import gc
import os

import pyarrow as pa


def use_jemalloc() -> None:
    """Arrow's memory from jemalloc, not the default mimalloc, unless the environment
    names a pool (``ARROW_DEFAULT_MEMORY_POOL``); where Arrow has no jemalloc, its
    default stays.

    The engine hands each task's memory back to the system and the next task takes it
    anew; mimalloc took fresh memory far more slowly: at 10M lines, a run took 37.2 s
    (10.3 s of it system CPU) against 52.2 s (14.4 s), and a million lines' valid rows
    were filtered in 0.30 s against 0.85 s the first time (0.13 s either way after).

    This sets pyarrow's pool, which reaches what pyarrow is handed; Arrow's own work
    (group-bys, readers) takes Arrow's default, which on Linux the package names in
    the environment before pyarrow loads (see ``pipeline/__init__.py``). Where pyarrow
    was loaded first (a script that imports it before this package), the environment
    names jemalloc too late for Arrow's default, so pyarrow's pool is set here all
    the same: a million lines' valid rows were filtered in 0.32 s against 0.42-1.29 s
    from mimalloc in such a process.
    """
    named = os.environ.get("ARROW_DEFAULT_MEMORY_POOL")
    if named and named != "jemalloc":  # the environment's own choice
        return
    if pa.default_memory_pool().backend_name == "jemalloc":
        return
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:
        pass


def prepare_process() -> None:
    """Arrow's memory from jemalloc (see :func:`use_jemalloc`), and every object alive
    now (the imported modules: pandas, pandera, pyarrow) moved out of the garbage
    collector's sight for good (``gc.freeze``): a full collection otherwise walks them
    all again, some hundred times in a worker over a million lines (0.11 s of its CPU
    then, 0.035 s after), and once more as the interpreter shuts down."""
    use_jemalloc()
    gc.collect()
    gc.freeze()
