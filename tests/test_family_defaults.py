"""The Qwen2.5-VL family defaults: 8 samples per optimizer step for every LoRA-family trainer;
one micro-batch of 8 with gradient checkpointing (fast on a GPU at < 10 GiB), 2 x 4 for QLoRA."""

from __future__ import annotations

import pytest

from cxr_harness_plugins.trainers.family_defaults import lora_defaults


@pytest.mark.parametrize("trainer", ["lora", "rslora", "dora", "qlora"])
def test_every_trainer_steps_on_8_samples(trainer: str) -> None:
    d = lora_defaults(trainer, "qwen2.5-vl")
    assert d["batch_size"] * d["grad_accum"] == 8
    assert d["gradient_checkpointing"] is True


def test_qlora_keeps_the_small_micro_batch_and_tiny_is_unchanged() -> None:
    assert lora_defaults("qlora", "qwen2.5-vl")["batch_size"] == 2
    assert lora_defaults("rslora", "qwen2.5-vl")["batch_size"] == 8
    tiny = lora_defaults("rslora", "tiny")
    assert tiny["batch_size"] == 8 and "grad_accum" not in tiny
    assert "gradient_checkpointing" not in tiny
