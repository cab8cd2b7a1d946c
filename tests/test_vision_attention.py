"""The batched vision window attention equals the stock per-window loop (outputs and gradients)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Qwen2_5_VLForConditionalGeneration

from harness.processing import load_processor
from harness.tiny import ensure_tiny_base
from harness.tiny.config import tiny_config
from harness.vision_attention import patch_vision_attention, window_layout


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
    assert patch_vision_attention(model) == 0
