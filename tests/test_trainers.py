"""LoRA-family trainers: rslora and dora train, save, reload to the run's exact metrics;
resolved options; CUDA-only options (qlora, 4-bit, unsloth) fail cleanly on CPU before any work.

The lora trainer's CLI round trip (bench -> eval --adapter, merge parity) is in test_adapters.py.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import harness.model.tiny
import harness.runner
from cxr_harness_plugins.benchmarks.phantom8 import load_phantom8
from harness.cli import main
from harness.core.errors import HarnessError
from harness.evaluation.generate import GenerationConfig, evaluate
from harness.model.adapters import load_with_adapter, read_card
from harness.model.loading import ModelSpec
from harness.model.prompts import eval_prompt
from harness.plan import resolve_components as _resolve_components
from harness.plugins import make_registry
from harness.runner import run_bench
from harness.spec import BenchSpec, Configuration

CUDA = torch.cuda.is_available()
STEPS = 40  # enough for varied answers, so comparing them is meaningful
PEFT_FLAGS = {"rslora": {"use_rslora": True}, "dora": {"use_dora": True}}


@lru_cache(maxsize=1)
def _bench():
    return load_phantom8()


def _predictions(out: Path, config_id: str) -> list[dict]:
    rows = map(json.loads, (out / "predictions.jsonl").read_text().splitlines())
    return [p for p in rows if p["config_id"] == config_id]


# ---- rslora / dora: train, save, reload, same metrics ---------------------------------------


@pytest.fixture(scope="module")
def peft_runs(tmp_path_factory):
    """One bench of rslora and dora (tiny preset, few steps), run through the library runner."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("peft") / "out"
    spec = BenchSpec(
        trainers=("rslora", "dora"),
        include_base=False,
        options={"trainer": {"max_steps": STEPS}},
        out=out,
    )
    run_bench(spec, make_registry())
    doc = json.loads((out / "results.json").read_text())
    return {"out": out, "doc": doc, "rows": {r["trainer"]: r for r in doc["results"]}}


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["rslora", "dora"])
def test_trainer_saves_adapter_that_reloads_to_the_runs_exact_metrics(peft_runs, trainer):
    torch.set_num_threads(1)
    row, doc = peft_runs["rows"][trainer], peft_runs["doc"]
    assert row["resolved"]["steps_run"] == STEPS
    assert row["resolved"]["peft"] == PEFT_FLAGS[trainer]
    adapter = Path(row["adapter_dir"])
    assert (adapter / "adapter_model.safetensors").is_file()
    config = json.loads((adapter / "adapter_config.json").read_text())
    flag = next(iter(PEFT_FLAGS[trainer]))
    assert config[flag] is True  # the PEFT variant is what was saved
    card = read_card(adapter)
    assert card["trainer"] == trainer
    assert card["metrics"] == row["metrics"]
    assert card["resolved"] == row["resolved"]

    bench = _bench()
    assert bench.fingerprint == card["benchmark"]["fingerprint"]
    g = card["generation"]
    gen = GenerationConfig(max_new_tokens=g["max_new_tokens"], batch_size=g["batch_size"])
    prompt = eval_prompt(bench.classes)
    assert prompt == doc["provenance"]["prompt"]
    model, processor = load_with_adapter(ModelSpec(model=card["base_model"]["model"]), adapter)
    result = evaluate(model, processor, bench.test, prompt, bench.classes, gen)
    assert result.metrics == row["metrics"]  # exact float equality
    recorded = _predictions(peft_runs["out"], row["config_id"])
    assert len({p["answer"] for p in recorded}) > 1, "degenerate run: comparison too weak"
    assert [p["answer"] for p in result.predictions] == [p["answer"] for p in recorded]


@pytest.mark.slow
def test_rows_record_preset_options_target_modules_and_params(peft_runs):
    rows = peft_runs["rows"]
    assert rows["rslora"]["options"]["trainer"]["lr"] == 5e-4  # the tiny preset's rslora lr
    assert rows["dora"]["options"]["trainer"]["lr"] == 2e-3
    for row in rows.values():
        opts = row["options"]["trainer"]
        assert opts["max_steps"] == STEPS and opts["r"] == 32 and opts["alpha"] == 64
        assert row["resolved"]["n_target_modules"] > 0
        assert "regex" in row["resolved"]["target_modules"]
        assert 0 < row["trainable_params"] < row["total_params"]
    # DoRA adds a magnitude vector per target module on top of LoRA's A and B
    assert rows["dora"]["trainable_params"] > rows["rslora"]["trainable_params"]


def _trainer_options(trainer: str, **user) -> dict:
    spec = BenchSpec(trainers=(trainer,), options={"trainer": user})
    comps = _resolve_components(
        spec, make_registry(), Configuration(trainer, "none", "template", 0)
    )
    return comps["trainer"].options.model_dump()


def test_preset_defaults_and_overrides_resolve_per_trainer():
    assert _trainer_options("rslora")["lr"] == 5e-4
    assert _trainer_options("lora")["lr"] == 2e-3
    assert _trainer_options("dora")["lr"] == 2e-3
    assert _trainer_options("rslora", lr=1e-3)["lr"] == 1e-3  # -o beats the preset
    lora = _trainer_options("lora", r=8)
    assert lora["r"] == 8 and lora["alpha"] == 64 and lora["scheduler"] == "cosine"
    assert _trainer_options("qlora")["load_in_4bit"] is True  # recorded as it runs


def test_lora_family_is_registered():
    names = make_registry().names("trainer")
    assert {"lora", "rslora", "dora", "qlora"} <= set(names)


# ---- CUDA-only paths on CPU -------------------------------------------------------------------

CUDA_ONLY = [
    pytest.param(["--trainer", "qlora"], "trainer.load_in_4bit", id="qlora"),
    pytest.param(
        ["--trainer", "lora", "-o", "trainer.load_in_4bit=true"],
        "trainer.load_in_4bit",
        id="load_in_4bit",
    ),
    pytest.param(
        ["--trainer", "lora", "-o", "trainer.backend=unsloth"],
        "trainer.backend=unsloth",
        id="unsloth",
    ),
]


class _Reached(HarnessError):
    pass


@pytest.mark.skipif(CUDA, reason="checks the CPU-only failure path")
@pytest.mark.parametrize(("args", "option"), CUDA_ONLY)
def test_cuda_only_option_is_rejected_before_any_work(tmp_path, monkeypatch, args, option):
    """With the base row included, validation must reject the option before run_bench starts."""

    def fake_run_bench(spec, registry, progress=None):
        raise _Reached("STOP: validation passed and run_bench was reached")

    monkeypatch.setattr(harness.runner, "run_bench", fake_run_bench)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["bench", *args, "--out", str(out)])
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "STOP" not in text, "the CUDA-only option passed validation"
    assert option in text and "CUDA" in text
    assert text.count("error:") == 1 and "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.skipif(CUDA, reason="checks the CPU-only failure path")
@pytest.mark.parametrize(("args", "option"), CUDA_ONLY)
def test_cuda_only_option_exits_2_without_loading_a_model(tmp_path, monkeypatch, args, option):
    """The real run_bench (no base row): exit 2, one-line error, nothing loaded or trained."""

    def forbid(*_a, **_kw):
        raise AssertionError("a model was loaded for a CUDA-only option on CPU")

    monkeypatch.setattr(harness.model.tiny, "ensure_tiny_base", forbid)
    monkeypatch.setattr(harness.runner, "load_benchmark", lambda name: _bench())
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["bench", *args, "--no-base", "--out", str(out)])
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert option in text and "CUDA" in text
    assert text.count("error:") == 1 and "Traceback" not in result.output
    assert not list(out.glob("runs/*/adapter")) and not (out / "results.json").exists()


@pytest.mark.slow
@pytest.mark.skipif(not CUDA, reason="QLoRA (bitsandbytes 4-bit) needs a CUDA GPU")
def test_qlora_trains_on_gpu(tmp_path):
    pytest.importorskip("bitsandbytes")
    out = tmp_path / "out"
    spec = BenchSpec(
        trainers=("qlora",),
        include_base=False,
        options={"trainer": {"max_steps": 5, "backend": "hf"}},
        out=out,
    )
    result = run_bench(spec, make_registry())
    (row,) = result.rows
    assert row["resolved"]["load_in_4bit"] is True and row["resolved"]["backend"] == "hf"
    assert row["resolved"]["steps_run"] == 5
    assert 0 < row["trainable_params"] < row["total_params"]
    adapter = Path(row["adapter_dir"])
    assert (adapter / "adapter_model.safetensors").is_file()
    assert read_card(adapter)["trainer"] == "qlora"
