"""The Qwen2.5-VL vision MLP with its hidden width padded to a multiple of 64 for the GEMMs.

The vision tower's MLP is 1280 -> 3420 -> 1280. A bf16 row of 3420 values is 6,840 bytes, not a
multiple of 16, so cuBLAS cannot use Hopper's TMA kernels for these three products and falls
back to sm80 CUTLASS kernels: on an H200 they ran at ~250 TFLOP/s and took 225 of the 490 ms of
a 64-image vision forward (``perf/gpu_profile.py``). `patch_vision_mlp` gives each vision MLP
*instance* a forward that uses zero-padded copies of its weights (gate and up fused into one
product, hidden width 3456): the padded units compute silu(0) * 0 = 0 and their down-projection
columns are zero, so the output is the same function; only float rounding differs.

The padded copies are made once per weight version (an in-place update or a new tensor makes
them again) and cost one extra copy of the vision MLP weights (0.84 GB for the 3B model). The
stock forward runs wherever the padding would change behaviour or cost more than it saves: a
weight that would get a gradient here (grad enabled and ``requires_grad``), a projection that
something has wrapped (a LoRA layer, a quantized layer), a width that is already a multiple of
64, or a CPU. `harness.model.fastpath` applies it at load unless
``CXR_HARNESS_VISION_ATTENTION=stock``
keeps the stock forward everywhere (the perf baseline).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias

from harness.model.fastpath.patching import patch_forwards

FLAG = "_harness_aligned"  # set on every patched module
MULTIPLE = 64
DEVICES = ("cuda",)  # where the padded forward runs (the tests add "cpu" to cover it)


def _padded(self: Any, width: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    g, u, d = self.gate_proj, self.up_proj, self.down_proj
    parts = [g.weight, u.weight, d.weight, g.bias, u.bias]
    key = tuple((p.data_ptr(), p._version) if p is not None else None for p in parts)
    cached = getattr(self, "_harness_padded", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    hidden, n = g.weight.shape[1], g.weight.shape[0]
    w_gu = g.weight.new_zeros(2 * width, hidden)
    w_gu[:n], w_gu[width : width + n] = g.weight, u.weight
    b_gu = None
    if g.bias is not None:
        b_gu = g.bias.new_zeros(2 * width)
        b_gu[:n], b_gu[width : width + n] = g.bias, u.bias
    w_d = d.weight.new_zeros(d.weight.shape[0], width)
    w_d[:, :n] = d.weight
    self._harness_padded = (key, (w_gu, b_gu, w_d))
    return w_gu, b_gu, w_d


def _aligned_forward(self: Any, hidden_state: torch.Tensor) -> torch.Tensor:
    g, u, d = self.gate_proj, self.up_proj, self.down_proj
    n = g.weight.shape[0] if type(g) is torch.nn.Linear else 0
    plain = all(type(m) is torch.nn.Linear for m in (g, u, d))
    if (
        not plain
        or n % MULTIPLE == 0
        or hidden_state.device.type not in DEVICES
        or (
            torch.is_grad_enabled()
            and any(p.requires_grad for m in (g, u, d) for p in m.parameters())
        )
        or (g.bias is None) != (u.bias is None)
    ):
        return type(self).forward(self, hidden_state)
    width = -(-n // MULTIPLE) * MULTIPLE
    with torch.no_grad():
        w_gu, b_gu, w_d = _padded(self, width)
    gate, up = F.linear(hidden_state, w_gu, b_gu).chunk(2, dim=-1)
    return F.linear(self.act_fn(gate) * up, w_d, d.bias)


def patch_vision_mlp(model: Any) -> int:
    """Give every vision-tower MLP of `model` the padded forward; returns how many. Idempotent."""
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
        Qwen2_5_VisionTransformerPretrainedModel,
        Qwen2_5_VLMLP,
    )

    towers = [m for m in model.modules() if isinstance(m, Qwen2_5_VisionTransformerPretrainedModel)]
    mlps = (m for tower in towers for m in tower.modules())
    return patch_forwards(mlps, lambda m: isinstance(m, Qwen2_5_VLMLP), _aligned_forward, FLAG)
