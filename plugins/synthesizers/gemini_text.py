"""The texts the ``gemini`` synthesizer sends and parses: its system instruction and requests,
both built from the ontology alone, the splitting of a response into single reports, and their
screening (repeats, length, other classes' words stated as present or hedged; a negated one,
"No pneumothorax or pleural effusion", passes)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.text.audit import foreign_mentions
from harness.text.ontology import ClassEntry, Ontology, keywords_by_class

_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_MARKUP = re.compile(r"[*#_`]+")
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)]|report\s*\d+\s*[:.])\s*", re.IGNORECASE)


def count_sentences(text: str) -> int:
    return len(_SENTENCE_END.findall(text.strip()))


def split_items(text: str) -> list[str]:
    """Paragraphs of a response, with bullets/numbering and markdown stripped."""
    items = []
    for para in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [_BULLET.sub("", _MARKUP.sub("", ln)).strip() for ln in para.splitlines()]
        joined = " ".join(ln for ln in lines if ln and set(ln) - set("-=*_"))
        if joined:
            items.append(" ".join(joined.split()))
    return items


def _generic(text: str) -> str:
    return text.format(laterality="[side]", lobe="[lobe]", zone="[zone]")


def build_system_instruction(entry: ClassEntry, ontology: Ontology, items: int) -> str:
    """System instruction for one class, entirely from the ontology."""
    others = [kws for label, kws in keywords_by_class(ontology).items() if label != entry.label]
    forbidden = sorted(set().union(*others) - entry.keywords)
    sides = ", ".join(entry.lateralities) or "not applicable"
    return "\n".join(
        [
            "You are a consultant radiologist writing realistic frontal chest X-ray reports "
            "that will be used as training targets for a report-writing model.",
            f"Category: {entry.group} (dataset label {entry.label}).",
            f"Subtypes: {', '.join(entry.subtypes) or entry.group}.",
            f"Ways to name it: {'; '.join(_generic(s) for s in entry.synonyms)}.",
            "Typical findings: " + " ".join(_generic(f) for f in entry.findings),
            "Location notes: " + " ".join(_generic(loc) for loc in entry.locations),
            f"[side] may be: {sides}. A middle lobe is always right-sided; a bilateral process "
            "involves lobes or zones on both sides.",
            f"Write {items} distinct reports of 4 to 7 sentences each, in plain prose, sentence "
            "case, each sentence ending in one period. Vary the order of findings and impression.",
            "Separate reports with one blank line. No numbering, headings, bullets or markdown.",
            "Describe only this category. Never mention, suggest or exclude any of these: "
            + "; ".join(forbidden)
            + ".",
            "Never invent patient identifiers, dates or measurements with decimals.",
        ]
    )


def build_request(entry: ClassEntry, index: int, items: int) -> str:
    """The user request of call ``index`` for a class: rotates the subtype focus."""
    focus = (entry.subtypes or (entry.group,))[index % max(1, len(entry.subtypes))]
    side = entry.lateralities[index % len(entry.lateralities)] if entry.lateralities else None
    where = f" Where a side applies, prefer {side}." if side else ""
    return (
        f"Batch {index + 1}: write {items} reports for {entry.group}, emphasising {focus}.{where} "
        "Make each report read differently from the others."
    )


@dataclass
class Screened:
    """The items of a class's responses after de-duplication and validation."""

    accepted: list[str] = field(default_factory=list)
    items: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)  # no text: see cache_file


def screen_items(
    responses: Sequence[tuple[str, str]],
    label: str,
    keywords: Mapping[str, Iterable[str]],
    sentences: tuple[int, int],
) -> Screened:
    """Split each ``(cache_file, text)`` response into items, drop repeats, and reject items
    outside ``sentences`` (min, max) or stating another class's ``keywords`` as present or
    uncertain ("possible pneumothorax"); a negated mention ("no pneumothorax") is accepted.

    Each rejection is recorded as ``{label, cache_file, item, reason, matched, sentences}``:
    where the text is (item index in that cached response), never the text itself.
    """
    out = Screened()
    seen: set[str] = set()
    lo, hi = sentences
    for cache_file, text in responses:
        for index, item in enumerate(split_items(text)):
            out.items += 1
            norm = item.casefold()
            if norm in seen:
                out.duplicates += 1
                continue
            seen.add(norm)
            n_sentences = count_sentences(item)
            found = foreign_mentions(item, label, keywords)
            matched = sorted({*found.positive, *found.uncertain})
            reason = "sentences" if not lo <= n_sentences <= hi else "keywords" if matched else ""
            if not reason:
                out.accepted.append(item)
                continue
            out.rejected.append(
                {
                    "label": label,
                    "cache_file": cache_file,
                    "item": index,
                    "reason": reason,
                    "matched": matched,
                    "sentences": n_sentences,
                }
            )
    return out


def rejection_summary(records: Iterable[Mapping[str, Any]], label: str) -> str:
    """`` (keywords: 3, naming pneumothorax; sentences: 2)``: ``label``'s rejections, or ``""``."""
    words: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for record in records:
        if record["label"] == label:
            words.setdefault(record["reason"], set()).update(record["matched"])
            counts[record["reason"]] = counts.get(record["reason"], 0) + 1
    parts = [
        f"{reason}: {counts[reason]}"
        + (f", naming {', '.join(sorted(named))}" if named and reason == "keywords" else "")
        for reason, named in sorted(words.items())
    ]
    return f" ({'; '.join(parts)})" if parts else ""
