"""The real Qwen2.5-VL-3B-Instruct architecture with random weights (no weights can be fetched).

``write_random_checkpoint(dir)`` writes a local checkpoint folder with the public 3B config and
the embedded tiny tokenizer/processor (special-token ids remapped into the config), so the
harness loads it through exactly the code path of a real local checkpoint.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# Public config of Qwen/Qwen2.5-VL-3B-Instruct (shapes only).
TEXT = {
    "vocab_size": 151936,
    "hidden_size": 2048,
    "intermediate_size": 11008,
    "num_hidden_layers": 36,
    "num_attention_heads": 16,
    "num_key_value_heads": 2,
    "hidden_act": "silu",
    "max_position_embeddings": 128000,
    "rms_norm_eps": 1e-6,
    "use_sliding_window": False,
    "rope_parameters": {
        "rope_type": "default",
        "rope_theta": 1000000.0,
        "mrope_section": [16, 24, 24],
    },
    "tie_word_embeddings": True,
}
VISION = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "in_channels": 3,
    "out_hidden_size": 2048,
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "tokens_per_second": 2,
    "hidden_act": "silu",
}


def write_random_checkpoint(out: Path, dtype: str = "bfloat16", seed: int = 0) -> Path:
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from harness.model.tiny import ensure_tiny_base
    from harness.model.tiny.config import EOS_ID, PAD_ID, special_token_ids

    tiny = ensure_tiny_base()
    out.mkdir(parents=True, exist_ok=True)
    config = Qwen2_5_VLConfig(
        text_config={
            **TEXT,
            "bos_token_id": PAD_ID,
            "eos_token_id": EOS_ID,
            "pad_token_id": PAD_ID,
        },
        vision_config=VISION,
        tie_word_embeddings=True,
        **special_token_ids(),
    )
    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(config).to(getattr(torch, dtype))
    model.save_pretrained(out, safe_serialization=True)
    del model
    for f in tiny.iterdir():
        if f.is_file() and not f.name.startswith(("model", "config", "PRETRAIN")):
            shutil.copy(f, out / f.name)
    return out
