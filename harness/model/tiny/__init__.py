"""The tiny Qwen2.5-VL preset: a locally built, pre-trained checkpoint for offline tests.

`TINY_DIR` loads exactly like a local real checkpoint:
`Qwen2_5_VLForConditionalGeneration.from_pretrained(TINY_DIR)` and
`harness.model.processing.load_processor(TINY_DIR, None, 112 * 112, 112 * 112)`.
"""

from __future__ import annotations

from pathlib import Path

TINY_DIR = Path(__file__).resolve().parent / "assets"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "processor_config.json")


def ensure_tiny_base() -> Path:
    """The assets directory, pre-training the tiny base first if any file is missing."""
    if not all((TINY_DIR / name).is_file() for name in REQUIRED_FILES):
        from harness.model.tiny.pretrain import pretrain

        pretrain(TINY_DIR)
    return TINY_DIR
