"""The tiny Qwen2.5-VL preset: tokenizer, processor without torchvision, assets, generation."""

from __future__ import annotations

import json
import random
import shutil

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

from harness.core.errors import ModelError
from harness.core.rng import derive_seed
from harness.data.labels import ALL_CLASSES, PHANTOM8_CLASSES
from harness.data.phantoms import render_phantom
from harness.model.processing import (
    ImageOnlyQwen2_5_VLProcessor,
    load_processor,
    register_processor,
)
from harness.model.prompts import eval_prompt
from harness.model.sft import encode_prompts
from harness.model.tiny import TINY_DIR, ensure_tiny_base
from harness.model.tiny.config import IMAGE_PIXELS, TOKEN_IDS, tiny_config
from harness.model.tiny.tokenizer import SPECIAL_TOKENS, class_token_counts


@pytest.fixture(scope="module")
def tiny_dir():
    return ensure_tiny_base()


@pytest.fixture(scope="module")
def processor(tiny_dir):
    return load_processor(tiny_dir, None, IMAGE_PIXELS, IMAGE_PIXELS)


@pytest.fixture(scope="module")
def model(tiny_dir):
    return Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_dir, dtype=torch.float32).eval()


def test_assets_complete(tiny_dir):
    assert tiny_dir == TINY_DIR
    for name in (
        "model.safetensors",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "processor_config.json",
        "preprocessor_config.json",
        "PRETRAIN.json",
    ):
        assert (tiny_dir / name).is_file(), name
    record = json.loads((tiny_dir / "PRETRAIN.json").read_text())
    assert record["command"] == "python -m harness.model.tiny.pretrain"
    for key, threshold in record["gate_thresholds"].items():
        assert record["gate"][key] >= threshold


def test_tokenizer_roundtrip_and_special_tokens(tiny_dir):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    text = "Class: Higher_Density\nExplanation: There is a moderate left pleural effusion."
    assert tok.decode(tok(text)["input_ids"]) == text
    for token in SPECIAL_TOKENS:
        ids = tok(token, add_special_tokens=False)["input_ids"]
        assert ids == [TOKEN_IDS[token]], token
    assert tok.pad_token == "<|endoftext|>" and tok.eos_token == "<|im_end|>"
    assert 1000 <= len(tok) <= 4096
    assert max(class_token_counts(tok).values()) <= 2
    assert set(class_token_counts(tok)) == set(ALL_CLASSES)


def test_config_matches_tokenizer(tiny_dir, model):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    cfg = model.config
    assert cfg.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert cfg.video_token_id == tok.convert_tokens_to_ids("<|video_pad|>")
    assert cfg.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    assert cfg.text_config.vocab_size >= len(tok)
    assert cfg.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    n = sum(p.numel() for p in model.parameters())
    assert n < 1_000_000
    assert tiny_config().vision_config.out_hidden_size == cfg.text_config.hidden_size


def test_processor_without_torchvision(tiny_dir):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    from transformers import Qwen2VLImageProcessorPil

    proc = ImageOnlyQwen2_5_VLProcessor(
        Qwen2VLImageProcessorPil(min_pixels=IMAGE_PIXELS, max_pixels=IMAGE_PIXELS), tok
    )
    out = proc(images=[Image.new("L", (112, 112))], text=["<|image_pad|>x"], return_tensors="pt")
    assert out["image_grid_thw"].tolist() == [[1, 8, 8]]
    assert int((out["input_ids"] == proc.image_token_id).sum()) == 16


def test_auto_processor_after_registration(tiny_dir):
    register_processor()
    proc = AutoProcessor.from_pretrained(tiny_dir)
    assert isinstance(proc, ImageOnlyQwen2_5_VLProcessor)
    assert proc.chat_template


def test_load_processor_missing_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ModelError, match="nope"):
        load_processor(str(missing), None, IMAGE_PIXELS, IMAGE_PIXELS)


def test_load_processor_real_checkpoint_layout(tiny_dir, tmp_path):
    """A hub-style Qwen2.5-VL folder names the torchvision classes; we still load it."""
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_dir / name, tmp_path / name)
    template = (tiny_dir / "chat_template.jinja").read_text()
    (tmp_path / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    pre = {
        "min_pixels": 3136,
        "max_pixels": 12845056,
        "patch_size": 14,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2_5_VLProcessor",
    }
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(pre))
    proc = load_processor(str(tmp_path), None, 224 * 224, 224 * 224)
    assert isinstance(proc, ImageOnlyQwen2_5_VLProcessor)
    assert proc.image_processor.size.shortest_edge == 224 * 224
    out = proc(images=[Image.new("RGB", (300, 200))], text=["<|image_pad|>"], return_tensors="pt")
    assert out["image_grid_thw"].tolist() == [[1, 12, 18]]  # aspect kept, <= 224*224 px


def _phantoms(n: int) -> list[Image.Image]:
    labels = PHANTOM8_CLASSES
    return [render_phantom(labels[i % 8], derive_seed("test-tiny", i)).image for i in range(n)]


def _generate(model, processor, images, prompts) -> list[str]:
    enc = encode_prompts(processor, images, prompts)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=24, do_sample=False)
    return processor.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def test_generate_batch_of_two_images(model, processor):
    texts = _generate(model, processor, _phantoms(2), ["Describe what is drawn in this image."] * 2)
    assert len(texts) == 2 and all(isinstance(t, str) and t.strip() for t in texts)


def test_left_padding_batch_invariant(model, processor):
    """Greedy output of each row is the same alone (bs=1) and in a left-padded batch (bs=3)."""
    images = _phantoms(3)
    rng = random.Random(0)
    prompts = [
        "Describe the lungs, heart and diaphragm in this image.",
        "Assess the image quality.",
    ]
    prompts.append(eval_prompt(PHANTOM8_CLASSES))
    rng.shuffle(prompts)
    batched = _generate(model, processor, images, prompts)
    single = [
        _generate(model, processor, [im], [p])[0] for im, p in zip(images, prompts, strict=True)
    ]
    assert batched == single


def test_untrained_base_does_not_answer_in_class_format(model, processor):
    texts = _generate(model, processor, _phantoms(4), [eval_prompt(PHANTOM8_CLASSES)] * 4)
    assert not any(t.startswith("Class:") for t in texts)


def test_pretraining_data_never_teaches_the_answer_format():
    from harness.model.tiny.pretrain import image_example, phantom_pool, text_example

    pool = phantom_pool("test", 6)
    rng = random.Random(0)
    eval_text = eval_prompt(PHANTOM8_CLASSES)
    words = {w.lower() for c in ALL_CLASSES for w in (c, c.replace("_", " "))}
    for _ in range(120):
        image, prompt, answer = image_example(rng, pool)
        assert image is not None and prompt != eval_text
        assert "Class:" not in answer and not any(w in answer.lower() for w in words)
        image, prompt, answer = text_example(rng, pool)
        assert image is None and prompt != eval_text and "Class:" not in answer
