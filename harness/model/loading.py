"""Model specs, presets and loading. The tiny preset loads through the same code as a local dir."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import BackendUnavailableError, ModelError
from harness.model.hashing import weights_hash

TINY = "tiny"
QWEN_3B = "Qwen/Qwen2.5-VL-3B-Instruct"
DEFAULT_MODEL = TINY


@dataclass(frozen=True)
class Preset:
    """Image size and evaluation settings of a model family. Trainers own their recommended
    options per family (``Trainer.model_defaults(preset.name)``)."""

    name: str
    min_pixels: int
    max_pixels: int
    eval_batch_size: int
    max_new_tokens: int


PRESETS: dict[str, Preset] = {
    # Tuned on the phantom benchmark for the tiny CPU model only; never for the real model.
    TINY: Preset(
        name=TINY,
        min_pixels=112 * 112,
        max_pixels=112 * 112,
        eval_batch_size=32,
        max_new_tokens=48,
    ),
    # 450x450 X-rays -> up to ~256 image tokens.
    "qwen2.5-vl": Preset(
        name="qwen2.5-vl",
        min_pixels=256 * 28 * 28,
        max_pixels=256 * 28 * 28,
        eval_batch_size=16,
        max_new_tokens=160,
    ),
}


@dataclass(frozen=True)
class ModelSpec:
    """What to load: the tiny preset, a hub id or a local directory."""

    model: str = DEFAULT_MODEL
    revision: str | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16

    @property
    def preset(self) -> Preset:
        return PRESETS[TINY] if self.model == TINY else PRESETS["qwen2.5-vl"]

    @property
    def pixels(self) -> tuple[int, int]:
        p = self.preset
        return (self.min_pixels or p.min_pixels, self.max_pixels or p.max_pixels)

    def resolved(self) -> dict[str, Any]:
        lo, hi = self.pixels
        return {
            "model": self.model,
            "revision": self.revision,
            "min_pixels": lo,
            "max_pixels": hi,
            "dtype": self.dtype,
            "preset": self.preset.name,
        }


def resolve_model_path(spec: ModelSpec) -> str:
    """Return a local directory or a hub id. Raise ModelError for a path that does not exist."""
    if spec.model == TINY:
        from harness.model.tiny import ensure_tiny_base

        return str(ensure_tiny_base())
    candidate = Path(spec.model).expanduser()
    if candidate.exists():
        if not (candidate / "config.json").is_file():
            raise ModelError(f"--model {spec.model!r}: directory has no config.json")
        return str(candidate)
    looks_local = spec.model.startswith((".", "/", "~")) or spec.model.count("/") != 1
    if looks_local:
        raise ModelError(
            f"--model {spec.model!r} does not exist (expected 'tiny', a local checkpoint "
            "directory, or a hub id like 'Qwen/Qwen2.5-VL-3B-Instruct')"
        )
    if _offline() and not _in_hub_cache(spec.model, spec.revision):
        raise ModelError(offline_hint(spec.model))
    return spec.model


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _in_hub_cache(repo_id: str, revision: str | None) -> bool:
    """Whether a hub checkpoint's config is in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    return isinstance(found, str)


def offline_hint(model: str) -> str:
    """The offline hub-id error: what HF_HUB_OFFLINE does and the local-directory way out."""
    name = model.rsplit("/", 1)[-1]
    return (
        f"--model {model!r} is a hub id, but HF_HUB_OFFLINE=1 forbids downloading and it is "
        "not in the local Hugging Face cache. Either unset HF_HUB_OFFLINE (with network access) "
        f"to download it, or pass a local checkpoint directory: --model ./{name} (e.g. made "
        f"with: hf download {model} --local-dir ./{name})"
    )


def torch_dtype(spec: ModelSpec) -> Any:
    import torch

    if spec.dtype == "auto":
        if spec.model != TINY and torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, spec.dtype)


def four_bit_unavailable() -> str | None:
    """Why a 4-bit (bitsandbytes) base cannot load on this machine, or None when it can."""
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        return "needs a CUDA GPU with bitsandbytes; none is available here"
    if importlib.util.find_spec("bitsandbytes") is None:
        return "needs bitsandbytes: pip install 'cxr-harness[gpu]'"
    return None


def quantization_config(spec: ModelSpec) -> Any:
    """bitsandbytes NF4 settings for QLoRA; a typed error where CUDA or bitsandbytes is missing."""
    import torch
    from transformers import BitsAndBytesConfig

    problem = four_bit_unavailable()
    if problem:
        raise BackendUnavailableError(f"4-bit loading {problem}")
    dtype = torch_dtype(spec)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype if dtype != torch.float32 else torch.bfloat16,
    )


def load_base(
    spec: ModelSpec, device: str | None = None, load_in_4bit: bool = False
) -> tuple[Any, Any]:
    """Load ``(model, processor)`` for a spec. Hub access failures name the id.

    The GPU fast paths are applied where supported (`harness.model.fastpath.apply_fast_paths`); the
    model keeps the record, read back with `harness.model.fastpath.applied_fast_paths(model)`.
    """
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from harness.model.fastpath import apply_fast_paths
    from harness.model.processing import load_processor

    path = resolve_model_path(spec)
    lo, hi = spec.pixels
    extra: dict[str, Any] = {}
    if load_in_4bit:
        extra = {"quantization_config": quantization_config(spec), "device_map": {"": 0}}
    try:
        processor = load_processor(path, spec.revision, lo, hi)
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            path,
            revision=spec.revision,
            dtype=torch_dtype(spec),
            trust_remote_code=False,
            **extra,
        )
    except ModelError:
        raise
    except (OSError, ValueError) as exc:
        if _offline() and not Path(path).is_dir():
            raise ModelError(f"{offline_hint(spec.model)}. ({exc})") from exc
        raise ModelError(f"Could not load model {spec.model!r}: {exc}") from exc
    apply_fast_paths(
        model
    )  # where supported; what applied: harness.model.fastpath.applied_fast_paths
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if not load_in_4bit:
        model.to(device)
    model.eval()
    return model, processor


def model_hash(spec: ModelSpec) -> str:
    """Identity of the base weights: a content hash for local dirs, else id@revision."""
    path = resolve_model_path(spec)
    local = Path(path)
    if local.is_dir():
        return weights_hash(local)
    return f"{spec.model}@{spec.revision or 'main'}"
