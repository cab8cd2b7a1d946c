"""The strict answer parser.

Contract: the model writes ``Class: <label>`` and then ``Explanation: <text>``. The parser

* reads the first ``Class:`` line (case-insensitive key) and nothing else for the label;
* normalises case, spaces, underscores and hyphens before matching;
* maps the documented aliases in ``ALIASES`` (spelled-out names of the Kaggle folders);
* rejects a value that names more than one class (a model echoing the prompt's class list), or
  no class at all. Rejected answers are *invalid*: they count as wrong in every metric.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_CLASS_LINE = re.compile(r"^[ \t]*class[ \t]*:[ \t]*(.*?)[ \t]*$", re.IGNORECASE | re.MULTILINE)
_EXPLANATION = re.compile(
    r"^[ \t]*explanation[ \t]*:[ \t]*(.*)\Z", re.IGNORECASE | re.MULTILINE | re.DOTALL
)

# Normalised alias -> canonical label. Normalisation is applied to keys before lookup.
ALIASES: dict[str, str] = {
    "pneumonia": "Inflammatory_Pneumonia",
    "inflammatory pneumonia": "Inflammatory_Pneumonia",
    "anatomia normal": "Normal",
    "normal anatomy": "Normal",
    "degenerative infectious": "Degenerative_Infectious",
    "encapsulated lesions": "Encapsulated_Lesions",
    "mediastinal changes": "Mediastinal_Changes",
    "chest changes": "Chest_Changes",
    "higher density": "Higher_Density",
    "lower density": "Lower_Density",
}


def normalise(text: str) -> str:
    """Lower-case, map ``_``/``-`` to spaces, collapse whitespace, strip punctuation at the ends."""
    text = re.sub(r"[_\-]+", " ", text.lower())
    text = re.sub(r"\s+", " ", text)
    return text.strip(" .,;:!?'\"`*()[]")


@dataclass(frozen=True)
class ParsedAnswer:
    label: str | None  # None means invalid
    explanation: str
    reason: str = ""  # why it is invalid, empty when valid

    @property
    def valid(self) -> bool:
        return self.label is not None


def parse_answer(text: str, classes: Sequence[str]) -> ParsedAnswer:
    """Parse one model answer against the benchmark's class list."""
    explanation_match = _EXPLANATION.search(text)
    explanation = explanation_match.group(1).strip() if explanation_match else ""
    match = _CLASS_LINE.search(text)
    if match is None:
        return ParsedAnswer(None, explanation, "no 'Class:' line")
    value = normalise(match.group(1))
    if not value:
        return ParsedAnswer(None, explanation, "empty 'Class:' line")
    table = {normalise(c): c for c in classes}
    table.update({k: v for k, v in ALIASES.items() if v in classes and k not in table})
    if value in table:
        return ParsedAnswer(table[value], explanation)
    mentioned = {
        label for key, label in table.items() if re.search(rf"(?<!\w){re.escape(key)}(?!\w)", value)
    }
    if len(mentioned) > 1:
        return ParsedAnswer(None, explanation, "'Class:' line names several classes")
    return ParsedAnswer(None, explanation, f"unknown class {match.group(1).strip()!r}")
