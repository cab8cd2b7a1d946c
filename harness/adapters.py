"""Loading saved adapters, their model cards, and the merge-parity check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.atomic import write_text_atomic
from harness.errors import ModelError
from harness.evaluation import GenerationConfig, generate_answers
from harness.modeling import ModelSpec, load_base

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


def check_adapter_dir(adapter_dir: Path) -> None:
    """A typed error naming the folder when it is not a saved adapter."""
    if not (adapter_dir / "adapter_config.json").is_file():
        what = "does not exist" if not adapter_dir.exists() else "has no adapter_config.json"
        raise ModelError(f"--adapter {str(adapter_dir)!r} {what}")


def load_with_adapter(spec: ModelSpec, adapter_dir: Path) -> tuple[Any, Any]:
    """Base model + a saved PEFT adapter, ready to evaluate."""
    from peft import PeftModel

    check_adapter_dir(adapter_dir)
    model, processor = load_base(spec)
    model = PeftModel.from_pretrained(model, str(adapter_dir))
    model.eval()
    return model, processor


def merge_parity(
    model: Any, processor: Any, images: list, prompts: list[str], config: GenerationConfig
) -> dict[str, Any]:
    """Greedy answers of the unmerged adapter vs merged weights on the same inputs."""
    unmerged = generate_answers(model, processor, images, prompts, config)
    merged_model = model.merge_and_unload()
    merged = generate_answers(merged_model, processor, images, prompts, config)
    differ = [i for i, (a, b) in enumerate(zip(unmerged, merged, strict=True)) if a != b]
    return {"n": len(images), "disagreements": len(differ), "indices": differ[:20]}
