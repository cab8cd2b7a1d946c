"""One configuration, start to finish: build its train set, train (or load), evaluate, score.

The driver runs it in process (serial) and every worker runs the same function (local, ray): it
writes only into the configuration's own ``runs/`` folder and reads/writes predictions through a
:class:`PredictionCache`, which is the store itself in process and a recording cache in workers.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from harness.components import Metric, TrainContext
from harness.data.benchmark import Benchmark
from harness.evaluation.generate import GenerationConfig, evaluate, generate_answers, score
from harness.evaluation.likelihood import label_loglikelihoods, score_likelihoods
from harness.evaluation.result import combine_scorings
from harness.evaluation.scoring import score_plugins
from harness.model.adapters import update_card
from harness.model.decoding import warm_up
from harness.model.gpu_eval import eval_fast_paths, evaluation_model
from harness.model.loading import weights_hash
from harness.model.prompts import text_hash
from harness.model.shared_base import SharedBase
from harness.plan import PlannedConfig
from harness.results.provenance import chat_template_of
from harness.results.store import prediction_cache_key
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


class NullTask:
    def advance(self, n: int = 1) -> None:
        pass

    def update(self, completed: int, total: int | None = None, loss: float | None = None) -> None:
        pass

    def finish(self) -> None:
        pass


class NullProgress:
    def start(self, description: str, total: int) -> Task:
        return NullTask()

    def note(self, message: str) -> None:
        pass


class PredictionCache(Protocol):
    """Predictions by cache key (``ResultsStore`` is one)."""

    def get_cached_predictions(
        self, cache_key: str, sample_ids: Sequence[str] | None = None
    ) -> list[str] | None: ...
    def put_cached_predictions(
        self, cache_key: str, answers: Sequence[str], sample_ids: Sequence[str] | None = None
    ) -> None: ...


def _predict(
    trained: Any,
    bench: Benchmark,
    prompt: str,
    gen: GenerationConfig,
    on_batch: Any,
    model: Any = None,
) -> list[str]:
    """Generated answers, or (likelihood scoring) each image's label log-likelihoods as JSON,
    of ``model`` (default: the trained one)."""
    model = trained.model if model is None else model
    images, prompts = [s.image for s in bench.test], [prompt] * len(bench.test)
    if gen.scoring == "likelihood":
        table, choices = label_loglikelihoods(
            model,
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
    return generate_answers(model, trained.processor, images, prompts, gen, on_batch)


def compiled_generation(gen: GenerationConfig) -> bool:
    """Generation alone (no likelihood half), under compiled decoding."""
    return tuple(gen.parts) == ("generate",) and gen.decoding == "compiled"


def shares_base(
    shared: SharedBase | None,
    gen: GenerationConfig,
    trains: bool,
    adapter_dir: Path | None,
    base_hash: str,
) -> bool:
    """Whether a trained configuration is evaluated on the kept base (`_eval_model`)."""
    return (
        shared is not None
        and compiled_generation(gen)
        and trains
        and shared.serves(adapter_dir, base_hash)
    )


@contextmanager
def _eval_model(
    trained: Any, part: GenerationConfig, shared: SharedBase | None, share: bool, note: Any
) -> Iterator[tuple[Any, bool, bool]]:
    """(model to evaluate, merged?, on the kept base?): the kept base with this adapter merged in
    place when ``share`` (`harness.model.shared_base`), else the trained model as
    `evaluation_model` runs it. Once the adapter is on the kept base, the training copy is
    dropped, so two bases never share the GPU; if attaching fails, the training copy is used."""
    if share and shared is not None:
        stack = ExitStack()
        try:
            model = stack.enter_context(shared.with_adapter(trained.adapter_dir))
        except Exception as exc:  # the run goes on, on the path that needs no kept base
            stack.close()
            note(f"not evaluated on the base's compiled decoder: {type(exc).__name__}: {exc}")
        else:
            with stack:
                trained.model = None
                gc.collect()
                _empty_cuda_cache()
                yield model, True, True
            return
    with evaluation_model(trained.model, part) as merged:
        yield trained.model, merged, False


def _empty_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def audit_summary(train_set: list) -> dict[str, Any]:
    """Audit the training texts: overall uniqueness and cross-class keyword share."""
    from harness.text.audit import audit_texts

    texts: dict[str, list[str]] = {}
    for s in train_set:
        texts.setdefault(s.label, []).append(s.report)
    audit = audit_texts(texts)
    return {"per_class": audit}


def train_or_load(
    spec: BenchSpec,
    planned: PlannedConfig,
    bench: Benchmark,
    prompt: str,
    gen: GenerationConfig,
    out: Path,
    train_set: list,
    progress: ProgressSink,
) -> Any:
    """The configuration's trainer on ``train_set`` (or its model loaded), in ``out/runs/``."""
    config = planned.config
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
    trained = planned.trainer.train(spec.model, train_set, val_set, workdir, context)
    train_task.finish()
    return trained


def prediction_key(
    trained: Any, bench: Benchmark, prompt: str, gen: GenerationConfig, base_hash: str
) -> tuple[str, str, str]:
    """(prediction cache key, adapter hash, chat template) of a trained or loaded model."""
    template = chat_template_of(trained.processor)
    adapter_hash = weights_hash(trained.adapter_dir) if trained.adapter_dir else ""
    key = prediction_cache_key(
        base_hash,
        adapter_hash,
        bench.fingerprint,
        text_hash(prompt),
        text_hash(template),
        gen.as_dict(),
    )
    return key, adapter_hash, template


def predict_slice(
    trained: Any, bench: Benchmark, prompt: str, gen: GenerationConfig, start: int, stop: int
) -> list[str]:
    """Answers for ``bench.test[start:stop]`` (one shard of a data-parallel evaluation)."""
    shard = dataclasses.replace(bench, test=bench.test[start:stop])
    with evaluation_model(trained.model, gen):
        return _predict(trained, shard, prompt, gen, lambda n=1: None)


def run_configuration(
    spec: BenchSpec,
    planned: PlannedConfig,
    bench: Benchmark,
    prompt: str,
    gen: GenerationConfig,
    out: Path,
    progress: ProgressSink,
    store: PredictionCache,
    base_hash: str,
    metrics: Sequence[Metric] = (),
    shared: SharedBase | None = None,
) -> dict[str, Any]:
    """Train (or load) one configuration, evaluate it and return its results row. ``shared``:
    the process's kept base (`harness.model.shared_base`): a base row under compiled decoding
    leaves its model there, and later adapters of the run are evaluated on it."""
    comps, config = planned.components, planned.config
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
    trained = train_or_load(spec, planned, bench, prompt, gen, out, train_set, progress)
    template = chat_template_of(trained.processor)
    adapter_hash = weights_hash(trained.adapter_dir) if trained.adapter_dir else ""
    ids = [s.id for s in bench.test]
    t0 = time.perf_counter()
    results, keys = {}, {}
    merged = False
    compiled = compiled_generation(gen)
    share = shares_base(shared, gen, config.trains, trained.adapter_dir, base_hash)
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
            note = lambda text: progress.note(f"[{config.id}] {text}")  # noqa: E731
            with _eval_model(trained, part, shared, share, note) as (evaluated, merged_now, on):
                merged, share = merged or merged_now, on
                if share:
                    note("evaluated on the base's compiled decoder")
                if part.scoring == "generate" and part.decoding == "compiled":
                    warm = progress.start(f"[{config.id}] compile warm-up", 1)
                    warm_up(
                        evaluated,
                        trained.processor,
                        bench.test[0].image,
                        prompt,
                        part,
                        len(bench.test),
                    )
                    warm.finish()
                eval_task = progress.start(title, len(bench.test))
                answers = _predict(trained, bench, prompt, part, eval_task.advance, evaluated)
            store.put_cached_predictions(cache_key, answers, ids)
        else:
            share = False  # answered by the cache: no model of this run evaluated it
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
    fast_paths = eval_fast_paths(shared.model if share and shared else trained.model, merged)
    fast_paths["paths"]["merged_adapter"]["on_shared_base"] = share
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
        "fast_paths": fast_paths,
        "metric_stats": metric_stats,
        "predictions": ev.predictions,
    }
    if shared is not None and compiled and not config.trains and trained.model is not None:
        shared.keep(trained.model, base_hash)  # the grid's adapters reuse its compiled decoder
    del trained
    return row
