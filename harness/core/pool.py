"""A chunked process pool that keeps order and reports progress: ``parallel_map``."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

from harness.core.errors import OptionError

T = TypeVar("T")
R = TypeVar("R")

# progress(stage, done, total): how library code reports long steps; the CLI renders it.
ProgressFn = Callable[[str, int, int], None]

T = TypeVar("T")
R = TypeVar("R")


def resolve_workers(workers: int | None) -> int:
    if workers is None:
        return max(1, os.cpu_count() or 1)
    if workers < 1:
        raise OptionError(f"--workers must be at least 1, got {workers}")
    return workers


_SHARED: Sequence[Any] = ()


def _run_shared(fn: Callable[[Any], Any], start: int, stop: int) -> list[Any]:
    return [fn(x) for x in _SHARED[start:stop]]


def _run_items(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    return [fn(x) for x in items]


def parallel_map(
    fn: Callable[[T], R],
    items: Sequence[T],
    workers: int | None = None,
    progress: ProgressFn | None = None,
    stage: str = "working",
    chunksize: int | None = None,
) -> list[R]:
    """``[fn(x) for x in items]`` over a process pool, in order, reporting progress per chunk.

    ``fn`` must be a picklable module-level function. With the ``fork`` start method the items
    are inherited by the workers rather than pickled; only results travel back.
    ``workers=1`` runs in this process (no pool).
    """
    n = len(items)
    workers = min(resolve_workers(workers), max(1, n))
    size = chunksize or max(1, min(64, n // (workers * 8) or 1))
    bounds = [(a, min(a + size, n)) for a in range(0, n, size)]
    results: list[Any] = [None] * n
    done = 0
    if progress:
        progress(stage, 0, n)
    if workers <= 1:
        for a, b in bounds:
            results[a:b] = _run_items(fn, items[a:b])
            done += b - a
            if progress:
                progress(stage, done, n)
        return results
    global _SHARED
    fork = "fork" in mp.get_all_start_methods()
    ctx = mp.get_context("fork" if fork else None)
    _SHARED = items
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {
                (
                    pool.submit(_run_shared, fn, a, b)
                    if fork
                    else pool.submit(_run_items, fn, items[a:b])
                ): (a, b)
                for a, b in bounds
            }
            for fut in as_completed(futures):
                a, b = futures[fut]
                results[a:b] = fut.result()
                done += b - a
                if progress:
                    progress(stage, done, n)
    finally:
        _SHARED = ()
    return results
