"""Runs a bench: freeze the benchmark, then train + evaluate each configuration independently."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from harness.adapters import update_card
from harness.balance import balance, parse_policy
from harness.benchmark import Benchmark, check_benchmark, load_benchmark
from harness.components import TrainContext
from harness.errors import OptionError
from harness.evaluation import (
    GenerationConfig,
    check_decoding,
    evaluate,
    generate_answers,
    score,
)
from harness.exports import write_all
from harness.likelihood import label_loglikelihoods, score_likelihoods
from harness.metrics import majority_baseline
from harness.modeling import ModelSpec, model_hash, resolve_model_path, weights_hash
from harness.prompts import eval_prompt, text_hash
from harness.provenance import chat_template_of, git_commit, hardware, package_versions
from harness.registry import Registry
from harness.spec import BenchSpec, Configuration
from harness.store import ResultsStore, config_key, prediction_cache_key
from harness.trainset import attach_texts, augment


class Task(Protocol):
    def advance(self, n: int = 1) -> None: ...
    def update(self, completed: int, total: int | None = None) -> None: ...
    def finish(self) -> None: ...


class ProgressSink(Protocol):
    """Where the runner reports progress; the CLI renders it with Rich."""

    def start(self, description: str, total: int) -> Task: ...
    def note(self, message: str) -> None: ...


class _NullTask:
    def advance(self, n: int = 1) -> None:
        pass

    def update(self, completed: int, total: int | None = None) -> None:
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


def _resolve_components(spec: BenchSpec, registry: Registry, config: Configuration) -> dict:
    """Instantiate the configuration's components; preset defaults < explicit -o options."""
    trainer_entry = registry.get("trainer", config.trainer)
    fields = trainer_entry.cls.Options.model_fields
    trainer_opts = {
        k: v
        for k, v in spec.model.preset.defaults_for(config.trainer).items()
        if k in fields and v is not None
    }
    if "seed" in fields:
        trainer_opts["seed"] = config.seed
    user = spec.options.get("trainer", {})
    if config.trainer == "base":  # the reference row takes only options it declares
        user = {k: v for k, v in user.items() if k in fields}
    trainer_opts.update({k: v for k, v in user.items() if k != "seed"})
    comps = {"trainer": registry.create("trainer", config.trainer, trainer_opts)}
    if config.trainer != "base":
        comps["augmenter"] = registry.create(
            "augmenter", config.augmenter, spec.options.get("augmenter", {})
        )
        comps["synthesizer"] = registry.create(
            "synthesizer", config.synthesizer, spec.options.get("synthesizer", {})
        )
    return comps


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


def generation_config(spec: BenchSpec) -> GenerationConfig:
    preset = spec.model.preset
    return GenerationConfig(
        max_new_tokens=spec.max_new_tokens or preset.max_new_tokens,
        batch_size=spec.eval_batch_size or preset.eval_batch_size,
        scoring=spec.scoring,
        decoding=spec.decoding,
    )


def validate(spec: BenchSpec, registry: Registry) -> None:
    """Fail before any work: unknown names, bad options, or a missing model path."""
    gen = generation_config(spec)
    check_decoding(gen)
    if gen.scoring == "likelihood" and spec.options.get("trainer", {}).get("min_rouge_l"):
        raise OptionError(
            "trainer.min_rouge_l needs ROUGE-L, which --scoring likelihood does not compute"
        )
    check_declared_options(spec, registry)
    for config in spec.configurations():
        _resolve_components(spec, registry, config)["trainer"].preflight()
    if spec.balance is not None:
        parse_policy(spec.balance)
    check_benchmark(spec.benchmark)
    store_file = spec.out / "results.sqlite" if spec.out is not None else None
    if spec.resume and (store_file is None or not store_file.is_file()):
        raise OptionError("--resume needs --out DIR pointing at an earlier run's folder")
    if not spec.resume and store_file is not None and store_file.is_file():
        raise OptionError(
            f"--out {spec.out} already holds a run: add --resume to continue it, "
            "or choose a new --out"
        )
    if spec.model.model != "tiny":
        resolve_model_path(spec.model)


def check_declared_options(spec: BenchSpec, registry: Registry) -> None:
    """Every ``-o`` key must be declared by some component of the grid, and seeds come only
    from ``--seed``/``--seeds`` (a ``trainer.seed`` option would give every seed one value)."""
    if "seed" in spec.options.get("trainer", {}):
        raise OptionError(
            "-o trainer.seed: training seeds come from --seed/--seeds (a trainer.seed option "
            "would train every --seeds value with one seed); use --seeds "
            f"{spec.options['trainer']['seed']} instead"
        )
    configs = spec.configurations()
    names = {
        "trainer": {c.trainer for c in configs},
        "augmenter": {c.augmenter for c in configs if c.trainer != "base"},
        "synthesizer": {c.synthesizer for c in configs if c.trainer != "base"},
    }
    for kind, chosen in names.items():
        given = spec.options.get(kind, {})
        if not given:
            continue
        declared: set[str] = set()
        for name in chosen:
            declared |= set(registry.get(kind, name).cls.Options.model_fields)
        unknown = sorted(set(given) - declared)
        if unknown:
            which = ", ".join(sorted(chosen)) or "none (only the base row runs)"
            raise OptionError(
                f"unknown option {', '.join(f'{kind}.{k}' for k in unknown)}: no {kind} of this "
                f"run ({which}) declares it (allowed: {', '.join(sorted(declared)) or 'none'})"
            )


def run_bench(
    spec: BenchSpec, registry: Registry, progress: ProgressSink | None = None
) -> BenchResult:
    progress = progress or NullProgress()
    validate(spec, registry)
    out = spec.out or default_out_dir()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    bench = load_benchmark(spec.benchmark)
    progress.note(
        f"benchmark {bench.name} fingerprint {bench.fingerprint} "
        f"(train {len(bench.train)}, test {len(bench.test)}) in {time.perf_counter() - t0:.1f}s"
    )
    for config in spec.configurations():  # e.g. a class the ontology lacks: fail before any work
        if config.trainer != "base":
            _resolve_components(spec, registry, config)["synthesizer"].check_classes(bench.classes)
    prompt = eval_prompt(bench.classes)
    gen = generation_config(spec)
    result = BenchResult(out=out)
    base_hash = model_hash(spec.model)
    result.provenance = {
        "benchmark": bench.summary(),
        "caveats": bench.caveats,
        "model": {**spec.model.resolved(), "weights_hash": base_hash},
        "prompt": prompt,
        "prompt_hash": text_hash(prompt),
        "generation": gen.as_dict(),
        "packages": package_versions(),
        "components": registry.provenance(spec.configurations()),
        "git_commit": git_commit(),
        "hardware": hardware(),
        "seeds": list(spec.seeds),
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
        keys = {
            config: config_key(
                config.id,
                fingerprint=bench.fingerprint,
                model=spec.model.resolved(),
                options=_options_of(_resolve_components(spec, registry, config)),
                generation=gen.as_dict(),
                prompt_hash=text_hash(prompt),
                aug_copies=spec.aug_copies,
                balance=spec.balance,
            )
            for config in spec.configurations()
        }
        _check_resumable(store, keys.values(), out)
        run_id = store.save_run(result.provenance, result.baselines)
        for config, key in keys.items():
            if spec.resume and store.has_config(key):
                progress.note(f"[{config.id}] finished earlier: skipped (--resume)")
                continue
            row = run_configuration(
                spec, registry, bench, config, prompt, gen, out, progress, store, base_hash
            )
            row["config_key"] = key
            store.save_config_result(row, run_id)  # one transaction: all of the row or none
            result.rows = store.load_rows()
            write_all(out, result.rows, result.provenance, result.baselines, plots=False)
        result.rows = store.load_rows()
    task = progress.start("render reports", 1)
    write_all(out, result.rows, result.provenance, result.baselines)
    task.finish()
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


def same_class_reference(bench: Benchmark, seed: int = 0) -> dict[str, Any]:
    """ROUGE-L of a random same-class train reference against each test reference.

    It reads no image: what a model scores at or below this is style-matching, not reading.
    """
    import numpy as np

    from harness.metrics import rouge_l

    by_class: dict[str, list[str]] = {}
    for s in bench.train:
        if s.report:
            by_class.setdefault(s.label, []).append(s.report)
    rng = np.random.default_rng(seed)
    scores = [
        rouge_l(by_class[s.label][int(rng.integers(len(by_class[s.label])))], s.report)
        for s in bench.test
        if by_class.get(s.label) and s.report
    ]
    return {"rouge_l": float(np.mean(scores)) if scores else 0.0, "n": len(scores)}


def _options_of(comps: dict[str, Any]) -> dict[str, Any]:
    return {kind: comp.options.model_dump(mode="json") for kind, comp in comps.items()}


def audit_summary(train_set: list) -> dict[str, Any]:
    """Audit the training texts: overall uniqueness and cross-class keyword share."""
    from harness.synth_audit import audit_texts

    texts: dict[str, list[str]] = {}
    for s in train_set:
        texts.setdefault(s.label, []).append(s.report)
    audit = audit_texts(texts)
    return {"per_class": audit}


def run_configuration(
    spec: BenchSpec,
    registry: Registry,
    bench: Benchmark,
    config: Configuration,
    prompt: str,
    gen: GenerationConfig,
    out: Path,
    progress: ProgressSink,
    store: ResultsStore,
    base_hash: str,
) -> dict[str, Any]:
    comps = _resolve_components(spec, registry, config)
    trainer = comps["trainer"]
    train_set = []
    synth_audit: dict[str, Any] = {}
    balance_info: dict[str, Any] | None = None
    if config.trainer != "base":
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
    stage = "load model" if config.trainer == "base" else "train"
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
        progress=lambda step, total: train_task.update(step, total),
    )
    trained = trainer.train(spec.model, train_set, val_set, workdir, context)
    train_task.finish()
    template = chat_template_of(trained.processor)
    adapter_hash = weights_hash(trained.adapter_dir) if trained.adapter_dir else ""
    cache_key = prediction_cache_key(
        base_hash,
        adapter_hash,
        bench.fingerprint,
        text_hash(prompt),
        text_hash(template),
        gen.as_dict(),
    )
    ids = [s.id for s in bench.test]
    eval_task = progress.start(f"[{config.id}] evaluate", len(bench.test))
    t0 = time.perf_counter()
    answers = store.get_cached_predictions(cache_key, ids)
    if answers is None:
        answers = _predict(trained, bench, prompt, gen, eval_task.advance)
        store.put_cached_predictions(cache_key, answers, ids)
    else:
        progress.note(f"[{config.id}] predictions taken from the cache")
    if gen.scoring == "likelihood":
        cached = [json.loads(a) for a in answers]
        table = np.asarray([c["scores"] for c in cached], dtype=np.float64)
        choices = np.asarray([c["choice"] for c in cached], dtype=np.int64)
        ev = score_likelihoods(bench.test, table, choices, bench.classes)
    else:
        ev = score(bench.test, answers, bench.classes)
    ev.seconds = time.perf_counter() - t0
    eval_task.finish()
    if trained.adapter_dir is not None:
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
        "augmenter": config.augmenter if config.trainer != "base" else "none",
        "synthesizer": config.synthesizer if config.trainer != "base" else "none",
        "seed": config.seed,
        "options": _options_of(comps),
        "resolved": trained.resolved,
        "synth_audit": synth_audit,
        "balance": balance_info,
        "metrics": ev.metrics,
        "n_test": len(bench.test),
        "n_train": len(train_set),
        "trainable_params": trained.trainable_params,
        "total_params": trained.total_params,
        "train_seconds": round(trained.train_seconds, 2),
        "eval_seconds": round(ev.seconds, 2),
        "adapter_dir": str(trained.adapter_dir) if trained.adapter_dir else None,
        "chat_template_hash": text_hash(template),
        "adapter_hash": adapter_hash,
        "prediction_cache_key": cache_key,
        "history": trained.history,
        "predictions": ev.predictions,
    }
    del trained
    return row


__all__ = ["BenchResult", "ModelSpec", "NullProgress", "ProgressSink", "run_bench"]
