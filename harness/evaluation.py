"""The one evaluation runner: batched greedy generation with the image, strict parsing, metrics.

The same function serves the final benchmark and any in-training evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.data import Sample
from harness.metrics import classification_metrics, rouge_l
from harness.parser import parse_answer

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 48
    batch_size: int = 32
    do_sample: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens,
            "batch_size": self.batch_size,
            "do_sample": self.do_sample,
            "decoding": "greedy",
        }


@dataclass
class EvalResult:
    metrics: dict[str, float]
    predictions: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def generate_answers(
    model: Any,
    processor: Any,
    images: Sequence[Any],
    prompts: Sequence[str],
    config: GenerationConfig,
    on_batch: ProgressFn | None = None,
) -> list[str]:
    """Greedy answers for (image, prompt) pairs, in order, batched with left padding."""
    import torch

    from harness.sft import encode_prompts

    answers: list[str] = []
    tokenizer = getattr(processor, "tokenizer", processor)
    device = next(model.parameters()).device
    for start in range(0, len(images), config.batch_size):
        batch_images = list(images[start : start + config.batch_size])
        batch_prompts = list(prompts[start : start + config.batch_size])
        inputs = encode_prompts(processor, batch_images, batch_prompts).to(device)
        with torch.inference_mode():
            out = model.generate(
                **inputs,
                max_new_tokens=config.max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        answers.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
        if on_batch is not None:
            on_batch(len(batch_images))
    return answers


def score(samples: Sequence[Sample], answers: Sequence[str], classes: Sequence[str]) -> EvalResult:
    """Parse answers and compute metrics; every unparseable answer counts as wrong."""
    parsed = [parse_answer(a, classes) for a in answers]
    metrics = classification_metrics([s.label for s in samples], [p.label for p in parsed], classes)
    rouges = [rouge_l(p.explanation, s.report) for p, s in zip(parsed, samples, strict=True)]
    metrics["rouge_l"] = float(np.mean(rouges)) if rouges else 0.0
    predictions = [
        {
            "id": s.id,
            "label": s.label,
            "prediction": p.label,
            "valid": p.valid,
            "invalid_reason": p.reason,
            "rouge_l": r,
            "answer": a,
        }
        for s, p, r, a in zip(samples, parsed, rouges, answers, strict=True)
    ]
    return EvalResult(metrics=metrics, predictions=predictions)


def evaluate(
    model: Any,
    processor: Any,
    samples: Sequence[Sample],
    prompt: str,
    classes: Sequence[str],
    config: GenerationConfig,
    on_batch: ProgressFn | None = None,
) -> EvalResult:
    """Generate with the image for every sample, then score. Used during and after training."""
    import time

    t0 = time.perf_counter()
    was_training = getattr(model, "training", False)
    model.eval()
    answers = generate_answers(
        model, processor, [s.image for s in samples], [prompt] * len(samples), config, on_batch
    )
    if was_training:
        model.train()
    result = score(samples, answers, classes)
    result.seconds = time.perf_counter() - t0
    return result
