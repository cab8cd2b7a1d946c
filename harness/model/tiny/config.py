"""The tiny Qwen2.5-VL architecture: the real model class, a few hundred thousand weights."""

from __future__ import annotations

from transformers import GenerationConfig, Qwen2_5_VLConfig

from harness.model.tiny.tokenizer import SPECIAL_TOKENS

IMAGE_SIZE = 112  # phantoms are rendered at 112x112
PATCH_SIZE = 14
SPATIAL_MERGE = 2
# min_pixels == max_pixels == 112*112 -> an 8x8 patch grid -> 16 merged image tokens.
IMAGE_PIXELS = IMAGE_SIZE * IMAGE_SIZE
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE // SPATIAL_MERGE) ** 2
VOCAB_SIZE = 2048  # upper bound of the BPE; the model uses len(tokenizer) rounded up to 64

TOKEN_IDS: dict[str, int] = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
PAD_ID = TOKEN_IDS["<|endoftext|>"]
EOS_ID = TOKEN_IDS["<|im_end|>"]

TEXT_HIDDEN = 96
TEXT_HEADS = 4
TEXT_LAYERS = 2
VISION_HIDDEN = 64
VISION_HEADS = 4
VISION_DEPTH = 2


def tiny_config(vocab_size: int = VOCAB_SIZE) -> Qwen2_5_VLConfig:
    """The tiny preset's architecture (same model class as Qwen2.5-VL-3B)."""
    head_dim = TEXT_HIDDEN // TEXT_HEADS
    half = head_dim // 2
    # Qwen's 3B split is [16, 24, 24] of 64; keep the same temporal/height/width proportions.
    mrope = [half // 4, 3 * half // 8, half - half // 4 - 3 * half // 8]
    text_config = {
        "vocab_size": vocab_size,
        "hidden_size": TEXT_HIDDEN,
        "intermediate_size": 3 * TEXT_HIDDEN,
        "num_hidden_layers": TEXT_LAYERS,
        "num_attention_heads": TEXT_HEADS,
        "num_key_value_heads": TEXT_HEADS // 2,
        "hidden_act": "silu",
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6,
        "use_sliding_window": False,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope},
        "bos_token_id": PAD_ID,
        "eos_token_id": EOS_ID,
        "pad_token_id": PAD_ID,
        "tie_word_embeddings": True,
    }
    vision_config = {
        "depth": VISION_DEPTH,
        "hidden_size": VISION_HIDDEN,
        "intermediate_size": 2 * VISION_HIDDEN,
        "num_heads": VISION_HEADS,
        "in_channels": 3,
        "patch_size": PATCH_SIZE,
        "spatial_merge_size": SPATIAL_MERGE,
        "temporal_patch_size": 2,
        # One window covers the whole 112x112 image, so windowed and full attention agree.
        "window_size": IMAGE_SIZE,
        "fullatt_block_indexes": [VISION_DEPTH - 1],
        "out_hidden_size": TEXT_HIDDEN,
        "tokens_per_second": 2,
    }
    return Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=vision_config,
        tie_word_embeddings=True,
        **special_token_ids(),
    )


def special_token_ids() -> dict[str, int]:
    """The tokenizer's special-token ids as Qwen2_5_VLConfig keyword arguments."""
    return {
        "image_token_id": TOKEN_IDS["<|image_pad|>"],
        "video_token_id": TOKEN_IDS["<|video_pad|>"],
        "vision_start_token_id": TOKEN_IDS["<|vision_start|>"],
        "vision_end_token_id": TOKEN_IDS["<|vision_end|>"],
        "bos_token_id": PAD_ID,
        "eos_token_id": EOS_ID,
        "pad_token_id": PAD_ID,
    }


def tiny_generation_config() -> GenerationConfig:
    return GenerationConfig(
        do_sample=False,
        eos_token_id=[EOS_ID, PAD_ID],
        pad_token_id=PAD_ID,
        bos_token_id=PAD_ID,
        max_new_tokens=64,
    )
