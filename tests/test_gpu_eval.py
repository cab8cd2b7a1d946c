"""Machine-dependent evaluation defaults and the merged-adapter evaluation, on the tiny model
(fp32, CPU): ``auto`` keeps CPU runs on plain decoding and the preset batch; a batch stops once
every row has emitted end-of-turn, with the answers of a longer budget; a LoRA adapter merged in
place gives the unmerged model's greedy answers and is restored bit for bit; the warm-up runs the
static path; every result records its fast paths."""

from __future__ import annotations

import json

import pytest
import torch
from test_fast_eval import _setup  # the tiny model on the CPU and phantom8, loaded once

from harness.evaluation.generate import GenerationConfig, generate_answers
from harness.model import gpu_eval
from harness.model.decoding import warm_up
from harness.model.gpu_eval import (
    batch_for_memory,
    eval_fast_paths,
    evaluation_model,
    kv_bytes_per_token,
    merged_for_eval,
    resolve_decoding,
)
from harness.model.prompts import eval_prompt
from harness.plan import generation_config
from harness.spec import BenchSpec


def _lora(model):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    config = LoraConfig(
        r=8,
        lora_alpha=16,
        target_modules=["q_proj", "v_proj", "down_proj"],
        init_lora_weights=False,
    )
    return get_peft_model(model, config)


def test_auto_decoding_and_batch_keep_cpu_settings() -> None:
    assert not torch.cuda.is_available()
    assert resolve_decoding("auto") == "plain"
    assert resolve_decoding("static") == "static"
    gen = generation_config(BenchSpec())
    assert (gen.decoding, gen.batch_size) == ("plain", 32)
    assert gen.as_dict() == GenerationConfig(48, 32).as_dict()  # cache keys unchanged


def test_auto_decoding_is_compiled_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu_eval, "cuda_available", lambda: True)
    assert resolve_decoding("auto") == "compiled"


def test_batch_is_sized_from_free_memory() -> None:
    config = {
        "text_config": {
            "num_hidden_layers": 36,
            "num_attention_heads": 16,
            "num_key_value_heads": 2,
            "hidden_size": 2048,
        }
    }
    per_token = kv_bytes_per_token(config)
    assert per_token == 2 * 36 * 2 * 128 * 2
    per_row = 4 * per_token * (512 + 160)
    gib = 1 << 30
    assert batch_for_memory(140 * gib, 7 * gib, per_row) == 128  # capped
    assert batch_for_memory(10 * gib, 7 * gib, per_row) == 16  # 1.5 GiB / 88 MB, multiple of 8
    assert batch_for_memory(7 * gib, 7 * gib, per_row) == 8  # never below one multiple


def test_rows_per_batch_share_the_batches_evenly() -> None:
    from harness.model.decoding import rows_per_batch

    assert rows_per_batch(160, 128) == 80
    assert rows_per_batch(160, 16) == 16
    assert rows_per_batch(10, 4) == 4
    assert rows_per_batch(3, 64) == 8
    assert rows_per_batch(200, 64) == 56  # 4 batches of 50, rounded up to 56


@pytest.mark.slow
def test_generation_stops_once_every_row_has_ended_with_the_same_answers() -> None:
    model, processor, bench = _setup()
    images = [s.image for s in bench.test[::20][:4]]
    prompts = [eval_prompt(list(bench.classes))] * len(images)
    calls = []
    hook = model.register_forward_hook(lambda *_a: calls.append(1))
    try:
        long = generate_answers(model, processor, images, prompts, GenerationConfig(400, 4))
    finally:
        hook.remove()
    short = generate_answers(model, processor, images, prompts, GenerationConfig(200, 4))
    assert len(calls) < 200  # stopped well before the budget: every row emitted end-of-turn
    assert long == short and all(a.strip() for a in long)


@pytest.mark.slow
def test_merged_adapter_gives_the_unmerged_answers_and_is_restored_exactly() -> None:
    model, processor, bench = _setup()
    peft = _lora(model)
    try:
        samples = bench.test[::16][:8]
        images, prompts = [s.image for s in samples], [eval_prompt(list(bench.classes))] * 8
        before = {k: v.clone() for k, v in peft.state_dict().items()}
        tree = [type(m).__name__ for m in peft.modules()]
        config = GenerationConfig(32, 4)
        unmerged = generate_answers(peft, processor, images, prompts, config)
        with merged_for_eval(peft) as merged:
            assert merged
            from peft.tuners.lora import LoraLayer

            assert not any(isinstance(m, LoraLayer) for m in peft.modules())  # the plain tree
            inside = generate_answers(peft, processor, images, prompts, config)
        assert inside == unmerged
        with peft.disable_adapter():  # the adapter changes answers: the check has teeth
            assert generate_answers(peft, processor, images, prompts, config) != unmerged
        after = peft.state_dict()
        assert all(torch.equal(before[k], after[k]) for k in before)
        assert [type(m).__name__ for m in peft.modules()] == tree
        assert generate_answers(peft, processor, images, prompts, config) == unmerged
    finally:
        peft.unload()


def test_merge_applies_only_under_compiled_decoding() -> None:
    model, _processor, _bench = _setup()
    peft = _lora(model)
    try:
        with evaluation_model(peft, GenerationConfig(8, 2)) as merged:
            assert merged is False
        with evaluation_model(model, GenerationConfig(8, 2)) as merged:
            assert merged is False
        record = eval_fast_paths(peft, False)
        assert record["paths"]["merged_adapter"]["applied"] is False
        assert "vision_attention" in record["paths"]
    finally:
        peft.unload()


@pytest.mark.slow
def test_warm_up_runs_the_static_path_briefly() -> None:
    model, processor, bench = _setup()
    calls = []
    hook = model.register_forward_hook(lambda *_a: calls.append(1))
    try:
        config = GenerationConfig(40, 2, decoding="static")
        warm_up(model, processor, bench.test[0].image, eval_prompt(list(bench.classes)), config, 9)
    finally:
        hook.remove()
    assert 1 < len(calls) <= 5  # prefill + a few decode steps, not the whole budget


@pytest.mark.slow
def test_results_record_the_fast_paths(tmp_path) -> None:
    from click.testing import CliRunner

    from harness.cli import main

    out = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        ["bench", "--trainer", "base", "--out", str(out), "--max-new-tokens", "4"],
    )
    assert result.exit_code == 0, result.output
    row = json.loads((out / "results.json").read_text())["results"][0]
    paths = row["fast_paths"]["paths"]
    assert set(paths) >= {"vision_attention", "patch_embed", "vision_mlp", "decode_attention"}
    assert paths["merged_adapter"]["applied"] is False
    assert all(isinstance(p["applied"], bool) for p in paths.values())
