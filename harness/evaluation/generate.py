"""The one evaluation runner: batched greedy generation with the image, strict parsing, metrics.

The same function serves the final benchmark and any in-training evaluation. Two scorings:

* ``generate`` (default): greedy answers, parsed strictly; Macro-F1, accuracy and ROUGE-L.
* ``likelihood``: the class label with the highest log-likelihood after the prompt
  (`harness.evaluation.likelihood`); classification metrics only, ROUGE-L is not reported.
* ``both``: the generated answers and their metrics, and beside them the likelihood-scored
  label of every image with ``likelihood_macro_f1`` and ``likelihood_accuracy``: format
  (does the model write ``Class:``?) apart from knowledge (does it rank the right label first?).

Decoding (``generate`` only): ``plain`` is HF `generate` with a dynamic KV cache; ``static``
uses a static cache, prompts padded to a multiple of 64 tokens and every batch padded to the
batch size, so shapes never change; ``compiled`` adds a compiled decode step (CUDA graphs) on top
of ``static`` and needs a CUDA GPU. Greedy answers are the same under all three
(``tests/test_fast_eval.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from harness.core.errors import BackendUnavailableError, OptionError
from harness.data.sample import Sample
from harness.evaluation.metrics import classification_metrics, rouge_l
from harness.evaluation.parser import parse_answer
from harness.evaluation.result import EvalResult, combine_scorings

ProgressFn = Callable[[int], None]
SCORINGS = ("generate", "likelihood", "both")
DECODINGS = ("plain", "static", "compiled")


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 48
    batch_size: int = 32
    do_sample: bool = False
    scoring: str = "generate"
    decoding: str = "plain"

    def __post_init__(self) -> None:
        if self.scoring == "likelihood":  # no decoding happens: one setting, one cache key
            object.__setattr__(self, "decoding", "plain")
        if self.scoring not in SCORINGS:
            raise OptionError(f"--scoring {self.scoring!r}: expected one of {', '.join(SCORINGS)}")
        if self.decoding not in DECODINGS:
            raise OptionError(
                f"--decoding {self.decoding!r}: expected one of {', '.join(DECODINGS)}"
            )
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise OptionError("--eval-batch-size and --max-new-tokens must be at least 1")

    def part(self, scoring: str) -> GenerationConfig:
        """This configuration with one scoring (the two halves of ``both``)."""
        return replace(self, scoring=scoring)

    @property
    def parts(self) -> tuple[str, ...]:
        """The scorings that run: ``("generate", "likelihood")`` for ``both``."""
        return ("generate", "likelihood") if self.scoring == "both" else (self.scoring,)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "batch_size": self.batch_size,
            "do_sample": self.do_sample,
            "decoding": "greedy",
        }
        if self.scoring != "generate":  # recorded only when not the default: old hashes hold
            out["scoring"] = self.scoring
        if self.decoding != "plain":
            out["cache"] = self.decoding
        return out


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

    from harness.model.sft import encode_prompts

    if config.decoding != "plain":
        from harness.model.decoding import generate_static

        return generate_static(model, processor, images, prompts, config, on_batch)
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


def check_decoding(config: GenerationConfig) -> None:
    """Fail before any model loads where the decoding cannot run here."""
    if config.decoding == "compiled":
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                "--decoding compiled needs a CUDA GPU; use static or plain"
            )


def score(samples: Sequence[Sample], answers: Sequence[str], classes: Sequence[str]) -> EvalResult:
    """Parse answers and compute metrics; every unparseable answer counts as wrong."""
    parsed = [parse_answer(a, classes) for a in answers]
    metrics = classification_metrics([s.label for s in samples], [p.label for p in parsed], classes)
    # ROUGE-L is defined only where a reference exists: None elsewhere, never a diluting 0.
    rouges = [
        rouge_l(p.explanation, s.report) if s.report.strip() else None
        for p, s in zip(parsed, samples, strict=True)
    ]
    scored = [r for r in rouges if r is not None]
    if scored:  # no reference reports: ROUGE-L is not reported
        metrics["rouge_l"] = float(np.mean(scored))
        metrics["rouge_l_n"] = len(scored)
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
    images, prompts = [s.image for s in samples], [prompt] * len(samples)
    try:
        results = {}
        if "likelihood" in config.parts:
            from harness.evaluation.likelihood import label_loglikelihoods, score_likelihoods

            scores, choices = label_loglikelihoods(
                model, processor, images, prompts, classes, config.batch_size, on_batch
            )
            results["likelihood"] = score_likelihoods(samples, scores, choices, classes)
        if "generate" in config.parts:
            answers = generate_answers(model, processor, images, prompts, config, on_batch)
            results["generate"] = score(samples, answers, classes)
        result = combine_scorings(results)
    finally:
        if was_training:
            model.train()
    result.seconds = time.perf_counter() - t0
    return result
