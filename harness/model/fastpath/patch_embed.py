"""The Qwen2.5-VL patch embedding as one matrix product instead of a 3-D convolution.

`Qwen2_5_VisionPatchEmbed` projects each flattened ``3 x 2 x 14 x 14`` patch with an
``nn.Conv3d`` whose stride equals its kernel. That is a plain linear map of the 1,176 patch values,
but cuDNN runs such a convolution with a slow generic kernel on several GPU/dtype pairs (reported
as 10-60x slower than the equivalent GEMM on H100/H20 in bf16). `patch_patch_embed` gives each
patch-embedding module *instance* a forward that multiplies by the same weight, viewed as
``(embed_dim, 1176)``: no weight is copied or renamed, so checkpoints, adapters and merges are
untouched.

Where something has replaced the convolution (a LoRA layer on ``patch_embed.proj`` from an explicit
``target_modules``, a quantized layer), the stock forward runs instead, so nothing is bypassed.
Outputs equal the convolution to float rounding (``tests/test_vision_attention.py``).
`harness.model.fastpath` applies it at load unless ``CXR_HARNESS_VISION_ATTENTION=stock`` keeps the
stock forward (the perf baseline), as it does for the vision attention.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias

from harness.model.fastpath.patching import patch_forwards

FLAG = "_harness_linear"  # set on every patched module


def _linear_forward(self: Any, hidden_states: torch.Tensor) -> torch.Tensor:
    proj = self.proj
    if type(proj) is not torch.nn.Conv3d or proj.stride != proj.kernel_size:
        return type(self).forward(self, hidden_states)
    weight = proj.weight
    flat = hidden_states.reshape(-1, weight[0].numel()).to(weight.dtype)
    return F.linear(flat, weight.reshape(weight.shape[0], -1), proj.bias)


def patch_patch_embed(model: Any) -> int:
    """Give every Qwen2.5-VL patch embedding of `model` the matrix-product forward.

    Returns how many modules were patched; idempotent.
    """
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionPatchEmbed

    return patch_forwards(
        model.modules(),
        lambda m: isinstance(m, Qwen2_5_VisionPatchEmbed),
        _linear_forward,
        FLAG,
    )
