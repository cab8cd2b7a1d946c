"""Recommended LoRA-family options per model family, owned by the trainers that use them.

The host knows model families only by their preset name (``harness.model.loading.Preset.name``); it
asks each trainer for its defaults (``Trainer.model_defaults``), and ``-o`` always wins.
"""

from __future__ import annotations

from typing import Any

# Tuned on the phantom benchmark for the tiny CPU model only; never for the real model.
TINY: dict[str, Any] = {
    "r": 32,
    "alpha": 64,
    "lr": 2e-3,
    "max_steps": 600,
    "batch_size": 8,
    "finetune_vision_layers": True,
    "finetune_language_layers": True,
    "finetune_attention_modules": True,
    "finetune_mlp_modules": True,
    "train_embeddings": True,
    "warmup_ratio": 0.05,
    "scheduler": "cosine",
}
# rsLoRA scales updates by alpha/sqrt(r) (5.7x LoRA's alpha/r at r=32): at lr 2e-3 it collapsed
# on the tiny model (Macro-F1 0.21); 5e-4 gave 0.93-0.94.
TINY_OVERRIDES: dict[str, dict[str, Any]] = {"rslora": {"lr": 5e-4}}

# Conventional Qwen2.5-VL-3B LoRA settings (r16, lr 1e-4, 8 samples per optimizer step). The 8
# run as one micro-batch with gradient checkpointing: on an H200 (3B architecture) that trained
# 9.9 samples/s at 9.9 GiB, against 3.9 samples/s for 2 x 4 accumulation steps without it; the
# same update in real arithmetic (transformers normalizes the accumulated loss by token count).
QWEN25_VL: dict[str, Any] = {
    "r": 16,
    "alpha": 16,
    "lr": 1e-4,
    "max_steps": None,
    "epochs": 1.0,
    "batch_size": 8,
    "grad_accum": 1,
    "gradient_checkpointing": True,
    "finetune_vision_layers": False,
    "finetune_language_layers": True,
    "train_embeddings": False,
    "warmup_ratio": 0.03,
}
# QLoRA is for small GPUs: the same 8 samples per step as 2 x 4 (3.8 GiB peak at batch 2).
QWEN25_VL_OVERRIDES: dict[str, dict[str, Any]] = {"qlora": {"batch_size": 2, "grad_accum": 4}}

FAMILIES: dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]]]] = {
    "tiny": (TINY, TINY_OVERRIDES),
    "qwen2.5-vl": (QWEN25_VL, QWEN25_VL_OVERRIDES),
}


def lora_defaults(trainer: str, family: str) -> dict[str, Any]:
    """The shared defaults of a family plus one trainer's overrides; {} for an unknown family."""
    shared, overrides = FAMILIES.get(family, ({}, {}))
    return {**shared, **overrides.get(trainer, {})}
