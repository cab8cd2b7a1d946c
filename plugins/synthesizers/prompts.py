"""The ``prompts`` synthesizer: varied user instructions for training-time prompt diversity.

Training only on the fixed evaluation prompt (``harness.model.prompts.eval_prompt``) lets a model
key on
its exact wording. ``synthesize_prompts`` writes variants ranging from short questions to
multi-sentence requests. Every variant keeps what the answer parser depends on:

* the full class list, comma-separated and in the given order;
* the answer contract lines ``Class: <category>`` and ``Explanation: ...``, each on its own line.

Registered as the synthesizer ``prompts``. Note: its ``synthesize(label, n, rng)`` IGNORES
``label`` and returns ``n`` prompt variants (instructions, not report texts) for the classes in
its options (default: the phantom8 classes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from pydantic import Field

from harness import components
from harness.core.errors import SynthesisError
from harness.data.labels import PHANTOM8_CLASSES
from harness.hookspecs import hookimpl

CONTRACT_CLASS_LINE = "Class: <category>"
CONTRACT_EXPLANATION_PREFIX = "Explanation:"

_SHORT_QUESTIONS = (
    "Which category fits this chest X-ray?",
    "What does this chest radiograph show?",
    "Classify this chest X-ray.",
    "Which finding best describes this image?",
    "What is the main abnormality on this film, if any?",
    "How would you categorise this chest radiograph?",
)

_OPENERS = (
    "Describe this chest X-ray.",
    "Please review the attached chest radiograph.",
    "You are reading a frontal chest X-ray.",
    "Look carefully at this chest film.",
    "Here is a chest radiograph from the reporting queue.",
    "Act as a radiologist and read this chest X-ray.",
    "Examine the lungs, pleura, heart, mediastinum and chest wall on this image.",
    "A clinician asks for a quick read of this chest X-ray.",
)

_MIDDLES = (
    "",
    "Consider the lung fields, the pleural spaces, the mediastinum and the diaphragm.",
    "Base your decision only on what is visible in the image.",
    "Name the single most important finding.",
    "Mention the side and zone of any abnormality.",
    "Be concise and use standard radiology terminology.",
    "If the study looks normal, say so.",
)

_LIST_INTROS = (
    "Choose one category from: {classes}.",
    "Pick exactly one of these categories: {classes}.",
    "The allowed categories are: {classes}.",
    "Select the best matching category from this list: {classes}.",
    "Options: {classes}.",
    "Classify the image as one of: {classes}.",
)

_CONTRACT_INTROS = (
    "Answer exactly as:",
    "Reply in exactly this format:",
    "Use this format for your answer:",
    "Format your answer as two lines:",
    "Respond exactly as follows:",
)

_EXPLANATION_SLOTS = (
    "<short report>",
    "<short report>",
    "<one to three sentence report>",
    "<brief radiology report>",
    "<findings and impression>",
)


def _compose(classes: str, picks: Sequence[int]) -> str:
    style, opener, middle, intro, contract, expl = picks
    class_list = _LIST_INTROS[intro].format(classes=classes)
    if style == 0:  # short question
        head = f"{_SHORT_QUESTIONS[opener % len(_SHORT_QUESTIONS)]} {class_list}"
    elif style == 1:  # list first, then request
        head = f"{class_list}\n{_OPENERS[opener]}"
    else:  # multi-sentence request
        extra = _MIDDLES[middle]
        head = " ".join(p for p in (_OPENERS[opener], extra, class_list) if p)
    return (
        f"{head}\n{_CONTRACT_INTROS[contract]}\n{CONTRACT_CLASS_LINE}\n"
        f"{CONTRACT_EXPLANATION_PREFIX} {_EXPLANATION_SLOTS[expl]}"
    )


_SIZES = (
    3,
    len(_OPENERS),
    len(_MIDDLES),
    len(_LIST_INTROS),
    len(_CONTRACT_INTROS),
    len(_EXPLANATION_SLOTS),
)


def synthesize_prompts(classes: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
    """``n`` instruction variants for ``classes``, deterministic per rng state.

    Variants are distinct while ``n`` does not exceed the number of distinct compositions;
    beyond that they repeat. Every variant contains ``", ".join(classes)`` and the contract lines
    ``Class: <category>`` and ``Explanation: <...>``.
    """
    if not classes or any(not c or "," in c for c in classes):
        raise SynthesisError(f"prompts need a non-empty list of class names, got {classes!r}.")
    if n < 0:
        raise SynthesisError(f"n must be >= 0, got {n}.")
    joined = ", ".join(classes)
    out: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n:
        picks = [int(rng.integers(size)) for size in _SIZES]
        text = _compose(joined, picks)
        attempts += 1
        if text in seen and attempts < 50 * (n + 1):
            continue
        seen.add(text)
        out.append(text)
    return out


class PromptSynthesizer(components.Synthesizer):
    """Instruction variants (not reports): ``synthesize`` ignores ``label``."""

    name = "prompts"
    description = (
        "Varied user instructions for training-time prompt diversity (short questions to "
        "multi-sentence requests), each keeping the class list and the Class:/Explanation: "
        "answer contract. synthesize(label, n, rng) ignores label and returns n prompts."
    )

    class Options(components.Options):
        classes: tuple[str, ...] = Field(
            default=PHANTOM8_CLASSES, description="Class list every prompt offers, in order."
        )

    def synthesize(self, label: str, n: int, rng: np.random.Generator) -> list[str]:
        """``n`` prompt variants for the configured classes; ``label`` is ignored."""
        return synthesize_prompts(self.options.classes, n, rng)


@hookimpl
def register_synthesizers(register: Callable[[type], None]) -> None:
    register(PromptSynthesizer)
