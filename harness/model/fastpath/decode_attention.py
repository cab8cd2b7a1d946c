"""Grouped-query attention for single-token decode steps that stays packed under torch.compile.

Qwen2.5-VL-3B's language model has 16 query heads and 2 key/value heads. For a one-token query,
transformers' sdpa path folds the 8 query heads of each group into the query-length axis
("pack GQA"), so attention reads each cached key/value head once. It does so only when *not*
compiling (``q_length == 1 and not is_torchdynamo_compiling()``): a compiled decode step instead
repeats the key/value heads 2 → 16 over the whole static cache, every layer, every step.

`packed_decode_attention` is the same computation with packing also under compilation. It is
registered as the attention implementation ``"harness_sdpa"`` (with transformers' sdpa mask) and
`decode_attention(model)` switches the language model to it for the span of a compiled
generation, then back. Anything but a one-token grouped query with a mask goes to transformers'
own sdpa function unchanged. Outputs equal the stock path to float tolerance
(``tests/test_decode_attention.py``). The switch is gated by `harness.model.fastpath.compat`: it is
not made outside the supported transformers range, and ``CXR_HARNESS_DECODE_ATTENTION=stock``
keeps the stock path (the perf baseline).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from harness.model.fastpath.compat import DECODE_PATH, skip_reason, text_config

NAME = "harness_sdpa"


def packed_decode_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature; ``(batch, 1, heads, dim)`` out for one token."""
    groups = getattr(module, "num_key_value_groups", 1)
    packable = (
        query.shape[2] == 1
        and groups > 1
        and attention_mask is not None  # without a mask, sdpa's own GQA kernel is used
        and attention_mask.shape[1] == 1  # one mask shared by all heads
        and kwargs.get("position_bias") is None
        and kwargs.get("cache") is None  # a paged cache is updated inside transformers' function
        and kwargs.get("softcap") is None  # which refuses softcap
    )
    if not packable:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    batch, heads, _, dim = query.shape
    # (batch, heads, 1, dim) -> (batch, kv_heads, groups, dim): the group's heads become rows
    packed = query.reshape(batch, heads // groups, groups, dim)
    out = F.scaled_dot_product_attention(
        packed, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling
    )
    out = out.reshape(out.shape[0], heads, 1, value.shape[-1])  # the batch sdpa broadcast to
    return out.transpose(1, 2).contiguous(), None


def register() -> None:
    """Register ``"harness_sdpa"`` with transformers' attention and mask interfaces (once)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(NAME, packed_decode_attention)
        AttentionMaskInterface.register(NAME, sdpa_mask)


@contextmanager
def decode_attention(model: Any) -> Iterator[bool]:
    """Run the language model on ``"harness_sdpa"`` inside the block, where it uses sdpa.

    Yields whether the switch was made: not where `skip_reason` gives a reason (transformers
    outside the supported range, ``CXR_HARNESS_DECODE_ATTENTION=stock``), nor for eager or flash
    attention. The previous implementation is restored on exit, also after an error. The switch
    is on the model's config, so it holds for every thread using that model: one generation per
    model at a time (as the harness runs them).
    """
    config = text_config(model)
    before = getattr(config, "_attn_implementation", None)
    if skip_reason(DECODE_PATH) is not None or before != "sdpa":
        yield False
        return
    register()
    config._attn_implementation = NAME
    try:
        yield True
    finally:
        config._attn_implementation = before
