"""Where configurations run: in process (serial), one worker per GPU of a host (local), or as
Ray tasks on a cluster (ray). Only the driver writes the store; workers return results."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from harness.core.errors import OptionError
from harness.execution.jobs import EXECUTORS, ConfigJob, ConfigOutcome, WorkerEvent
from harness.spec import BenchSpec


def check_executor(spec: BenchSpec) -> None:
    """Refuse an unknown executor, or ``ray`` without Ray installed, before any work."""
    if spec.executor not in EXECUTORS:
        raise OptionError(f"--executor {spec.executor!r}: expected one of {', '.join(EXECUTORS)}")
    if spec.workers is not None and spec.executor != "local":
        raise OptionError("--workers: only for --executor local")
    if spec.address is not None and spec.executor != "ray":
        raise OptionError("--address: only for --executor ray")
    if spec.gpus_per_config is not None and spec.executor != "ray":
        raise OptionError("--gpus-per-config: only for --executor ray")
    if spec.executor == "ray":
        from harness.execution.ray_executor import check_ray

        check_ray()


def run_parallel(
    spec: BenchSpec, out: Path, jobs: list[ConfigJob], on_event: Callable[[WorkerEvent], None]
) -> Iterator[ConfigOutcome]:
    """Outcomes of ``jobs`` from the spec's (non-serial) executor, in finishing order."""
    if spec.executor == "local":
        from harness.execution.local import run_local

        return run_local(spec, out.resolve(), jobs, on_event)
    from harness.execution.ray_executor import run_ray

    return run_ray(spec, out.resolve(), jobs, on_event)


__all__ = ["ConfigJob", "ConfigOutcome", "WorkerEvent", "check_executor", "run_parallel"]
