"""Runs a bench: freeze the benchmark, then train + evaluate each configuration independently."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from harness.benchmarks import load_benchmark
from harness.components import Metric, TrainContext
from harness.core.atomic import write_text_atomic
from harness.core.errors import OptionError
from harness.data.benchmark import Benchmark
from harness.evaluation.generate import (
    GenerationConfig,
    evaluate,
    generate_answers,
    score,
)
from harness.evaluation.likelihood import label_loglikelihoods, score_likelihoods
from harness.evaluation.metrics import majority_baseline, same_class_reference
from harness.evaluation.result import combine_scorings
from harness.evaluation.scoring import score_plugins
from harness.experiment import experiment_toml
from harness.exports import write_all
from harness.exports.html_images import benchmark_source, thumbnails
from harness.model.adapters import update_card
from harness.model.decoding import warm_up
from harness.model.gpu_eval import eval_fast_paths, evaluation_model
from harness.model.loading import ModelSpec, model_hash, weights_hash
from harness.model.prompts import eval_prompt, text_hash
from harness.plan import (
    Plan,
    PlannedConfig,
    check_classes,
    make_plan,
    resume_keys,
)
from harness.registry import Registry
from harness.results.events import EVENTS, EventLog, LoggedProgress, where_stopped
from harness.results.provenance import chat_template_of, git_commit, hardware, package_versions
from harness.results.store import STORE_NAME, ResultsStore, prediction_cache_key
from harness.spec import BenchSpec
from harness.training.balance import balance, parse_policy
from harness.training.trainset import attach_texts, augment


class Task(Protocol):
    def advance(self, n: int = 1) -> None: ...
    def update(
        self, completed: int, total: int | None = None, loss: float | None = None
    ) -> None: ...
    def finish(self) -> None: ...


class ProgressSink(Protocol):
    """Where the runner reports progress; the CLI renders it with Rich."""

    def start(self, description: str, total: int) -> Task: ...
    def note(self, message: str) -> None: ...


class _NullTask:
    def advance(self, n: int = 1) -> None:
        pass

    def update(self, completed: int, total: int | None = None, loss: float | None = None) -> None:
        pass

    def finish(self) -> None:
        pass


class NullProgress:
    def start(self, description: str, total: int) -> Task:
        return _NullTask()

    def note(self, message: str) -> None:
        pass


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


def _predict(
    trained: Any, bench: Benchmark, prompt: str, gen: GenerationConfig, on_batch: Any
) -> list[str]:
    """Generated answers, or (likelihood scoring) each image's label log-likelihoods as JSON."""
    images, prompts = [s.image for s in bench.test], [prompt] * len(bench.test)
    if gen.scoring == "likelihood":
        table, choices = label_loglikelihoods(
            trained.model,
            trained.processor,
            images,
            prompts,
            bench.classes,
            gen.batch_size,
            on_batch,
        )
        return [
            json.dumps({"choice": int(c), "scores": [round(float(v), 6) for v in row]})
            for row, c in zip(table, choices, strict=True)
        ]
    return generate_answers(trained.model, trained.processor, images, prompts, gen, on_batch)


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
        for planned in plan.configs:
            key = keys[planned.config]
            if spec.resume and store.has_config(key):
                progress.note(f"[{planned.config.id}] finished earlier: skipped (--resume)")
                continue
            row = run_configuration(
                spec, planned, bench, prompt, gen, out, progress, store, base_hash, plan.metrics
            )
            row["config_key"] = key
            store.save_config_result(row, run_id)  # one transaction: all of the row or none
            result.rows = store.load_rows()
            write_all(
                out, result.rows, result.provenance, result.baselines, plots=False, images=thumbs
            )
        result.rows = store.load_rows()
    task = progress.start("render reports", 1)
    write_all(out, result.rows, result.provenance, result.baselines, images=thumbs)
    task.finish()
    events.record("run_finished")
    return result


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


def audit_summary(train_set: list) -> dict[str, Any]:
    """Audit the training texts: overall uniqueness and cross-class keyword share."""
    from harness.text.audit import audit_texts

    texts: dict[str, list[str]] = {}
    for s in train_set:
        texts.setdefault(s.label, []).append(s.report)
    audit = audit_texts(texts)
    return {"per_class": audit}


def run_configuration(
    spec: BenchSpec,
    planned: PlannedConfig,
    bench: Benchmark,
    prompt: str,
    gen: GenerationConfig,
    out: Path,
    progress: ProgressSink,
    store: ResultsStore,
    base_hash: str,
    metrics: Sequence[Metric] = (),
) -> dict[str, Any]:
    comps, config = planned.components, planned.config
    trainer = comps["trainer"]
    train_set = []
    synth_audit: dict[str, Any] = {}
    balance_info: dict[str, Any] | None = None
    if config.trains:
        task = progress.start(f"[{config.id}] build train set", 2)
        train_set = attach_texts(bench.train, comps["synthesizer"], config.seed, prompt)
        synth_audit = audit_summary(train_set)
        task.advance()
        if spec.balance is not None:
            train_set, counts = balance(
                train_set, parse_policy(spec.balance), comps["augmenter"], config.seed
            )
            balance_info = {"policy": spec.balance, "counts": counts}
        else:
            train_set = augment(train_set, comps["augmenter"], spec.aug_copies, config.seed)
        task.advance()
        task.finish()
    stage = "train" if config.trains else "load model"
    train_task = progress.start(f"[{config.id}] {stage}", 1)
    workdir = out / "runs" / config.id.replace("@", "_").replace("+", "_")
    workdir.mkdir(parents=True, exist_ok=True)
    val_set = [s.with_(prompt=prompt) for s in bench.val]
    context = TrainContext(
        classes=bench.classes,
        prompt=prompt,
        evaluate=lambda model, processor, samples: evaluate(
            model, processor, samples, prompt, bench.classes, gen
        ),
        progress=lambda step, total, loss=None: train_task.update(step, total, loss),
    )
    trained = trainer.train(spec.model, train_set, val_set, workdir, context)
    train_task.finish()
    template = chat_template_of(trained.processor)
    adapter_hash = weights_hash(trained.adapter_dir) if trained.adapter_dir else ""
    ids = [s.id for s in bench.test]
    t0 = time.perf_counter()
    results, keys = {}, {}
    merged = False
    for scoring in gen.parts:  # both: a cache entry per half, shared with one-scoring runs
        part = gen.part(scoring)
        keys[scoring] = cache_key = prediction_cache_key(
            base_hash,
            adapter_hash,
            bench.fingerprint,
            text_hash(prompt),
            text_hash(template),
            part.as_dict(),
        )
        title = f"[{config.id}] evaluate" + (f" ({scoring})" if len(gen.parts) > 1 else "")
        answers = store.get_cached_predictions(cache_key, ids)
        if answers is None:
            with evaluation_model(trained.model, part) as merged_now:
                merged = merged or merged_now
                if part.scoring == "generate" and part.decoding == "compiled":
                    warm = progress.start(f"[{config.id}] compile warm-up", 1)
                    warm_up(
                        trained.model,
                        trained.processor,
                        bench.test[0].image,
                        prompt,
                        part,
                        len(bench.test),
                    )
                    warm.finish()
                eval_task = progress.start(title, len(bench.test))
                answers = _predict(trained, bench, prompt, part, eval_task.advance)
            store.put_cached_predictions(cache_key, answers, ids)
        else:
            eval_task = progress.start(title, len(bench.test))
            progress.note(f"[{config.id}] {scoring} predictions taken from the cache")
        if scoring == "likelihood":
            cached = [json.loads(a) for a in answers]
            table = np.asarray([c["scores"] for c in cached], dtype=np.float64)
            choices = np.asarray([c["choice"] for c in cached], dtype=np.int64)
            results[scoring] = score_likelihoods(bench.test, table, choices, bench.classes)
        else:
            results[scoring] = score(bench.test, answers, bench.classes)
        if scoring != gen.parts[-1]:
            eval_task.finish()
    ev = combine_scorings(results)
    values, metric_stats = score_plugins(
        metrics, bench.test, ev.predictions, bench.classes, texts="generate" in gen.parts
    )
    ev.metrics.update(values)
    ev.seconds = time.perf_counter() - t0
    eval_task.finish()
    if trained.adapter_dir is not None and config.trains:  # never rewrite a loaded adapter's card
        update_card(
            trained.adapter_dir,
            benchmark={"name": bench.name, "fingerprint": bench.fingerprint},
            metrics=ev.metrics,
            prompt_hash=text_hash(prompt),
            generation=gen.as_dict(),
        )
    row = {
        "config_id": config.id,
        "trainer": config.trainer,
        "augmenter": config.augmenter if config.trains else "none",
        "synthesizer": config.synthesizer if config.trains else "none",
        "seed": config.seed,
        "options": planned.options(),
        "resolved": trained.resolved,
        "synth_audit": synth_audit,
        "balance": balance_info,
        "metrics": ev.metrics,
        "n_test": len(bench.test),
        "n_train": len(train_set),
        "trainable_params": trained.trainable_params,
        "total_params": trained.total_params,
        # a configuration that only loads a model (base, an adapter) did not train
        "train_seconds": round(trained.train_seconds, 2) if config.trains else None,
        "load_seconds": None if config.trains else round(trained.train_seconds, 2),
        "eval_seconds": round(ev.seconds, 2),
        "adapter_dir": str(trained.adapter_dir) if trained.adapter_dir else None,
        "chat_template_hash": text_hash(template),
        "adapter_hash": adapter_hash,
        "prediction_cache_key": keys[gen.parts[0]],
        **({"prediction_cache_keys": keys} if len(keys) > 1 else {}),
        "history": trained.history,
        "fast_paths": eval_fast_paths(trained.model, merged),
        "metric_stats": metric_stats,
        "predictions": ev.predictions,
    }
    del trained
    return row


__all__ = ["BenchResult", "ModelSpec", "NullProgress", "ProgressSink", "run_bench"]
