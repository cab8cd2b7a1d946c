"""Many hosts: each configuration is a Ray task asking for ``gpus_per_config`` GPUs.

``address`` connects to a running cluster (``ray start --head`` / Ray on SLURM); without it a
local Ray instance starts (and stops when the grid is done). Ray sets each task's
``CUDA_VISIBLE_DEVICES`` to the GPUs it granted. ``--out`` must be on storage every node sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.core.errors import OptionError
from harness.execution.jobs import ConfigJob, ConfigOutcome, WorkerEvent
from harness.spec import BenchSpec

MISSING = (
    "--executor ray: Ray is not installed; install the extra with "
    "pip install 'cxr-harness[ray]' (or use --executor local on one host)"
)


def check_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        raise OptionError(MISSING) from exc


def default_gpus_per_config() -> float:
    import torch

    return 1.0 if torch.cuda.is_available() else 0.0


def _task(spec: BenchSpec, job: ConfigJob, out: Path, events: Any) -> ConfigOutcome:
    import os

    import ray

    from harness.execution.worker import run_job

    gpus = tuple(str(g) for g in ray.get_gpu_ids())
    name = f"{ray.util.get_node_ip_address()}:{os.getpid()}"
    events.put_nowait(WorkerEvent(name, job.config_id, "start", extra={"pid": os.getpid()}))
    return run_job(spec, job, out, name, events.put_nowait, gpus)


def run_ray(
    spec: BenchSpec,
    out: Path,
    jobs: list[ConfigJob],
    on_event: Callable[[WorkerEvent], None],
) -> Iterator[ConfigOutcome]:
    """Yield each job's outcome as its task finishes; a crashed task is a failed outcome."""
    check_ray()
    import ray
    from ray.util.queue import Queue

    started = not ray.is_initialized()
    if started:
        ray.init(address=spec.address, include_dashboard=False, log_to_driver=False)
    gpus = spec.gpus_per_config
    if gpus is None:
        gpus = default_gpus_per_config()
    try:
        events = Queue()
        remote = ray.remote(_task).options(num_gpus=gpus, num_cpus=1, max_retries=0)
        pending = {remote.remote(spec, job, out.resolve(), events): job for job in jobs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for event in _drain(events):
                on_event(event)
            for ref in done:
                job = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # the worker died (killed, out of memory, node lost)
                    outcome = ConfigOutcome(job, error=f"{type(exc).__name__}: {exc}")
                yield outcome
        for event in _drain(events):
            on_event(event)
    finally:
        if started:
            ray.shutdown()


def _drain(events: Any) -> list[WorkerEvent]:
    try:
        return list(events.get_nowait_batch(events.qsize()))
    except Exception:  # an empty or closing queue
        return []
