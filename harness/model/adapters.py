"""Loading saved adapters and their model cards.

The card (``harness_card.json`` beside ``adapter_config.json``) records how the run loaded its
base (``base_load``: 4-bit or not), and ``load_with_adapter`` loads the base the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.atomic import write_text_atomic
from harness.core.errors import BackendUnavailableError, ModelError
from harness.model.loading import ModelSpec, four_bit_unavailable, load_base

CARD = "harness_card.json"


def read_card(adapter_dir: Path) -> dict[str, Any]:
    path = adapter_dir / CARD
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from exc


def update_card(adapter_dir: Path, **fields: Any) -> None:
    card = read_card(adapter_dir)
    card.update(fields)
    write_text_atomic(adapter_dir / CARD, json.dumps(card, indent=2, default=str) + "\n")


def write_card(
    adapter_dir: Path,
    *,
    base_model: dict[str, Any],
    trainer: str,
    options: dict[str, Any],
    resolved: dict[str, Any],
) -> None:
    """The card a trainer writes beside its saved adapter; ``base_load`` comes from
    ``resolved`` (what ran), so re-evaluation loads the base as the run did."""
    card = {
        "base_model": base_model,
        "trainer": trainer,
        "options": options,
        "resolved": resolved,
        "base_load": {
            "load_in_4bit": bool(resolved.get("load_in_4bit")),
            "quantization": resolved.get("quantization"),
        },
    }
    write_text_atomic(adapter_dir / CARD, json.dumps(card, indent=2, default=str) + "\n")


@dataclass(frozen=True)
class BaseLoad:
    """How a run loaded its base model."""

    load_in_4bit: bool = False
    quantization: dict[str, Any] | None = None
    adapter_dtype: str | None = None  # the adapter weights' dtype at the end of training


def base_load_of(card: dict[str, Any]) -> BaseLoad:
    """How to load the base for an adapter, from its card. Older cards have no ``base_load``:
    their ``resolved.load_in_4bit`` (or the qlora trainer) says; no card: full precision."""
    resolved = card.get("resolved") or {}
    load = card.get("base_load")
    if load is None:
        load = {"load_in_4bit": resolved.get("load_in_4bit", card.get("trainer") == "qlora")}
    return BaseLoad(
        load_in_4bit=bool(load.get("load_in_4bit")),
        quantization=load.get("quantization"),
        adapter_dtype=resolved.get("adapter_dtype"),
    )


def check_base_loadable(adapter_dir: Path) -> BaseLoad:
    """The adapter's base can load here the way its run loaded it; else a typed error."""
    load = base_load_of(read_card(adapter_dir))
    problem = four_bit_unavailable() if load.load_in_4bit else None
    if problem:
        raise BackendUnavailableError(
            f"--adapter {str(adapter_dir)!r}: its run loaded the base in 4-bit (bitsandbytes), "
            f"and evaluating it the same way {problem}"
        )
    return load


def check_adapter_dir(adapter_dir: Path) -> None:
    """A typed error naming the folder when it is not a saved adapter."""
    if not (adapter_dir / "adapter_config.json").is_file():
        what = "does not exist" if not adapter_dir.exists() else "has no adapter_config.json"
        raise ModelError(f"--adapter {str(adapter_dir)!r} {what}")


def attach_adapter(model: Any, adapter_dir: Path, adapter_dtype: str | None) -> Any:
    """``model`` (a loaded base) wrapped in place with the saved adapter, its LoRA weights in
    ``adapter_dtype`` (the dtype training ended with), in eval mode."""
    import torch
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, str(adapter_dir))
    if adapter_dtype:
        dtype = getattr(torch, adapter_dtype)
        for name, param in model.named_parameters():
            if ("lora_A" in name or "lora_B" in name) and param.dtype != dtype:
                param.data = param.data.to(dtype)
    model.eval()
    return model


def load_with_adapter(spec: ModelSpec, adapter_dir: Path) -> tuple[Any, Any]:
    """Base model + a saved PEFT adapter, ready to evaluate, loaded as its run loaded them:
    a 4-bit run's base in 4-bit, prepared as for k-bit training (its other weights in fp32),
    and the adapter weights in the dtype training ended with."""
    from peft import prepare_model_for_kbit_training

    check_adapter_dir(adapter_dir)
    load = check_base_loadable(adapter_dir)
    model, processor = load_base(spec, load_in_4bit=load.load_in_4bit)
    if load.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return attach_adapter(model, adapter_dir, load.adapter_dtype), processor
