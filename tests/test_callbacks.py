"""In-training evaluation (EvalCallback) on CPU with the tiny model: quality gate, early stopping,
and validation metrics that equal a standalone evaluation of the saved best checkpoint."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from cxr_harness_plugins.benchmarks.phantom8 import load_phantom8
from harness.components import TrainContext
from harness.evaluation.generate import GenerationConfig, evaluate
from harness.model.adapters import load_with_adapter
from harness.model.loading import ModelSpec, load_base
from harness.model.prompts import eval_prompt
from harness.plan import resolve_components as _resolve_components
from harness.plugins import make_registry
from harness.spec import BenchSpec, Configuration
from harness.training.trainset import attach_texts

pytestmark = pytest.mark.slow

TRAIN_PER_CLASS = 8
VAL_PER_CLASS = 2


def _per_class(samples, n):
    seen: Counter = Counter()
    out = []
    for s in samples:
        if seen[s.label] < n:
            seen[s.label] += 1
            out.append(s)
    return out


@pytest.fixture(scope="module")
def setup():
    """A small train set (template texts) and val set, and the runner's evaluation context."""
    torch.set_num_threads(1)
    bench = load_phantom8()
    registry = make_registry()
    prompt = eval_prompt(bench.classes)
    gen = GenerationConfig()
    synth = registry.create("synthesizer", "template", {})
    train = attach_texts(_per_class(bench.train, TRAIN_PER_CLASS), synth, 0, prompt)
    val = [s.with_(prompt=prompt) for s in _per_class(bench.val, VAL_PER_CLASS)]
    context = TrainContext(  # as harness.runner.run_configuration builds it
        classes=bench.classes,
        prompt=prompt,
        evaluate=lambda model, processor, samples: evaluate(
            model, processor, samples, prompt, bench.classes, gen
        ),
    )
    return {
        "bench": bench,
        "registry": registry,
        "prompt": prompt,
        "gen": gen,
        "train": train,
        "val": val,
        "context": context,
    }


def _train(setup, workdir: Path, trainer: str = "lora", **options):
    """Train with the tiny preset's defaults overridden by ``options`` (like ``-o trainer.*``)."""
    spec = BenchSpec(trainers=(trainer,), options={"trainer": options})
    comps = _resolve_components(
        spec, setup["registry"], Configuration(trainer, "none", "template", 0)
    )
    result = comps["trainer"].train(
        spec.model, setup["train"], setup["val"], workdir, setup["context"]
    )
    return spec, result


def _val_entries(result):
    return [h for h in result.history if "val_macro_f1" in h]


def test_quality_gate_blocks_every_save(setup, tmp_path):
    _, result = _train(setup, tmp_path, max_steps=10, eval_every=5, min_rouge_l=1.0)
    cb = result.resolved["callbacks"]
    assert cb["evaluations"] == 2
    assert cb["gate_blocked"] > 0
    assert cb["gate_blocked"] == cb["evaluations"]  # no checkpoint ever reached ROUGE-L 1.0
    assert cb["best_step"] is None and cb["best_val_macro_f1"] is None
    entries = _val_entries(result)
    assert [e["step"] for e in entries] == [5, 10]
    assert all(e.get("gate_blocked") and not e.get("saved") for e in entries)
    assert all(e["val_rouge_l"] < 1.0 for e in entries)
    # neither a best checkpoint nor the final adapter is written
    assert not (tmp_path / "best").exists()
    assert result.adapter_dir is None
    assert not (tmp_path / "adapter").exists()
    assert result.steps == 10  # the gate blocks saves, it does not stop training


def test_early_stopping_ends_the_run(setup, tmp_path):
    # lr 1e-9 cannot change any greedy answer, so val Macro-F1 never improves after step 2
    _, result = _train(
        setup, tmp_path, max_steps=20, eval_every=2, early_stopping_patience=1, lr=1e-9
    )
    resolved, cb = result.resolved, result.resolved["callbacks"]
    assert resolved["steps"] == 20
    assert cb["stopped_early_at"] == 4
    assert resolved["steps_run"] == 4 < resolved["steps"]
    assert result.steps == 4
    entries = _val_entries(result)
    assert [e["step"] for e in entries] == [2, 4]
    assert entries[0]["val_macro_f1"] == entries[1]["val_macro_f1"]
    assert cb["best_step"] == 2  # the first evaluation is saved (gate 0.0 passes)
    assert result.adapter_dir is not None and (result.adapter_dir / "harness_card.json").is_file()


def test_logged_val_metrics_equal_standalone_eval_of_best_checkpoint(setup, tmp_path):
    spec, result = _train(setup, tmp_path, max_steps=40, eval_every=10)
    cb = result.resolved["callbacks"]
    entries = {e["step"]: e for e in _val_entries(result)}
    assert sorted(entries) == [10, 20, 30, 40]
    best = cb["best_step"]
    assert best is not None and entries[best].get("saved")
    logged = {k.removeprefix("val_"): v for k, v in entries[best].items() if k.startswith("val_")}
    assert cb["best_val_macro_f1"] == logged["macro_f1"]
    assert logged["macro_f1"] == max(e["val_macro_f1"] for e in entries.values())
    assert logged["invalid_rate"] < 1.0, "checkpoint too weak for a meaningful comparison"

    def standalone(model, processor):
        ev = evaluate(
            model, processor, setup["val"], setup["prompt"], setup["bench"].classes, setup["gen"]
        )
        return ev.metrics

    # the best checkpoint, loaded from disk on a fresh base model
    from peft import PeftModel

    base, processor = load_base(spec.model)
    best_model = PeftModel.from_pretrained(base, str(tmp_path / "best"))
    best_model.eval()
    assert standalone(best_model, processor) == logged  # exact float equality

    # keep_best: the final adapter is the best checkpoint, and reloads to the same metrics
    assert result.adapter_dir == tmp_path / "adapter"
    model, processor = load_with_adapter(ModelSpec(), result.adapter_dir)
    assert standalone(model, processor) == logged
    assert standalone(result.model, result.processor) == logged
