"""The batched vision window attention equals the stock per-window loop (outputs and gradients)."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Qwen2_5_VLForConditionalGeneration

from harness.model.fastpath import applied_fast_paths, apply_fast_paths
from harness.model.fastpath.vision_attention import patch_vision_attention, window_layout
from harness.model.processing import load_processor
from harness.model.tiny import ensure_tiny_base
from harness.model.tiny.config import tiny_config


def _images(sizes: list[int]) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (s, s, 3), dtype=np.uint8)) for s in sizes]


def _vision_io(sizes: list[int], window: int):
    torch.manual_seed(0)
    config = tiny_config()
    config.vision_config.window_size = window
    model = Qwen2_5_VLForConditionalGeneration(config).float().eval()
    side = max(sizes)
    processor = load_processor(ensure_tiny_base(), min_pixels=28 * 28, max_pixels=side * side)
    batch = processor.image_processor(_images(sizes), return_tensors="pt")
    return model, batch["pixel_values"], batch["image_grid_thw"]


@pytest.mark.parametrize(
    ("sizes", "window"),
    [([112, 112, 112], 56), ([112, 140, 84], 56), ([112, 56], 112)],
    ids=["uniform-windows", "mixed-windows", "full-only"],
)
def test_batched_vision_attention_matches_stock(sizes: list[int], window: int) -> None:
    model, pixels, grid = _vision_io(sizes, window)
    visual = model.model.visual

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        x = pixels.clone().requires_grad_(True)
        out = visual(x, grid_thw=grid).pooler_output
        out = torch.cat(list(out)) if isinstance(out, (list, tuple)) else out
        out.pow(2).sum().backward()
        return out.detach(), x.grad.detach()

    ref_out, ref_grad = run()
    visual.zero_grad()
    assert patch_vision_attention(model) == config_depth(model)
    assert patch_vision_attention(model) == 0  # idempotent
    out, grad = run()
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-5)


def config_depth(model) -> int:
    return model.config.vision_config.depth


def test_window_layout_mixed_lengths_and_cache() -> None:
    cu = torch.tensor([0, 4, 8, 10, 16], dtype=torch.int32)
    layout = window_layout(cu)
    assert (layout.windows, layout.max_len, layout.uniform) == (4, 6, False)
    assert layout.valid.sum().item() == 16
    assert layout.index[layout.valid].tolist() == list(range(16))
    assert window_layout(cu) is layout
    assert window_layout(torch.tensor([0, 4, 8], dtype=torch.int32)).uniform


def test_stock_environment_switch_keeps_the_stock_forward(monkeypatch) -> None:
    monkeypatch.setenv("CXR_HARNESS_VISION_ATTENTION", "stock")
    model, _, _ = _vision_io([56], 56)
    record = apply_fast_paths(model)
    for name in ("vision_attention", "patch_embed", "vision_mlp"):
        assert record["paths"][name] == {
            "applied": False,
            "reason": "CXR_HARNESS_VISION_ATTENTION=stock",
        }
    assert not any("forward" in vars(m) for m in model.modules())  # every class forward kept


def test_linear_patch_embedding_matches_the_convolution() -> None:
    from harness.model.fastpath.patch_embed import patch_patch_embed

    model, pixels, grid = _vision_io([112, 140, 84], 56)
    embed = model.model.visual.patch_embed
    x = pixels.clone().requires_grad_(True)
    ref = embed(x)
    ref.pow(2).sum().backward()
    ref_grad, w_grad = x.grad.clone(), embed.proj.weight.grad.clone()
    embed.zero_grad()
    x.grad = None
    assert patch_patch_embed(model) == 1
    assert patch_patch_embed(model) == 0  # idempotent
    out = embed(x)
    out.pow(2).sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, ref_grad, rtol=1e-4, atol=1e-5)
    scale = float(w_grad.abs().max())  # a sum over every patch: rounding grows with it
    torch.testing.assert_close(embed.proj.weight.grad, w_grad, rtol=1e-4, atol=1e-5 * scale)


def test_patch_embedding_keeps_a_wrapped_projection() -> None:
    """A LoRA layer on patch_embed.proj (explicit target_modules) is not bypassed."""
    from peft import LoraConfig, get_peft_model

    from harness.model.fastpath.patch_embed import patch_patch_embed

    model, pixels, _ = _vision_io([56], 56)
    cfg = LoraConfig(
        r=2, lora_alpha=2, target_modules=["patch_embed.proj"], init_lora_weights=False
    )
    peft_model = get_peft_model(model, cfg)
    embed = peft_model.base_model.model.model.visual.patch_embed
    ref = embed(pixels)
    assert patch_patch_embed(peft_model) == 1
    torch.testing.assert_close(embed(pixels), ref)
    base = embed.proj.base_layer(pixels.view(-1, 3, 2, 14, 14)).view(ref.shape)
    assert not torch.allclose(base, ref)  # the LoRA term is really in the output


def test_fast_paths_record_every_vision_kind() -> None:
    model, _, _ = _vision_io([56], 56)
    n = config_depth(model)
    want = {
        "vision_attention": {"applied": True, "modules": n},
        "patch_embed": {"applied": True, "modules": 1},
        "vision_mlp": {"applied": True, "modules": n},
    }
    paths = apply_fast_paths(model)["paths"]
    assert {k: paths[k] for k in want} == want
    again = apply_fast_paths(model)["paths"]  # idempotent: the same record, nothing re-patched
    assert {k: again[k] for k in want} == want
    assert applied_fast_paths(model)["paths"] == again


def _odd_width_mlp():
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLMLP

    config = tiny_config().vision_config
    config.intermediate_size = 100  # not a multiple of 64, like the 3B's 3420
    torch.manual_seed(0)
    return Qwen2_5_VLMLP(config, bias=True).float()


def test_padded_vision_mlp_matches_stock(monkeypatch) -> None:
    from harness.model.fastpath import vision_mlp

    monkeypatch.setattr(vision_mlp, "DEVICES", ("cuda", "cpu"))
    mlp = _odd_width_mlp().requires_grad_(False)
    x = torch.randn(37, mlp.hidden_size, requires_grad=True)
    ref = mlp(x)
    (ref_grad,) = torch.autograd.grad(ref.pow(2).sum(), x)
    mlp.forward = types.MethodType(vision_mlp._aligned_forward, mlp)
    out = mlp(x)
    (grad,) = torch.autograd.grad(out.pow(2).sum(), x)
    assert mlp._harness_padded[1][0].shape == (2 * 128, mlp.hidden_size)  # 100 -> 128
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-5)
    cached = mlp._harness_padded[1][0]
    mlp(x)
    assert mlp._harness_padded[1][0] is cached  # reused while the weights are unchanged
    with torch.no_grad():
        mlp.down_proj.weight.mul_(2)  # an in-place update makes the copies again
    torch.testing.assert_close(mlp(x), type(mlp).forward(mlp, x), rtol=1e-5, atol=1e-5)


def test_padded_vision_mlp_keeps_stock_where_it_must(monkeypatch) -> None:
    from harness.model.fastpath import vision_mlp

    monkeypatch.setattr(vision_mlp, "DEVICES", ("cuda", "cpu"))
    mlp = _odd_width_mlp()  # weights that train: the stock forward, no copies
    mlp.forward = types.MethodType(vision_mlp._aligned_forward, mlp)
    mlp(torch.randn(3, mlp.hidden_size))
    assert not hasattr(mlp, "_harness_padded")
    with torch.inference_mode():  # evaluation: no gradient, so the padded forward runs
        x = torch.randn(3, mlp.hidden_size)
        torch.testing.assert_close(mlp(x), type(mlp).forward(mlp, x), rtol=1e-5, atol=1e-5)
    assert hasattr(mlp, "_harness_padded")
    del mlp._harness_padded
    monkeypatch.setattr(vision_mlp, "DEVICES", ("cuda",))  # CPU: stock
    mlp.requires_grad_(False)
    mlp(torch.randn(3, mlp.hidden_size))
    assert not hasattr(mlp, "_harness_padded")
