"""The fast paths' gate: the supported transformers range, the stock switches, the record."""

from __future__ import annotations

import sys

import pytest
import torch
from transformers import Qwen2_5_VLForConditionalGeneration

from harness.model.fastpath import SUPPORTED, applied_fast_paths
from harness.model.fastpath.compat import version_problem
from harness.model.fastpath.decode_attention import decode_attention
from harness.model.loading import ModelSpec, load_base

VISION = ("vision_attention", "patch_embed", "vision_mlp")


def _patched(model: torch.nn.Module) -> int:
    """Modules whose forward is an instance attribute (a fast path bound to them)."""
    return sum("forward" in vars(m) for m in model.modules())


@pytest.mark.parametrize(
    ("version", "ok"),
    [("5.23.0", True), ("5.23.4", True), ("5.23.0.dev0", True), ("5.22.1", False),
     ("5.24.0", False), ("6.0.0", False)],
)  # fmt: skip
def test_supported_range(version: str, ok: bool) -> None:
    problem = version_problem(version)
    assert (problem is None) == ok
    if not ok:
        assert version in problem and SUPPORTED in problem


def test_load_base_records_every_fast_path() -> None:
    from peft import LoraConfig, get_peft_model

    model, _ = load_base(ModelSpec(), device="cpu")
    record = applied_fast_paths(model)
    depth = model.config.vision_config.depth
    assert record["transformers"] == sys.modules["transformers"].__version__
    assert record["supported"] == SUPPORTED
    assert record["paths"]["vision_attention"] == {"applied": True, "modules": depth}
    assert record["paths"]["patch_embed"] == {"applied": True, "modules": 1}
    assert record["paths"]["vision_mlp"] == {"applied": True, "modules": depth}
    assert record["paths"]["decode_attention"]["applied"] is True
    assert _patched(model) == 2 * depth + 1
    record["paths"].clear()  # a copy: the model's record is not changed through it
    peft = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    assert applied_fast_paths(peft)["paths"]["patch_embed"]["applied"] is True


def test_outside_the_supported_range_nothing_is_patched(monkeypatch: pytest.MonkeyPatch) -> None:
    # the loaded transformers module (its lazy import replaces the first module object)
    monkeypatch.setattr(sys.modules["transformers"], "__version__", "5.24.0")
    model, _ = load_base(ModelSpec(), device="cpu")
    paths = applied_fast_paths(model)["paths"]
    assert set(paths) == {*VISION, "decode_attention"}
    for state in paths.values():
        assert state["applied"] is False
        assert "transformers 5.24.0 is outside >=5.23,<5.24" in state["reason"]
    assert _patched(model) == 0
    text = model.config.text_config
    with decode_attention(model) as on:
        assert not on and text._attn_implementation == "sdpa"


def test_decode_stock_switch_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXR_HARNESS_DECODE_ATTENTION", " Stock ")
    model, _ = load_base(ModelSpec(), device="cpu")
    paths = applied_fast_paths(model)["paths"]
    assert paths["decode_attention"] == {
        "applied": False,
        "reason": "CXR_HARNESS_DECODE_ATTENTION=stock",
    }
    assert all(paths[name]["applied"] for name in VISION)


def test_a_model_not_loaded_by_the_harness_has_no_fast_paths() -> None:
    from harness.model.tiny.config import tiny_config

    model = Qwen2_5_VLForConditionalGeneration(tiny_config())
    paths = applied_fast_paths(model)["paths"]
    assert not any(state["applied"] for state in paths.values())
    assert "not loaded by load_base" in paths["vision_attention"]["reason"]
