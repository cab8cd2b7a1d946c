"""What a results row and an adapter card say ran is what ran.

- qlora records ``load_in_4bit=True`` in its options (as in ``resolved``) and refuses ``false``;
- ``resolved`` records the backend (and why), 4-bit, precision and the base's dtype;
- the adapter card records how the base was loaded, and ``harness eval --adapter`` loads the
  base the same way (4-bit when the run was; exit 2 where 4-bit cannot load);
- a backend that cannot honour an option refuses it before any work (``backend=auto`` picks hf).
"""

from __future__ import annotations

import json
import shutil
from functools import lru_cache
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import harness.model.tiny
from cxr_harness_plugins.benchmarks.phantom8 import load_phantom8
from harness.cli import main
from harness.components import TrainContext
from harness.core.errors import BackendUnavailableError, OptionError
from harness.model.adapters import base_load_of, load_with_adapter, read_card, write_card
from harness.model.loading import ModelSpec
from harness.model.prompts import eval_prompt
from harness.plan import PlannedConfig, resolve_components
from harness.plugins import make_registry
from harness.spec import BenchSpec, Configuration

CUDA = torch.cuda.is_available()


@lru_cache(maxsize=1)
def _bench():
    return load_phantom8()


def _predictions(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def _trainer(name: str, **options):
    return make_registry().create("trainer", name, options)


# ---- qlora: the recorded options say 4-bit -------------------------------------------------


def test_qlora_options_record_load_in_4bit_true():
    assert _trainer("qlora").options.load_in_4bit is True
    spec = BenchSpec(trainers=("qlora",))
    config = Configuration("qlora", "none", "template", 0)
    planned = PlannedConfig(config, resolve_components(spec, make_registry(), config))
    assert planned.options()["trainer"]["load_in_4bit"] is True  # what results.json stores
    assert _trainer("lora").options.load_in_4bit is False  # lora keeps its full-precision base


def test_qlora_refuses_load_in_4bit_false():
    with pytest.raises(OptionError) as err:
        _trainer("qlora", load_in_4bit=False)
    text = str(err.value)
    assert "trainer.load_in_4bit" in text and "qlora" in text and "'lora'" in text


# ---- backend decision: options a backend cannot honour are refused first ------------------

UNSLOTH_CANNOT = [
    pytest.param("dora", {}, "use_dora", id="dora"),
    pytest.param("lora", {"train_embeddings": True}, "trainer.train_embeddings", id="embeddings"),
]


@pytest.mark.parametrize(("name", "options", "named"), UNSLOTH_CANNOT)
def test_unsloth_refuses_an_option_it_cannot_honour_in_preflight(name, options, named):
    """Decided from the options alone: the same error with or without CUDA or unsloth here."""
    trainer = _trainer(name, backend="unsloth", **options)
    with pytest.raises(OptionError) as err:
        trainer.preflight()
    text = str(err.value)
    assert named in text and "trainer.backend=unsloth" in text and "backend=hf" in text


@pytest.mark.parametrize(("name", "options", "named"), UNSLOTH_CANNOT)
def test_backend_decision_checks_options_before_the_machine(name, options, named):
    from cxr_harness_plugins.trainers.backends import choose_backend

    trainer = _trainer(name, backend="unsloth", **options)
    for cuda, installed in [(True, True), (False, False)]:
        with pytest.raises(OptionError) as err:
            choose_backend(trainer.options, trainer.peft_extra, cuda=cuda, unsloth=installed)
        assert named in str(err.value)
    # auto never picks a backend that would drop the option: hf, and the reason is recorded
    auto = _trainer(name, backend="auto", **options)
    choice = choose_backend(auto.options, auto.peft_extra, cuda=True, unsloth=True)
    assert choice.backend == "hf" and named in choice.reason


def test_backend_decision_without_unsupported_options():
    from cxr_harness_plugins.trainers.backends import choose_backend

    plain = _trainer("rslora", backend="auto")
    pick = choose_backend(plain.options, plain.peft_extra, cuda=True, unsloth=True)
    assert pick.backend == "unsloth"
    pick = choose_backend(plain.options, plain.peft_extra, cuda=False, unsloth=True)
    assert pick.backend == "hf" and "CUDA" in pick.reason
    pick = choose_backend(plain.options, plain.peft_extra, cuda=True, unsloth=False)
    assert pick.backend == "hf" and "not installed" in pick.reason
    asked = _trainer("rslora", backend="unsloth")
    with pytest.raises(BackendUnavailableError, match="CUDA"):
        choose_backend(asked.options, asked.peft_extra, cuda=False, unsloth=True)
    with pytest.raises(BackendUnavailableError, match="not installed"):
        choose_backend(asked.options, asked.peft_extra, cuda=True, unsloth=False)
    assert choose_backend(asked.options, asked.peft_extra, cuda=True, unsloth=True).backend == (
        "unsloth"
    )


# ---- a short tiny-model LoRA run: resolved and the card record what ran --------------------


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """Two LoRA steps on the tiny model, through the trainer plugin itself."""
    torch.set_num_threads(1)
    bench = _bench()
    prompt = eval_prompt(bench.classes)
    trainer = _trainer("lora", max_steps=2, batch_size=2, r=4, alpha=8)
    context = TrainContext(classes=bench.classes, prompt=prompt, evaluate=lambda *_: None)
    train_set = [s.with_(prompt=prompt) for s in bench.train[:4]]
    workdir = tmp_path_factory.mktemp("lora")
    return trainer.train(ModelSpec(), train_set, [], workdir, context)


@pytest.mark.slow
def test_resolved_records_backend_4bit_and_precision(lora_run):
    resolved = lora_run.resolved
    assert resolved["backend"] == "hf" and resolved["backend_reason"]
    assert resolved["load_in_4bit"] is False and resolved["quantization"] is None
    assert resolved["precision"] == ("bf16" if CUDA and torch.cuda.is_bf16_supported() else "fp32")
    assert resolved["base_dtype"] == "float32"  # the tiny model loads in fp32 everywhere
    assert resolved["gradient_checkpointing"] is False


@pytest.mark.slow
def test_card_records_a_full_precision_base_and_eval_loads_it_so(lora_run):
    card = read_card(lora_run.adapter_dir)
    assert card["base_load"] == {"load_in_4bit": False, "quantization": None}
    assert base_load_of(card).load_in_4bit is False
    model, _ = load_with_adapter(ModelSpec(), lora_run.adapter_dir)
    assert not any(type(m).__name__ == "Linear4bit" for m in model.modules())


def _as_4bit_run(lora_run, folder: Path) -> Path:
    """The adapter folder, its card rewritten by the card writer as a 4-bit run records it."""
    shutil.copytree(lora_run.adapter_dir, folder)
    quant = {"quant_type": "nf4", "double_quant": True, "compute_dtype": "bfloat16"}
    write_card(
        folder,
        base_model=ModelSpec().resolved(),
        trainer="qlora",
        options=_trainer("qlora").options.model_dump(mode="json"),
        resolved={**lora_run.resolved, "load_in_4bit": True, "quantization": quant},
    )
    return folder


@pytest.mark.slow
def test_card_of_a_4bit_run_makes_eval_load_the_base_in_4bit(lora_run, tmp_path):
    folder = _as_4bit_run(lora_run, tmp_path / "adapter")
    card = json.loads((folder / "harness_card.json").read_text())
    assert card["base_load"]["load_in_4bit"] is True
    load = base_load_of(read_card(folder))
    assert load.load_in_4bit is True and load.quantization["quant_type"] == "nf4"


@pytest.mark.slow
@pytest.mark.skipif(CUDA, reason="checks the CPU-only failure path")
def test_eval_of_a_4bit_adapter_exits_2_on_cpu_before_loading(lora_run, tmp_path, monkeypatch):
    folder = _as_4bit_run(lora_run, tmp_path / "adapter")

    def forbid(*_a, **_kw):
        raise AssertionError("a model was loaded although its 4-bit base cannot load here")

    monkeypatch.setattr(harness.model.tiny, "ensure_tiny_base", forbid)
    result = CliRunner().invoke(main, ["eval", "--adapter", str(folder)])
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert str(folder) in text and "4-bit" in text and "CUDA" in text
    assert text.count("error:") == 1 and "Traceback" not in result.output


@pytest.mark.slow
@pytest.mark.skipif(not CUDA, reason="QLoRA (bitsandbytes 4-bit) needs a CUDA GPU")
def test_qlora_bench_then_eval_adapter_reproduces_the_run_on_a_4bit_base(tmp_path):
    pytest.importorskip("bitsandbytes")
    runs, again = tmp_path / "bench", tmp_path / "eval"
    args = ["bench", "--trainer", "qlora", "--no-base", "--out", str(runs)]
    result = CliRunner().invoke(main, [*args, "-o", "trainer.max_steps=30"])
    assert result.exit_code == 0, result.output[-3000:]
    (row,) = json.loads((runs / "results.json").read_text())["results"]
    assert row["options"]["trainer"]["load_in_4bit"] is True
    assert row["resolved"]["load_in_4bit"] is True
    assert row["resolved"]["quantization"]["quant_type"] == "nf4"
    adapter = Path(row["adapter_dir"])
    assert base_load_of(read_card(adapter)).load_in_4bit is True
    model, _ = load_with_adapter(ModelSpec(), adapter)
    assert any(type(m).__name__ == "Linear4bit" for m in model.modules())
    del model
    result = CliRunner().invoke(main, ["eval", "--adapter", str(adapter), "--out", str(again)])
    assert result.exit_code == 0, result.output[-3000:]
    (evaluated,) = json.loads((again / "results.json").read_text())["results"]
    assert evaluated["resolved"]["load_in_4bit"] is True
    assert evaluated["metrics"] == row["metrics"]
    answers = [p["answer"] for p in _predictions(runs)]
    assert len(set(answers)) > 1, "degenerate run: comparison too weak"
    # the adapter weights in the dtype training ended with (bf16): 23 of 160 answers differed
    # when they were reloaded in fp32
    assert [p["answer"] for p in _predictions(again)] == answers
    assert "metrics match the run's record" in " ".join(result.output.split())
