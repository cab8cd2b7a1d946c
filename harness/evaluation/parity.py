"""The merge-parity check: an adapter's greedy answers before and after merging its weights."""

from __future__ import annotations

from typing import Any

from harness.evaluation.generate import GenerationConfig, generate_answers


def merge_parity(
    model: Any, processor: Any, images: list, prompts: list[str], config: GenerationConfig
) -> dict[str, Any]:
    """Greedy answers of the unmerged adapter vs merged weights on the same inputs."""
    unmerged = generate_answers(model, processor, images, prompts, config)
    merged_model = model.merge_and_unload()
    merged = generate_answers(merged_model, processor, images, prompts, config)
    differ = [i for i, (a, b) in enumerate(zip(unmerged, merged, strict=True)) if a != b]
    return {"n": len(images), "disagreements": len(differ), "indices": differ[:20]}
