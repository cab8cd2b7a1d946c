"""Which backend trains a LoRA-family configuration, and what the loaded model actually is.

The decision reads the options first: a backend that cannot honour an option refuses it,
naming both, and ``backend=auto`` never picks such a backend (it picks hf and records why).
Only then does it look at the machine (CUDA, unsloth, bitsandbytes), so the option check is
testable on any machine by passing the machine's facts in.
"""

from __future__ import annotations

import importlib.util
from typing import Any, NamedTuple

from cxr_harness_plugins.trainers.unsloth_backend import unsloth_cannot_honour, unsloth_conflict
from harness.core.errors import BackendUnavailableError, OptionError
from harness.model.loading import four_bit_unavailable


class BackendChoice(NamedTuple):
    backend: str  # "hf" | "unsloth"
    reason: str  # recorded in resolved["backend_reason"]


def choose_backend(
    opts: Any,
    peft_extra: dict[str, Any],
    *,
    cuda: bool,
    unsloth: bool,
    unsloth_conflict: str | None = None,
) -> BackendChoice:
    """Pick the backend from the options and the machine's facts (``cuda``: a CUDA GPU is
    present; ``unsloth``: the package is installed; ``unsloth_conflict``: why the installed
    unsloth does not support the installed libraries, or None). Typed errors name the option."""
    dropped = unsloth_cannot_honour(opts, peft_extra)
    if opts.backend == "unsloth":
        if dropped:
            machine = "" if cuda else "; it also needs a CUDA GPU, and none is available here"
            raise OptionError(
                f"trainer.backend=unsloth cannot honour {', '.join(dropped)}{machine}; "
                "use trainer.backend=hf (or auto, which picks hf for these)"
            )
        if not cuda:
            raise BackendUnavailableError(
                "trainer.backend=unsloth needs a CUDA GPU; none is available here"
            )
        if not unsloth:
            raise BackendUnavailableError(
                "trainer.backend=unsloth: unsloth is not installed (pip install unsloth)"
            )
        if unsloth_conflict:
            raise BackendUnavailableError(
                f"trainer.backend=unsloth: {unsloth_conflict}; use trainer.backend=hf "
                "(or auto, which picks hf here)"
            )
        return BackendChoice("unsloth", "asked for (trainer.backend=unsloth)")
    if opts.backend == "hf":
        return BackendChoice("hf", "asked for (trainer.backend=hf)")
    if not cuda:
        return BackendChoice("hf", "auto: no CUDA GPU here")
    if not unsloth:
        return BackendChoice("hf", "auto: unsloth is not installed")
    if dropped:
        return BackendChoice("hf", f"auto: unsloth cannot honour {', '.join(dropped)}")
    if unsloth_conflict:
        return BackendChoice("hf", f"auto: {unsloth_conflict}")
    return BackendChoice("unsloth", "auto: a CUDA GPU and unsloth are available")


def resolve_backend(opts: Any, peft_extra: dict[str, Any]) -> BackendChoice:
    """The choice on this machine; 4-bit without CUDA or bitsandbytes is a typed error."""
    import torch

    installed = importlib.util.find_spec("unsloth") is not None
    choice = choose_backend(
        opts,
        peft_extra,
        cuda=torch.cuda.is_available(),
        unsloth=installed,
        unsloth_conflict=unsloth_conflict() if installed else None,
    )
    if opts.load_in_4bit:
        problem = four_bit_unavailable()
        if problem:
            raise BackendUnavailableError(f"trainer.load_in_4bit (4-bit / QLoRA) {problem}")
    return choice


def precision_flags(opts: Any) -> tuple[bool, bool]:
    """``(bf16, fp16)`` mixed-precision flags for the trainer."""
    import torch

    cuda = torch.cuda.is_available()
    bf16 = opts.precision == "bf16" or (
        opts.precision == "auto" and cuda and torch.cuda.is_bf16_supported()
    )
    fp16 = opts.precision == "fp16" or (opts.precision == "auto" and cuda and not bf16)
    return bf16, fp16


def precision_name(opts: Any) -> str:
    bf16, fp16 = precision_flags(opts)
    return "bf16" if bf16 else "fp16" if fp16 else "fp32"


def is_4bit(model: Any) -> bool:
    """Whether any linear layer of ``model`` is a bitsandbytes 4-bit layer (PEFT-wrapped too)."""
    return any(type(m).__name__ == "Linear4bit" for m in model.modules())


def quantization_of(model: Any) -> dict[str, Any] | None:
    """The 4-bit settings the loaded base carries, or None for a full-precision base."""
    if not is_4bit(model):
        return None
    config = getattr(getattr(model, "config", None), "quantization_config", None)
    if config is not None and not isinstance(config, dict):
        config = config.to_dict()
    config = config or {}
    return {
        "quant_type": config.get("bnb_4bit_quant_type"),
        "double_quant": config.get("bnb_4bit_use_double_quant"),
        "compute_dtype": str(config.get("bnb_4bit_compute_dtype")).removeprefix("torch."),
    }


def base_dtype(model: Any) -> str:
    """The floating dtype of the loaded base's (non-adapter) weights, e.g. ``float32``."""
    for name, param in model.named_parameters():
        if param.is_floating_point() and "lora_" not in name and "modules_to_save" not in name:
            return str(param.dtype).removeprefix("torch.")
    return "unknown"


def adapter_dtype(model: Any) -> str | None:
    """The dtype of the LoRA A/B weights (TRL keeps a 4-bit model's adapter in bf16)."""
    for name, param in model.named_parameters():
        if "lora_A" in name:
            return str(param.dtype).removeprefix("torch.")
    return None


def checkpointing_on(model: Any) -> bool:
    return any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules())


def check_loaded_as_asked(model: Any, opts: Any, backend: str) -> None:
    """A backend that loaded the base otherwise than asked (4-bit) stops the run, loudly."""
    loaded = is_4bit(model)
    if loaded != opts.load_in_4bit:
        raise BackendUnavailableError(
            f"trainer.backend={backend} loaded the base {'in' if loaded else 'without'} 4-bit "
            f"although trainer.load_in_4bit={str(opts.load_in_4bit).lower()}; "
            "use trainer.backend=hf"
        )
