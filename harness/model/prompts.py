"""The fixed evaluation prompt and the answer contract (`Class:` then `Explanation:`)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

SYSTEM_PROMPT = "You are a radiology assistant that reads chest X-rays."


def eval_prompt(classes: Sequence[str]) -> str:
    """The benchmark's fixed instruction. It is recorded by hash with every result."""
    return (
        "Describe this chest X-ray and choose one category from: "
        + ", ".join(classes)
        + ".\nAnswer exactly as:\nClass: <category>\nExplanation: <short report>"
    )


def format_answer(label: str, explanation: str) -> str:
    """The answer contract every model is trained to produce and the parser reads."""
    return f"Class: {label}\nExplanation: {explanation}"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
