"""Chat formatting, the completion-only collator and generation encoding (tiny tokenizer)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from harness.core.errors import DataError
from harness.model.processing import load_processor
from harness.model.prompts import SYSTEM_PROMPT, eval_prompt, format_answer
from harness.model.sft import (
    IGNORE_INDEX,
    build_messages,
    collate_sft,
    encode_prompts,
    render_prompt,
)
from harness.model.tiny import ensure_tiny_base
from harness.model.tiny.config import IMAGE_PIXELS, IMAGE_TOKENS

CLASSES = ("Normal", "Higher_Density")


@pytest.fixture(scope="module")
def processor():
    return load_processor(ensure_tiny_base(), None, IMAGE_PIXELS, IMAGE_PIXELS)


def _image(value: int = 100) -> Image.Image:
    return Image.new("L", (112, 112), value)


def test_build_messages_structure():
    msgs = build_messages("Describe.", image=True, answer="Class: Normal")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
    assert msgs[0]["content"][0]["text"] == SYSTEM_PROMPT
    assert msgs[1]["content"] == [{"type": "image"}, {"type": "text", "text": "Describe."}]
    assert msgs[2]["content"][0]["text"] == "Class: Normal"
    no_image = build_messages("Hi", image=False)
    assert len(no_image) == 2 and no_image[1]["content"] == [{"type": "text", "text": "Hi"}]


def test_chat_template_renders_image_placeholder(processor):
    text = render_prompt(processor, "Describe.", image=True)
    assert "<|vision_start|><|image_pad|><|vision_end|>Describe.<|im_end|>" in text
    assert text.startswith(f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n")
    assert text.endswith("<|im_start|>assistant\n")
    assert "<|image_pad|>" not in render_prompt(processor, "Describe.", image=False)


def test_collate_masks_all_but_answer_and_end_token(processor):
    answers = [
        format_answer("Normal", "The lungs are clear."),
        format_answer("Higher_Density", "x"),
    ]
    examples = [
        (_image(), eval_prompt(CLASSES), answers[0]),
        (None, "A much longer text-only prompt that pads the other row.", answers[1]),
    ]
    batch = collate_sft(processor, examples)
    assert set(batch) >= {"input_ids", "attention_mask", "labels", "pixel_values", "image_grid_thw"}
    assert batch["labels"].shape == batch["input_ids"].shape
    assert batch["image_grid_thw"].tolist() == [[1, 8, 8]]
    assert int((batch["input_ids"] == processor.image_token_id).sum()) == IMAGE_TOKENS
    tok = processor.tokenizer
    for i, answer in enumerate(answers):
        kept = batch["labels"][i][batch["labels"][i] != IGNORE_INDEX]
        assert tok.decode(kept.tolist()) == answer + "<|im_end|>"
        # Right padding: real tokens first, and padding is never a target.
        mask = batch["attention_mask"][i]
        length = int(mask.sum())
        assert mask[:length].all() and not mask[length:].any()
        assert (batch["labels"][i][length:] == IGNORE_INDEX).all()
    # Image and prompt tokens are never targets.
    assert not (batch["labels"] == processor.image_token_id).any()


def test_collate_text_only_batch_has_no_pixels(processor):
    batch = collate_sft(processor, [(None, "Write a report.", "The lungs are clear.")])
    assert "pixel_values" not in batch and "image_grid_thw" not in batch
    kept = batch["labels"][0][batch["labels"][0] != IGNORE_INDEX]
    assert processor.tokenizer.decode(kept.tolist()) == "The lungs are clear.<|im_end|>"


def test_collate_rejects_empty(processor):
    with pytest.raises(DataError):
        collate_sft(processor, [])


def test_encode_prompts_left_pads(processor):
    prompts = ["Short.", eval_prompt(CLASSES)]
    enc = encode_prompts(processor, [_image(50), _image(200)], prompts)
    mask = enc["attention_mask"]
    assert mask[1].all() and not mask[0, 0]
    assert mask[0, -1] and mask[0].tolist() == sorted(mask[0].tolist())  # zeros first
    header = processor.tokenizer("<|im_start|>assistant\n")["input_ids"]
    for row in enc["input_ids"].tolist():
        assert row[-len(header) :] == header
    assert enc["pixel_values"].shape[0] == 2 * 64
    assert "mm_token_type_ids" in enc
    assert isinstance(enc["input_ids"], torch.Tensor)


def test_encode_prompts_length_mismatch(processor):
    with pytest.raises(DataError):
        encode_prompts(processor, [None], ["a", "b"])
