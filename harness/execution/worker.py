"""What a worker process runs: rebuild the plan and benchmark once, then run configurations.

Workers never open the store: they return a :class:`ConfigOutcome` (the row and the
predictions for the cache) and the driver, the one writer, saves it. Adapters and training
folders are written under ``--out/runs/``, which multi-node runs must put on shared storage.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from harness.benchmarks import load_benchmark
from harness.components import Metric
from harness.data.benchmark import Benchmark
from harness.evaluation.generate import GenerationConfig
from harness.execution.configuration import (
    NullTask,
    predict_slice,
    prediction_key,
    run_configuration,
    train_or_load,
)
from harness.execution.jobs import (
    CacheEntry,
    ConfigJob,
    ConfigOutcome,
    ShardJob,
    ShardOutcome,
    WorkerEvent,
)
from harness.model.loading import model_hash
from harness.model.prompts import eval_prompt
from harness.plan import PlannedConfig, make_plan
from harness.spec import BenchSpec


@dataclass(frozen=True)
class WorkerContext:
    bench: Benchmark
    prompt: str
    generation: GenerationConfig
    planned: dict[str, PlannedConfig]
    base_hash: str
    metrics: tuple[Metric, ...] = ()


_CONTEXT: tuple[BenchSpec, WorkerContext] | None = None


def worker_context(spec: BenchSpec) -> WorkerContext:
    """The plan and benchmark of ``spec``, built once per worker process."""
    global _CONTEXT
    if _CONTEXT is not None and _CONTEXT[0] == spec:
        return _CONTEXT[1]
    from harness.plugins import make_registry

    # the driver created --out (and may have saved results) before any worker started
    plan = make_plan(replace(spec, resume=True), make_registry())
    bench = load_benchmark(spec.benchmark)
    context = WorkerContext(
        bench=bench,
        prompt=eval_prompt(bench.classes),
        generation=plan.generation,
        planned={p.config.id: p for p in plan.configs},
        base_hash=model_hash(spec.model),
        metrics=tuple(plan.metrics),
    )
    _CONTEXT = (spec, context)
    return context


class RecordingCache:
    """A worker's prediction cache: nothing cached here; what it computes goes back."""

    def __init__(self) -> None:
        self.entries: list[CacheEntry] = []

    def get_cached_predictions(
        self, cache_key: str, sample_ids: Sequence[str] | None = None
    ) -> list[str] | None:
        return None

    def put_cached_predictions(
        self, cache_key: str, answers: Sequence[str], sample_ids: Sequence[str] | None = None
    ) -> None:
        self.entries.append(CacheEntry(cache_key, list(answers), list(sample_ids or [])))


class EventProgress:
    """A progress sink that reports each stage a worker starts through ``emit``."""

    def __init__(self, worker: str, emit: Callable[[WorkerEvent], None]) -> None:
        self.worker, self.emit = worker, emit

    def start(self, description: str, total: int) -> NullTask:
        config_id, _, stage = description.partition("] ")
        self.emit(WorkerEvent(self.worker, config_id.lstrip("["), stage or description, total))
        return NullTask()

    def note(self, message: str) -> None:
        pass


def run_job(
    spec: BenchSpec,
    job: ConfigJob,
    out: Path,
    worker: str,
    emit: Callable[[WorkerEvent], None],
    gpus: tuple[str, ...] = (),
) -> ConfigOutcome:
    """Run one configuration; any failure becomes the outcome's error, never an exception."""
    try:
        context = worker_context(spec)
        cache = RecordingCache()
        row = run_configuration(
            spec,
            context.planned[job.config_id],
            context.bench,
            context.prompt,
            context.generation,
            out,
            EventProgress(worker, emit),
            cache,
            context.base_hash,
            context.metrics,
        )
    except Exception as exc:  # a failed configuration is a result: the others go on
        detail = traceback.format_exc(limit=-3)
        return ConfigOutcome(job, error=f"{type(exc).__name__}: {exc}\n{detail}", worker=worker)
    return ConfigOutcome(job, row=row, worker=worker, gpus=gpus, cache=tuple(cache.entries))


def run_shard(
    spec: BenchSpec, job: ShardJob, out: Path, worker: str, emit: Callable[[WorkerEvent], None]
) -> ShardOutcome:
    """Load a configuration's model (one that does not train) and answer its test slice."""
    try:
        ctx = worker_context(spec)
        planned = ctx.planned[job.config_id]
        progress = EventProgress(worker, emit)
        trained = train_or_load(
            spec, planned, ctx.bench, ctx.prompt, ctx.generation, out, [], progress
        )
        key, _, _ = prediction_key(trained, ctx.bench, ctx.prompt, ctx.generation, ctx.base_hash)
        emit(WorkerEvent(worker, job.config_id, f"evaluate {job.start}:{job.stop}"))
        answers = predict_slice(trained, ctx.bench, ctx.prompt, ctx.generation, job.start, job.stop)
    except Exception as exc:
        return ShardOutcome(job, error=f"{type(exc).__name__}: {exc}", worker=worker)
    return ShardOutcome(job, key, answers, worker=worker)
