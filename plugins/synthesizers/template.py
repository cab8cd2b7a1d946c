"""The ``template`` synthesizer: offline, seeded radiology reports built from an ontology.

The ontology (``harness.text.ontology``: the built-in one, or a user TOML/JSON file) holds,
per class: a group name, subtypes, synonyms, typical findings, location notes and which
lateralities / lobes / zones apply, plus shared confidence phrases and report skeletons. A
report picks a skeleton (finding-first or impression-first), fills its slots ({finding},
{location}, {confidence}, {synonym}, {synonym2}) and then the nested anatomical placeholders
({laterality}, {lobe}, {zone}) from one consistent location per report:

* a middle lobe is always right-sided; a bilateral finding names lobes/zones in the plural;
* {synonym2} is always a synonym distinct from {synonym};
* sentences are in sentence case, end with exactly one period, with single spaces.

``class_keywords(label)`` (group name + subtypes, lowercase) is what the other synthesizers and
``harness.text.audit`` use to detect texts that mention another class. ``oracle_report(label)``
is one canonical report per class (first choice everywhere), used as the ROUGE-L "template
oracle" baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from pydantic import Field, model_validator

from harness import components
from harness.core.errors import SynthesisError
from harness.hookspecs import hookimpl
from harness.text.ontology import (
    ClassEntry,
    Ontology,
    class_keywords,
    default_ontology,
    load_ontology,
)


class _Picker:
    """Seeded choices; ``canonical`` always takes the first option (for the oracle report)."""

    def __init__(self, rng: np.random.Generator | None) -> None:
        self.rng = rng

    def index(self, n: int) -> int:
        return 0 if self.rng is None else int(self.rng.integers(n))

    def between(self, lo: int, hi: int) -> int:
        return lo if self.rng is None else int(self.rng.integers(lo, hi + 1))

    def order(self, items: tuple[str, ...]) -> list[str]:
        if self.rng is None:
            return list(items)
        return [items[i] for i in self.rng.permutation(len(items))]


def _place(entry: ClassEntry, picker: _Picker) -> dict[str, str]:
    """One consistent location for a whole report."""
    if not entry.lateralities:
        return {}
    side = entry.lateralities[picker.index(len(entry.lateralities))]
    lobes = [lb for lb in entry.lobes if lb != "middle" or side == "right"] or ["lower"]
    lobe = lobes[picker.index(len(lobes))]
    # Keep lobe and zone anatomically consistent where the class allows the matching zone.
    matching = {"upper": "upper", "middle": "mid", "lower": "lower"}.get(lobe)
    if matching in entry.zones:
        zone = matching
    else:
        zone = entry.zones[picker.index(len(entry.zones))] if entry.zones else "lower"
    if side == "bilateral":
        return {
            "laterality": side,
            "lobe": f"{lobe} lobes bilaterally",
            "zone": f"{zone} zones bilaterally",
        }
    return {"laterality": side, "lobe": f"{side} {lobe} lobe", "zone": f"{side} {zone} zone"}


def _tidy(sentence: str) -> str:
    s = " ".join(sentence.split()).rstrip(" .")
    return s[:1].upper() + s[1:] + "." if s else ""


def _usable_templates(
    entry: ClassEntry, templates: tuple[tuple[str, ...], ...], lo: int, hi: int
) -> list[tuple[tuple[str, ...], int, int]]:
    """(template, min count, max count) for templates that fit the sentence bounds."""
    usable = []
    for tpl in templates:
        k = sum(s.count("{finding}") for s in tpl)
        if k > len(entry.findings) or sum(s.count("{location}") for s in tpl) > len(
            entry.locations
        ):
            continue
        if any("{synonym2}" in s for s in tpl) and len(entry.synonyms) < 2:
            continue
        t_lo, t_hi = max(lo, len(tpl)), min(hi, len(tpl) + len(entry.findings) - k)
        if t_lo <= t_hi:
            usable.append((tpl, t_lo, t_hi))
    return usable


def render_report(
    entry: ClassEntry,
    ontology: Ontology,
    rng: np.random.Generator | None,
    min_sentences: int = 4,
    max_sentences: int = 7,
) -> str:
    """One report for ``entry``; ``rng=None`` gives the canonical (first-choice) report."""
    picker = _Picker(rng)
    usable = _usable_templates(entry, ontology.templates, min_sentences, max_sentences)
    if not usable:
        raise SynthesisError(
            f"No report template fits class {entry.label!r} with {min_sentences}-{max_sentences} "
            f"sentences and {len(entry.findings)} findings in {ontology.source}."
        )
    tpl, lo, hi = usable[picker.index(len(usable))]
    target = picker.between(lo, hi)
    last = max(i for i, s in enumerate(tpl) if "{finding}" in s)
    sentences = list(tpl[: last + 1]) + ["{finding}"] * (target - len(tpl)) + list(tpl[last + 1 :])

    findings, locations = iter(picker.order(entry.findings)), iter(picker.order(entry.locations))
    synonyms = picker.order(entry.synonyms)
    confidence = ontology.confidence[picker.index(len(ontology.confidence))]
    place = _place(entry, picker)
    out = []
    for sentence in sentences:
        filled = sentence.format(
            finding=next(findings) if "{finding}" in sentence else "",
            location=next(locations) if "{location}" in sentence else "",
            confidence=confidence,
            synonym=synonyms[0],
            synonym2=synonyms[1] if len(synonyms) > 1 else synonyms[0],
        )
        out.append(_tidy(filled.format(**place)))
    return " ".join(out)


def oracle_report(label: str, ontology: Ontology | None = None) -> str:
    """The canonical template report of ``label`` (first skeleton, first choices, 4 sentences)."""
    onto = ontology or default_ontology()
    return render_report(onto.entry(label), onto, None)


class TemplateSynthesizer(components.Synthesizer):
    """Offline report synthesizer filling ontology-driven templates (the default)."""

    name = "template"
    description = (
        "Offline, seeded radiology reports from a per-class ontology (ontology.toml or your own "
        "TOML/JSON): 14 finding-first and impression-first skeletons, consistent laterality."
    )

    class Options(components.Options):
        ontology: str | None = Field(
            default=None, description="Path to your own ontology TOML/JSON (None: built-in)."
        )
        min_sentences: int = Field(default=4, ge=1, le=20)
        max_sentences: int = Field(default=7, ge=1, le=20)

        @model_validator(mode="after")
        def _bounds(self) -> TemplateSynthesizer.Options:
            if self.min_sentences > self.max_sentences:
                raise ValueError("min_sentences must not exceed max_sentences")
            return self

    def __init__(self, options: components.Options | None = None) -> None:
        super().__init__(options)
        self.ontology = load_ontology(self.options.ontology)

    def check_classes(self, classes: Sequence[str]) -> None:
        """Every benchmark class needs an ontology entry (SynthesisError names the first gap)."""
        for label in classes:
            self.ontology.entry(label)

    def synthesize(self, label: str, n: int, rng: np.random.Generator) -> list[str]:
        """``n`` reports for ``label``; the same rng seed gives the same reports."""
        entry = self.ontology.entry(label)
        lo, hi = self.options.min_sentences, self.options.max_sentences
        return [render_report(entry, self.ontology, rng, lo, hi) for _ in range(n)]

    def class_keywords(self, label: str) -> set[str]:
        """Group name and subtypes of ``label`` in this synthesizer's ontology, lowercase."""
        return class_keywords(label, self.ontology)


@hookimpl
def register_synthesizers(register: Callable[[type], None]) -> None:
    register(TemplateSynthesizer)
