"""Generation inputs with the pixel arithmetic done by torch on the model's device.

`encode_prompts` runs the PIL image processor: rescale, normalise and patchify in numpy float32
on one CPU core, about 15 ms per 448 px image, i.e. ~1 s per batch of 64, as long as the whole
prefill on an H100. `encode_prompts_fast` keeps only what must be exact on the CPU (the
processor's own resize, only when the size changes, and the tokenizer) and moves uint8 pixels to
`device`, where rescale, normalise and patchify take well under a millisecond per image.

The output equals `encode_prompts` (token ids, masks and grids exactly; pixel values to 1e-6,
float rounding), checked on CPU by ``tests/test_fast_eval.py``; greedy answers through the static
and compiled decoders, which use it, equal the plain path's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from harness.core.errors import DataError


def _pixels(processor: Any, image: Image.Image) -> np.ndarray:
    """(3, H, W) uint8 at the processor's target size (the processor's resize if it differs)."""
    from transformers.image_utils import SizeDict
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    ip = processor.image_processor
    arr = np.asarray(image.convert("RGB") if image.mode != "RGB" else image).transpose(2, 0, 1)
    factor = ip.patch_size * ip.merge_size
    h, w = smart_resize(
        arr.shape[1],
        arr.shape[2],
        factor=factor,
        min_pixels=ip.size.shortest_edge,
        max_pixels=ip.size.longest_edge,
    )
    if (h, w) != arr.shape[1:]:
        size = SizeDict(shortest_edge=ip.size.shortest_edge, longest_edge=ip.size.longest_edge)
        arr = np.asarray(ip.resize(arr, size=size, resample=ip.resample, factor=factor))
    return np.ascontiguousarray(arr)


def _patchify(image: Any, processor: Any) -> Any:
    """(3, H, W) float tensor -> (grid_h * grid_w, 3 * t * p * p), the processor's layout."""
    ip = processor.image_processor
    p, m, t = ip.patch_size, ip.merge_size, ip.temporal_patch_size
    c, h, w = image.shape
    gh, gw = h // p, w // p
    x = image.reshape(c, gh // m, m, p, gw // m, m, p).permute(1, 4, 2, 5, 0, 3, 6)
    x = x.unsqueeze(5).expand(*x.shape[:5], t, *x.shape[5:])
    return x.reshape(gh * gw, c * t * p * p), gh, gw


def encode_prompts_fast(
    processor: Any,
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    device: Any,
    with_positions: bool = False,
) -> Any:
    """Left-padded generation inputs like `harness.model.sft.encode_prompts`, pixels made on
    `device`.

    `with_positions` adds ``position_ids`` (3, rows, length), the model's mRoPE positions
    computed on the CPU (`harness.model.fastpath.mrope`), for callers that run the forward
    themselves.
    """
    import torch
    from transformers import BatchFeature

    from harness.model.sft import render_prompt

    if len(images) != len(prompts) or any(img is None for img in images):
        raise DataError("encode_prompts_fast needs one image per prompt")
    ip = processor.image_processor
    mean = torch.tensor(ip.image_mean, dtype=torch.float32, device=device)[:, None, None]
    std = torch.tensor(ip.image_std, dtype=torch.float32, device=device)[:, None, None]
    patches, grids, texts = [], [], []
    token = processor.image_token
    for image, prompt in zip(images, prompts, strict=True):
        raw = torch.from_numpy(_pixels(processor, image)).to(device, non_blocking=True)
        x = raw.to(torch.float32) * ip.rescale_factor
        flat, gh, gw = _patchify((x - mean) / std, processor)
        patches.append(flat)
        grids.append([1, gh, gw])
        text = render_prompt(processor, prompt, True)
        texts.append(text.replace(token, token * (gh * gw // ip.merge_size**2), 1))
    batch = processor.tokenizer(texts, padding=True, padding_side="left", return_tensors="pt")
    ids = batch["input_ids"].to(device)
    out = {
        "input_ids": ids,
        "attention_mask": batch["attention_mask"].to(device),
        "mm_token_type_ids": (ids == processor.image_token_id).long(),
        "pixel_values": torch.cat(patches),
        "image_grid_thw": torch.tensor(grids, dtype=torch.long, device=device),
    }
    if with_positions:
        from harness.model.fastpath.mrope import mrope_positions

        pos, _ = mrope_positions(
            batch["input_ids"],
            batch["attention_mask"],
            grids,
            processor.image_token_id,
            ip.merge_size,
        )
        out["position_ids"] = torch.from_numpy(pos).to(device)
    return BatchFeature(out)
