"""Batched window attention for the Qwen2.5-VL vision tower.

The stock non-flash path of `Qwen2_5_VLVisionAttention` splits the packed patch sequence into
its windows (``cu_seqlens``) and calls attention once per window: at 448 px that is 16 windows per
image, so a batch of 8 images runs 128 tiny attention kernels per layer, each layer starting with
a host sync (``lengths.tolist()``), and gradient checkpointing repeats all of it during recompute.

`patch_vision_attention` replaces the forward of each vision attention module *instance* (the
class is left alone) with one that runs a single scaled-dot-product attention call per layer:

* all windows the same length (every image's side a multiple of the window, the usual case):
  a free reshape to ``(windows, heads, length, dim)``, no mask;
* mixed lengths: windows gathered into a padded ``(windows, max_length)`` layout with a key mask,
  and scattered back.

The window layout is computed once per ``cu_seqlens`` tensor (one host sync per distinct tensor per
vision forward, not per layer) and reused by every layer and by checkpoint recomputation.
Outputs equal the stock path to float tolerance; ``tests/test_vision_attention.py`` checks
outputs and gradients on the tiny model with uniform and mixed image sizes. `harness.model.fastpath`
applies it at load unless ``CXR_HARNESS_VISION_ATTENTION=stock`` keeps the stock forward (the perf
baseline).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias

from harness.model.fastpath.patching import patch_forwards

_CACHE_SIZE = 8
FLAG = "_harness_batched"  # set on every patched module


@dataclass(frozen=True)
class WindowLayout:
    """Where each window's tokens sit in the packed sequence."""

    windows: int
    max_len: int
    uniform: bool
    index: torch.Tensor | None = None  # (windows, max_len) positions, padding -> 0
    valid: torch.Tensor | None = None  # (windows, max_len) True where a real token sits


_layouts: list[tuple[weakref.ref, WindowLayout]] = []


def window_layout(cu_seqlens: torch.Tensor) -> WindowLayout:
    """The (cached) layout of one ``cu_seqlens`` tensor."""
    for ref, layout in _layouts:
        if ref() is cu_seqlens:
            return layout
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()  # the one host sync
    lengths = [n for n in lengths if n > 0]
    max_len = max(lengths)
    if all(n == max_len for n in lengths):
        layout = WindowLayout(len(lengths), max_len, True)
    else:
        device = cu_seqlens.device
        valid = (
            torch.arange(max_len, device=device)[None, :]
            < torch.tensor(lengths, device=device)[:, None]
        )
        starts = torch.tensor([0, *lengths[:-1]], device=device).cumsum(0)
        index = torch.where(valid, starts[:, None] + torch.arange(max_len, device=device), 0)
        layout = WindowLayout(len(lengths), max_len, False, index, valid)
    _layouts.append((weakref.ref(cu_seqlens), layout))
    del _layouts[:-_CACHE_SIZE]
    return layout


def _batched_forward(
    self: Any,
    hidden_states: torch.Tensor,
    cu_seqlens: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
    max_seqlen: int | None = None,
    **kwargs: Any,
) -> torch.Tensor:
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import apply_rotary_pos_emb_vision

    seq = hidden_states.shape[0]
    q, k, v = (
        self.qkv(hidden_states).reshape(seq, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    )
    cos, sin = position_embeddings
    q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)  # (seq, heads, dim)
    layout = window_layout(cu_seqlens)
    if layout.uniform:
        n, length = layout.windows, layout.max_len
        qb, kb, vb = (t.reshape(n, length, self.num_heads, -1).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(qb, kb, vb, scale=self.scaling)
        out = out.transpose(1, 2).reshape(seq, -1)
    else:
        qb, kb, vb = (t[layout.index].transpose(1, 2) for t in (q, k, v))
        mask = layout.valid[:, None, None, :]
        out = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=mask, scale=self.scaling)
        out = out.transpose(1, 2)[layout.valid].reshape(seq, -1)
    return self.proj(out)


def patch_vision_attention(model: Any) -> int:
    """Give every Qwen2.5-VL vision attention module of `model` the batched forward.

    Applies only where the model uses the ``sdpa`` (or ``eager``) attention; flash-attention
    already runs windows as one varlen call. Returns how many modules were patched; idempotent.
    """
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLVisionAttention

    def wanted(module: torch.nn.Module) -> bool:
        return isinstance(module, Qwen2_5_VLVisionAttention) and (
            module.config._attn_implementation in ("sdpa", "eager")
        )

    return patch_forwards(model.modules(), wanted, _batched_forward, FLAG)
