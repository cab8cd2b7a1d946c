"""Runs a bench: freeze the benchmark, then train + evaluate each configuration independently."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.benchmarks import load_benchmark
from harness.core.atomic import write_text_atomic
from harness.core.errors import ExecutionError, OptionError
from harness.evaluation.metrics import majority_baseline, same_class_reference
from harness.execution import (
    ConfigJob,
    ConfigOutcome,
    WorkerEvent,
    check_executor,
    run_parallel,
)
from harness.execution.configuration import (
    NullProgress,
    ProgressSink,
    Task,
    run_configuration,
)
from harness.execution.local import evaluate_sharded, visible_gpus, worker_devices
from harness.execution.progress import GridView
from harness.experiment import experiment_toml
from harness.exports import write_all
from harness.exports.html_images import benchmark_source, thumbnails
from harness.model.loading import ModelSpec, model_hash
from harness.model.prompts import eval_prompt, text_hash
from harness.model.shared_base import SharedBase
from harness.plan import (
    Plan,
    PlannedConfig,
    check_classes,
    make_plan,
    resume_keys,
)
from harness.registry import Registry
from harness.results.events import EVENTS, EventLog, LoggedProgress, where_stopped
from harness.results.provenance import git_commit, hardware, package_versions
from harness.results.store import STORE_NAME, ResultsStore
from harness.spec import BenchSpec


@dataclass
class BenchResult:
    out: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, Any] = field(default_factory=dict)


def default_out_dir(root: Path = Path("reports")) -> Path:
    """A new, not yet existing folder name under ``root`` (created only once work starts)."""
    import secrets

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    while True:
        path = root / f"bench-{stamp}-{secrets.token_hex(3)}"
        if not path.exists():
            return path


def run_bench(
    spec: BenchSpec,
    registry: Registry,
    progress: ProgressSink | None = None,
    plan: Plan | None = None,
) -> BenchResult:
    """Execute a plan (made here from ``spec`` when not given): every component is resolved
    once, before any work."""
    progress = progress or NullProgress()
    plan = plan or make_plan(spec, registry)
    check_executor(spec)
    out = spec.out or default_out_dir()
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _execute(spec, registry, progress, plan, out)
    except Exception:
        # a run that failed before its first result leaves nothing behind, so the same command
        # can simply be run again; a folder that existed before (--resume) is never removed
        if created and not _holds_results(out):
            shutil.rmtree(out, ignore_errors=True)
        raise


def _holds_results(out: Path) -> bool:
    if not (out / STORE_NAME).is_file():
        return False
    with ResultsStore.open(out) as store:
        return bool(store.finished_keys())


def _execute(
    spec: BenchSpec, registry: Registry, progress: ProgressSink, plan: Plan, out: Path
) -> BenchResult:
    stopped = where_stopped(out) if spec.resume else None
    events = EventLog(out / EVENTS)
    events.record("run_started", configurations=[p.config.id for p in plan.configs])
    progress = LoggedProgress(progress, events)
    if stopped:
        progress.note(f"resuming: {stopped}")
    t0 = time.perf_counter()
    bench = load_benchmark(spec.benchmark)
    progress.note(
        f"benchmark {bench.name} fingerprint {bench.fingerprint} "
        f"(train {len(bench.train)}, test {len(bench.test)}) in {time.perf_counter() - t0:.1f}s"
    )
    check_classes(plan, bench)  # e.g. a class the ontology lacks: fail before any work
    prompt = eval_prompt(bench.classes)
    gen = plan.generation
    result = BenchResult(out=out)
    base_hash = model_hash(spec.model)
    source = benchmark_source(spec.benchmark, registry.names("benchmark"))
    thumbs = thumbnails(bench.test)  # once: every report.html of this run embeds them
    result.provenance = {
        "benchmark": {**bench.summary(), "source": source},
        "caveats": bench.caveats,
        "model": {**spec.model.resolved(), "weights_hash": base_hash},
        "prompt": prompt,
        "prompt_hash": text_hash(prompt),
        "generation": gen.as_dict(),
        "packages": package_versions(),
        "components": registry.provenance([p.config for p in plan.configs]),
        "git_commit": git_commit(),
        "hardware": hardware(),
        "seeds": list(spec.seeds),
        "metrics": plan.metric_table(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    result.baselines = {
        "majority": majority_baseline(
            [s.label for s in bench.train], [s.label for s in bench.test], bench.classes
        ),
        "same_class_reference": same_class_reference(bench),
    }
    with ResultsStore.open(out) as store:
        if spec.resume:  # keep the provenance the run started with
            result.provenance = store.load_provenance() or result.provenance
        keys = resume_keys(plan, bench.fingerprint, text_hash(prompt))
        _check_resumable(store, keys.values(), out)
        run_id = store.save_run(result.provenance, result.baselines)
        write_text_atomic(out / "experiment.toml", experiment_toml(plan))
        order = {keys[p.config]: i for i, p in enumerate(plan.configs)}
        jobs: list[ConfigJob] = []
        for i, planned in enumerate(plan.configs):
            key = keys[planned.config]
            if spec.resume and store.has_config(key):
                progress.note(f"[{planned.config.id}] finished earlier: skipped (--resume)")
                continue
            jobs.append(ConfigJob(i, planned.config.id, key))

        def save(row: dict[str, Any], key: str) -> None:
            row["config_key"] = key
            store.save_config_result(row, run_id)  # one transaction: all of the row or none
            result.rows = _in_plan_order(store.load_rows(), order)
            write_all(
                out, result.rows, result.provenance, result.baselines, plots=False, images=thumbs
            )

        failed: list[ConfigOutcome] = []
        if spec.executor == "serial":
            shared = SharedBase()  # one compiled decoder for the base row and every adapter
            for job in jobs:
                planned = plan.configs[job.index]
                args = (bench, prompt, gen, out, progress, store, base_hash, plan.metrics)
                save(run_configuration(spec, planned, *args, shared=shared), job.key)
            shared.model = None
        else:
            view = GridView(len(jobs))
            progress.note(f"{spec.executor} executor: {len(jobs)} configurations")

            def on_event(e: WorkerEvent) -> None:
                events.record(
                    "worker_stage", worker=e.worker, config=e.config_id, stage=e.stage, **e.extra
                )
                progress.note(view.event(e))

            sharded: set[int] = set()
            for job in [j for j in jobs if _shardable(spec, plan.configs[j.index])]:
                # data-parallel evaluation: every worker answers a slice of the test split,
                # then the driver scores the merged answers (read back from the cache)
                key, answers = evaluate_sharded(spec, out, job.config_id, len(bench.test), on_event)
                store.put_cached_predictions(key, answers, [s.id for s in bench.test])
                planned = plan.configs[job.index]
                args = (bench, prompt, gen, out, progress, store, base_hash, plan.metrics)
                save(run_configuration(spec, planned, *args), job.key)
                progress.note(view.finished("driver", True))
                sharded.add(job.index)
            grid = [j for j in jobs if j.index not in sharded]
            for outcome in run_parallel(spec, out, grid, on_event):
                events.record(
                    "config_finished" if outcome.ok else "config_failed",
                    config=outcome.job.config_id,
                    worker=outcome.worker,
                    gpus=list(outcome.gpus),
                    error=outcome.error,
                )
                if outcome.ok and outcome.row is not None:
                    for c in outcome.cache:
                        store.put_cached_predictions(c.key, c.answers, c.sample_ids)
                    save(outcome.row, outcome.job.key)
                else:
                    failed.append(outcome)
                    error = (outcome.error or "").splitlines()[0]
                    progress.note(f"[{outcome.job.config_id}] failed: {error}")
                progress.note(view.finished(outcome.worker, outcome.ok))
        result.rows = _in_plan_order(store.load_rows(), order)
    task = progress.start("render reports", 1)
    write_all(out, result.rows, result.provenance, result.baselines, images=thumbs)
    task.finish()
    if failed:
        events.record("run_failed", failed=[o.job.config_id for o in failed])
        names = ", ".join(o.job.config_id for o in failed)
        raise ExecutionError(
            f"{len(failed)} of {len(jobs)} configurations failed ({names}); the others are "
            f"saved in {out}: rerun with --out {out} --resume to run only the failed ones"
        )
    events.record("run_finished")
    return result


def _shardable(spec: BenchSpec, planned: PlannedConfig) -> bool:
    """A configuration that only loads a model is evaluated data-parallel by local workers."""
    if spec.executor != "local" or planned.config.trains or spec.scoring == "both":
        return False
    return len(worker_devices(spec.workers, visible_gpus())) > 1


def _in_plan_order(rows: list[dict[str, Any]], order: dict[str, int]) -> list[dict[str, Any]]:
    """Rows as the plan lists them, whichever worker finished first."""
    return sorted(rows, key=lambda r: order.get(r["config_key"], len(order)))


def _check_resumable(store: ResultsStore, keys: Any, out: Path) -> None:
    """A configuration name may hold one result: refuse changed settings under an old name."""
    finished = {k.split("#", 1)[0]: k for k in store.finished_keys()}
    for key in keys:
        name = key.split("#", 1)[0]
        if name in finished and finished[name] != key:
            raise OptionError(
                f"--resume: {name!r} finished earlier in {out} with other settings (options, "
                "model, benchmark or generation changed); start a new --out to compare them"
            )


__all__ = [
    "BenchResult",
    "ModelSpec",
    "NullProgress",
    "ProgressSink",
    "Task",
    "run_bench",
    "run_configuration",
]
