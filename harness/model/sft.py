"""Chat formatting and the completion-only SFT collator shared by pre-training and trainers.

Training batches are right-padded; generation batches are left-padded. Both set the side
explicitly on every call, so a processor's saved default never matters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image
from transformers import BatchFeature

from harness.core.errors import DataError
from harness.model.prompts import SYSTEM_PROMPT

IGNORE_INDEX = -100
ASSISTANT_HEADER = "<|im_start|>assistant\n"
END_OF_TURN = "<|im_end|>"

Example = tuple[Image.Image | None, str, str]


def build_messages(prompt: str, image: bool, answer: str | None = None) -> list[dict[str, Any]]:
    """System + user (optional image, then text) [+ assistant answer] messages."""
    user: list[dict[str, Any]] = [{"type": "image"}] if image else []
    user.append({"type": "text", "text": prompt})
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {"role": "user", "content": user},
    ]
    if answer is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages


def render_prompt(processor: Any, prompt: str, image: bool) -> str:
    """The chat text up to and including the assistant header (generation prompt)."""
    return processor.apply_chat_template(
        build_messages(prompt, image), tokenize=False, add_generation_prompt=True
    )


def render_example(processor: Any, prompt: str, image: bool, answer: str) -> str:
    """Prompt + answer + end-of-turn; checked to extend the generation prompt exactly."""
    head = render_prompt(processor, prompt, image)
    full = processor.apply_chat_template(build_messages(prompt, image, answer), tokenize=False)
    if not full.startswith(head + answer):
        raise DataError("The chat template does not render the answer right after the prompt")
    return full


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def _token_ids(processor: Any, text: str) -> list[int]:
    return processor.tokenizer(text, add_special_tokens=False)["input_ids"]


def _find_last(row: list[int], pattern: list[int], end: int) -> int:
    """Index just past the last occurrence of `pattern` in row[:end], or -1."""
    n = len(pattern)
    for start in range(end - n, -1, -1):
        if row[start : start + n] == pattern:
            return start + n
    return -1


def collate_sft(processor: Any, examples: Sequence[Example]) -> dict[str, torch.Tensor]:
    """Tokenize (image, prompt, answer) examples; loss only on answer tokens + end-of-turn.

    Returns input_ids, attention_mask, labels, mm_token_type_ids (transformers 5 needs it for the
    image tokens' 3D positions) and, when any example has an image, pixel_values and
    image_grid_thw. Right padding; padded positions and everything up to the assistant header
    (system, user text, image tokens) are labelled -100, as is the newline after end-of-turn.
    """
    if not examples:
        raise DataError("collate_sft needs at least one example")
    texts = [render_example(processor, p, img is not None, a) for img, p, a in examples]
    images = [_rgb(img) for img, _, _ in examples if img is not None]
    batch = processor(
        text=texts,
        images=images or None,
        padding=True,
        padding_side="right",
        return_tensors="pt",
    )
    header = _token_ids(processor, ASSISTANT_HEADER)
    end_id = processor.tokenizer.convert_tokens_to_ids(END_OF_TURN)
    input_ids = batch["input_ids"]
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    for i, row in enumerate(input_ids.tolist()):
        length = int(batch["attention_mask"][i].sum())
        start = _find_last(row, header, length)
        if start < 0:
            raise DataError(f"Assistant header not found in training example {i}")
        ends = [j for j in range(start, length) if row[j] == end_id]
        if not ends:
            raise DataError(f"End-of-turn token missing after the answer in example {i}")
        labels[i, start : ends[0] + 1] = input_ids[i, start : ends[0] + 1]
    out = {
        "input_ids": input_ids,
        "attention_mask": batch["attention_mask"],
        "labels": labels,
    }
    if images:
        out["pixel_values"] = batch["pixel_values"]
        out["image_grid_thw"] = batch["image_grid_thw"]
    if "mm_token_type_ids" in batch:  # transformers 5 needs it for the 3D (M-RoPE) positions
        out["mm_token_type_ids"] = batch["mm_token_type_ids"]
    return out


def encode_prompts(
    processor: Any, images: Sequence[Image.Image | None], prompts: Sequence[str]
) -> BatchFeature:
    """Left-padded generation inputs (add_generation_prompt=True) for `model.generate`.

    Pass the whole BatchFeature to generate (`model.generate(**batch, ...)`): its
    mm_token_type_ids are needed for the image tokens' 3D positions.
    """
    if len(images) != len(prompts):
        raise DataError(f"{len(images)} images but {len(prompts)} prompts")
    texts = [
        render_prompt(processor, p, img is not None) for img, p in zip(images, prompts, strict=True)
    ]
    rgb = [_rgb(img) for img in images if img is not None]
    batch = processor(
        text=texts,
        images=rgb or None,
        padding=True,
        padding_side="left",
        return_tensors="pt",
    )
    return batch
