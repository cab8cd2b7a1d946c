"""A Qwen2.5-VL processor that needs no torchvision (images only, PIL image backend).

`Qwen2_5_VLProcessor` insists on a video processor, and the only Qwen2-VL video processor needs
torchvision; so does `Qwen2VLImageProcessor`. `ImageOnlyQwen2_5_VLProcessor` drops the video part
and always uses `Qwen2VLImageProcessorPil`. It works for the tiny preset and for real Qwen2.5-VL
checkpoints (whose saved processor class names the torchvision classes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transformers import (
    AutoProcessor,
    AutoTokenizer,
    Qwen2_5_VLConfig,
    Qwen2_5_VLProcessor,
    Qwen2VLImageProcessorPil,
)
from transformers.processing_utils import ProcessorMixin

from harness.core.errors import ModelError

PROCESSOR_CLASS_NAME = "ImageOnlyQwen2_5_VLProcessor"


class ImageOnlyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):  # noqa: N801 - mirrors the HF name
    """`Qwen2_5_VLProcessor` without the video processor; image processor is the PIL backend."""

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = getattr(tokenizer, "image_token_id", None) or (
            tokenizer.convert_tokens_to_ids(self.image_token)
        )
        self.video_token_id = getattr(tokenizer, "video_token_id", None) or (
            tokenizer.convert_tokens_to_ids(self.video_token)
        )
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    @classmethod
    def _get_arguments_from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, processor_dict: Any = None, **kwargs
    ) -> list[Any]:
        # Never go through AutoImageProcessor: a real checkpoint names the torchvision class.
        kwargs.pop("subfolder", None)
        kwargs.pop("_from_auto", None)
        kwargs.pop("trust_remote_code", None)
        pixels = {k: kwargs.pop(k) for k in ("min_pixels", "max_pixels") if k in kwargs}
        image_processor = Qwen2VLImageProcessorPil.from_pretrained(
            pretrained_model_name_or_path, **kwargs, **pixels
        )
        tokenizer = AutoTokenizer.from_pretrained(pretrained_model_name_or_path, **kwargs)
        return [image_processor, tokenizer]

    def _process_videos(self, videos: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} handles images only")


def register_processor() -> None:
    """Let `AutoProcessor` resolve saved processors of this class (idempotent).

    Registration maps the `qwen2_5_vl` config to this class for this process and makes the class
    findable by the name written into `processor_config.json`.
    """
    AutoProcessor.register(Qwen2_5_VLConfig, ImageOnlyQwen2_5_VLProcessor, exist_ok=True)


def _is_local(name_or_path: str) -> bool:
    return os.path.isdir(name_or_path) or name_or_path.startswith((".", "/", "~"))


def load_processor(
    name_or_path: str | os.PathLike,
    revision: str | None = None,
    min_pixels: int = 112 * 112,
    max_pixels: int = 112 * 112,
) -> ImageOnlyQwen2_5_VLProcessor:
    """Load the image-only processor of a local directory or hub id, with a fixed pixel budget.

    Raises `ModelError` naming the path or id when it cannot be found or loaded.
    """
    name = str(name_or_path)
    if _is_local(name) and not Path(name).expanduser().is_dir():
        raise ModelError(f"Model directory not found: {name}")
    if min_pixels > max_pixels:
        raise ModelError(f"min_pixels ({min_pixels}) > max_pixels ({max_pixels}) for {name}")
    register_processor()
    kwargs: dict[str, Any] = {"revision": revision} if revision else {}
    kwargs.update(min_pixels=int(min_pixels), max_pixels=int(max_pixels))
    try:
        processor = ImageOnlyQwen2_5_VLProcessor.from_pretrained(
            str(Path(name).expanduser()) if _is_local(name) else name, **kwargs
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"Cannot load a Qwen2.5-VL processor from {name!r}: {exc}") from exc
    size = processor.image_processor.size
    if (size.shortest_edge, size.longest_edge) != (min_pixels, max_pixels):
        raise ModelError(f"Pixel budget of {name!r} not applied: {size}")
    if processor.chat_template is None:
        processor.chat_template = getattr(processor.tokenizer, "chat_template", None)
    if processor.chat_template is None:
        raise ModelError(f"No chat template found for {name!r}")
    return processor
