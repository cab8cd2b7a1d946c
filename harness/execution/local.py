"""One host, many workers: one process per visible GPU (or ``--workers N`` on CPU).

Processes start with the ``spawn`` method, each with its own ``CUDA_VISIBLE_DEVICES`` and
``cores // workers`` torch threads. Jobs come from one shared queue, so a worker that dies
(killed, out of memory) fails only the configuration it held; the others keep taking jobs.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.execution.jobs import (
    ConfigOutcome,
    ShardJob,
    ShardOutcome,
    WorkerEvent,
    shard_bounds,
)
from harness.spec import BenchSpec


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def worker_devices(workers: int | None, gpus: list[str]) -> list[str | None]:
    """Each worker's ``CUDA_VISIBLE_DEVICES`` (None: CPU), one worker per GPU by default."""
    if gpus:
        n = workers or len(gpus)
        return [gpus[i % len(gpus)] for i in range(n)]
    return [None] * (workers or 1)


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _worker_main(
    name: str, threads: int, spec: BenchSpec, out: Path, jobs: Any, results: Any
) -> None:
    import torch

    from harness.execution.worker import run_job, run_shard

    torch.set_num_threads(threads)
    gpus = tuple(d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d)
    while (job := jobs.get()) is not None:
        results.put(("start", name, job.index, os.getpid()))
        emit = lambda e: results.put(("stage", e))  # noqa: E731
        if isinstance(job, ShardJob):
            outcome: Any = run_shard(spec, job, out, name, emit)
        else:
            outcome = run_job(spec, job, out, name, emit, gpus)
        results.put(("done", name, outcome))


def run_local(
    spec: BenchSpec,
    out: Path,
    jobs: list[Any],
    on_event: Callable[[WorkerEvent], None],
) -> Iterator[Any]:
    """Yield each job's outcome as it finishes (in finishing order): a ConfigOutcome for a
    ConfigJob, a ShardOutcome for a ShardJob."""
    devices = worker_devices(spec.workers, visible_gpus())
    threads = max(1, (os.cpu_count() or 1) // len(devices))
    ctx = mp.get_context("spawn")
    job_q, result_q = ctx.Queue(), ctx.Queue()
    for job in jobs:
        job_q.put(job)
    procs: dict[str, Any] = {}
    for i, device in enumerate(devices):
        name = f"w{i}"
        env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        env["CUDA_VISIBLE_DEVICES"] = device if device is not None else ""
        with _environ(env):
            p = ctx.Process(
                target=_worker_main,
                args=(name, threads, spec, out, job_q, result_q),
                name=f"harness-{name}",
                daemon=True,
            )
            p.start()
        procs[name] = p
        job_q.put(None)  # one stop sign per worker, after every job
    by_index = {j.index: j for j in jobs}
    held: dict[str, Any] = {}
    left = set(by_index)
    try:
        while left:
            try:
                message = result_q.get(timeout=0.5)
            except queue.Empty:
                yield from _lost(procs, held, left, by_index)
                continue
            if message[0] == "start":
                _, name, index, pid = message
                held[name] = by_index[index]
                on_event(WorkerEvent(name, by_index[index].config_id, "start", extra={"pid": pid}))
            elif message[0] == "stage":
                on_event(message[1])
            else:
                _, name, outcome = message
                held.pop(name, None)
                left.discard(outcome.job.index)
                yield outcome
    finally:
        for p in procs.values():
            if p.is_alive():
                p.terminate()
            p.join(timeout=5)


def _lost(
    procs: dict[str, Any], held: dict[str, Any], left: set[int], by_index: dict
) -> Iterator[Any]:
    """Fail the configuration a dead worker held; everything left once no worker lives."""
    for name, p in procs.items():
        if not p.is_alive() and name in held:
            job = held.pop(name)
            left.discard(job.index)
            error = f"worker {name} (pid {p.pid}) exited with code {p.exitcode} while running it"
            yield _failed(job, error, name)
    if not any(p.is_alive() for p in procs.values()):
        for index in sorted(left):
            yield _failed(by_index[index], "no worker process left to run it", "driver")
        left.clear()


def _failed(job: Any, error: str, worker: str) -> Any:
    if isinstance(job, ShardJob):
        return ShardOutcome(job, error=error, worker=worker)
    return ConfigOutcome(job, error=error, worker=worker)


def evaluate_sharded(
    spec: BenchSpec, out: Path, config_id: str, n_test: int, on_event: Callable[[WorkerEvent], None]
) -> tuple[str, list[str]]:
    """Data-parallel evaluation of one configuration that does not train: every worker answers
    one contiguous slice of the test split; the answers are merged in test order.

    Returns (prediction cache key, answers); raises ExecutionError if a slice failed.
    """
    from harness.core.errors import ExecutionError

    n = len(worker_devices(spec.workers, visible_gpus()))
    jobs = [ShardJob(i, config_id, a, b) for i, (a, b) in enumerate(shard_bounds(n_test, n))]
    got = sorted(run_local(spec, out.resolve(), jobs, on_event), key=lambda o: o.job.start)
    bad = [o.error for o in got if not o.ok]
    if bad or len({o.cache_key for o in got}) != 1:
        raise ExecutionError(
            f"[{config_id}] data-parallel evaluation failed: {bad or 'keys differ'}"
        )
    return got[0].cache_key, [a for o in got for a in o.answers]
