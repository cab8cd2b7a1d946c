"""A lora bench run saves an adapter that reloads to exactly the metrics the run reported.

`harness bench` then `harness eval --adapter DIR --merge-parity 8` (in-process CLI), plus the
library path (load_with_adapter + the one evaluation runner), on CPU with the tiny model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from cxr_harness_plugins.benchmarks.phantom8 import load_phantom8
from harness.cli import main
from harness.evaluation.generate import GenerationConfig, evaluate
from harness.model.adapters import load_with_adapter, read_card
from harness.model.loading import ModelSpec
from harness.model.prompts import eval_prompt

pytestmark = pytest.mark.slow

STEPS = 60  # enough for the tiny model to answer in the class format (non-trivial metrics)
RANK = 8  # an explicit -o override; every other trainer option comes from the tiny preset


def _text(result) -> str:
    return " ".join(result.output.split())  # undo Rich's line wrapping


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("bench") / "out"
    args = ["bench", "--trainer", "lora", "--no-base", "--out", str(out)]
    args += ["-o", f"trainer.max_steps={STEPS}", "-o", f"trainer.r={RANK}"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output[-3000:]
    doc = json.loads((out / "results.json").read_text())
    (row,) = [r for r in doc["results"] if r["trainer"] == "lora"]
    preds = [
        p
        for p in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())
        if p["config_id"] == row["config_id"]
    ]
    return {"out": out, "doc": doc, "row": row, "predictions": preds}


def test_adapter_saved_with_safetensors_and_card(lora_run):
    row, doc = lora_run["row"], lora_run["doc"]
    adapter = Path(row["adapter_dir"])
    assert adapter.parent.parent == lora_run["out"] / "runs"
    for name in ("adapter_model.safetensors", "adapter_config.json", "harness_card.json"):
        assert (adapter / name).is_file(), name
    card = read_card(adapter)
    assert card["trainer"] == "lora"
    assert card["base_model"]["model"] == "tiny"
    assert card["options"] == row["options"]["trainer"]
    assert card["resolved"] == row["resolved"]
    # the runner wrote the run's test metrics, benchmark and generation settings into the card
    assert card["metrics"] == row["metrics"]
    assert card["benchmark"]["fingerprint"] == doc["provenance"]["benchmark"]["fingerprint"]
    assert card["generation"] == doc["provenance"]["generation"]
    assert card["prompt_hash"] == doc["provenance"]["prompt_hash"]
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == RANK and config["lora_alpha"] == 64


def test_results_row_records_resolved_options_modules_and_params(lora_run):
    row = lora_run["row"]
    opts = row["options"]["trainer"]
    assert opts["r"] == RANK  # the explicit -o override
    assert opts["max_steps"] == STEPS
    from cxr_harness_plugins.trainers.family_defaults import lora_defaults

    preset = lora_defaults("lora", "tiny")
    for key in ("alpha", "lr", "batch_size", "scheduler", "warmup_ratio", "train_embeddings"):
        assert opts[key] == preset[key], key  # preset defaults where not overridden
    assert opts["finetune_vision_layers"] is True and opts["seed"] == 0
    resolved = row["resolved"]
    assert resolved["backend"] == "hf" and resolved["load_in_4bit"] is False
    assert resolved["steps"] == resolved["steps_run"] == STEPS
    regex = resolved["target_modules"]["regex"]
    assert "visual" in regex and "language_model" in regex  # vision + language towers
    assert resolved["n_target_modules"] > 0
    assert 0 < row["trainable_params"] < row["total_params"]
    assert row["metrics"]["invalid_rate"] < 1.0, "run too weak for a meaningful comparison"


def test_trainable_params_and_target_modules_match_the_saved_adapter(lora_run):
    from peft.tuners.lora import LoraLayer
    from safetensors import safe_open

    row = lora_run["row"]
    adapter = Path(row["adapter_dir"])
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
        sizes = {k: f.get_slice(k).get_shape() for k in f.keys()}  # noqa: SIM118
    lora = sum(a * b for k, (a, b) in sizes.items() if ".lora_" in k)
    embed = [k for k in sizes if k.endswith("embed_tokens.weight")]
    assert len(embed) == 1  # train_embeddings: the tied embedding is trained (counted once)
    a, b = sizes[embed[0]]
    assert row["trainable_params"] == lora + a * b
    model, _ = load_with_adapter(ModelSpec(), adapter)
    wrapped = [n for n, m in model.named_modules() if isinstance(m, LoraLayer)]
    assert len(wrapped) == row["resolved"]["n_target_modules"]


def test_harness_eval_reproduces_the_run_and_merge_parity_is_zero(lora_run, tmp_path):
    torch.set_num_threads(1)
    adapter = lora_run["row"]["adapter_dir"]
    args = ["eval", "--adapter", adapter, "--merge-parity", "8", "--out", str(tmp_path / "e")]
    result = CliRunner().invoke(main, args)
    text = _text(result)
    assert result.exit_code == 0, result.output[-3000:]
    assert "metrics match the run's record" in text
    assert "metrics differ" not in text
    assert "merge parity: 0 of 8 answers differ" in text


def test_harness_eval_writes_a_run_folder_that_report_and_compare_read(lora_run, tmp_path):
    """eval is a one-configuration plan: the same store and exports as bench."""
    torch.set_num_threads(1)
    adapter = lora_run["row"]["adapter_dir"]
    first, second = tmp_path / "e1", tmp_path / "e2"
    for out in (first, second):
        result = CliRunner().invoke(main, ["eval", "--adapter", adapter, "--out", str(out)])
        assert result.exit_code == 0, result.output[-3000:]
    doc = json.loads((first / "results.json").read_text())
    (row,) = doc["results"]
    assert row["config_id"] == "adapter" and row["adapter_hash"] == lora_run["row"]["adapter_hash"]
    assert row["metrics"] == lora_run["row"]["metrics"]
    assert (first / "predictions.jsonl").is_file() and (first / "experiment.toml").is_file()
    report = CliRunner().invoke(main, ["report", str(first), "--no-plots"])
    assert report.exit_code == 0 and "adapter" in report.output
    compare = CliRunner().invoke(main, ["compare", str(first), str(second)])
    assert compare.exit_code == 0, compare.output
    assert "+0.000" in compare.output  # the same adapter twice: Δ 0 on every metric


def test_library_reload_gives_exactly_the_runs_metrics_and_answers(lora_run):
    torch.set_num_threads(1)
    row, doc = lora_run["row"], lora_run["doc"]
    bench = load_phantom8()
    assert bench.fingerprint == doc["provenance"]["benchmark"]["fingerprint"]
    g = doc["provenance"]["generation"]
    gen = GenerationConfig(max_new_tokens=g["max_new_tokens"], batch_size=g["batch_size"])
    prompt = eval_prompt(bench.classes)
    assert prompt == doc["provenance"]["prompt"]
    model, processor = load_with_adapter(ModelSpec(), Path(row["adapter_dir"]))
    result = evaluate(model, processor, bench.test, prompt, bench.classes, gen)
    assert result.metrics == row["metrics"]  # exact float equality, every metric
    recorded = lora_run["predictions"]
    assert [p["id"] for p in recorded] == [s.id for s in bench.test]
    assert [p["answer"] for p in result.predictions] == [p["answer"] for p in recorded]


def test_likelihood_scoring_agrees_with_every_valid_greedy_answer(lora_run):
    """The label ranked first by log-likelihood is the one greedy decoding wrote,
    wherever the greedy answer is a valid label; static decoding gives the same answers."""
    torch.set_num_threads(1)
    row, doc = lora_run["row"], lora_run["doc"]
    bench = load_phantom8()
    prompt = eval_prompt(bench.classes)
    g = doc["provenance"]["generation"]
    model, processor = load_with_adapter(ModelSpec(), Path(row["adapter_dir"]))
    gen = GenerationConfig(g["max_new_tokens"], g["batch_size"], scoring="likelihood")
    result = evaluate(model, processor, bench.test, prompt, bench.classes, gen)
    assert "rouge_l" not in result.metrics and result.metrics["invalid_rate"] == 0.0
    greedy = {p["id"]: p for p in lora_run["predictions"]}
    valid = [p for p in result.predictions if greedy[p["id"]]["valid"]]
    assert len(valid) >= len(bench.test) // 2  # a non-trivial check
    disagree = [p["id"] for p in valid if p["prediction"] != greedy[p["id"]]["prediction"]]
    assert disagree == []
    static = GenerationConfig(g["max_new_tokens"], g["batch_size"], decoding="static")
    subset = bench.test[:48]
    answers = [greedy[s.id]["answer"] for s in subset]
    ev = evaluate(model, processor, subset, prompt, bench.classes, static)
    got = [p["answer"] for p in ev.predictions]
    assert got == answers


def test_harness_eval_likelihood_reports_classification_only(lora_run, tmp_path):
    adapter = lora_run["row"]["adapter_dir"]
    args = ["eval", "--adapter", adapter, "--scoring", "likelihood", "--out", str(tmp_path / "e")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output[-3000:]
    assert "macro_f1" in result.output and "rouge_l" not in result.output
