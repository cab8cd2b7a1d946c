"""Audit of synthesized report texts: volume, diversity, length and cross-class leakage.

``audit_texts`` summarises, per class, how many texts there are, how many are unique, how long
they are (in words) and which share of them states another class's keywords as present (a
text for ``Higher_Density`` that says "pneumothorax" teaches the model the wrong class). Keywords
default to the built-in template ontology (``class_keywords``: group name plus subtypes,
lowercase). ``render_audit_table`` turns the summary into a ``rich`` table for the CLI.

Keyword matching is case-insensitive and whole-word: hyphens count as part of a word, so
"pneumonia" does not match "bronchopneumonia" and "nodule" does not match "micro-nodule".
``find_keywords`` and ``other_class_keywords`` match words alone. The audit and
``foreign_mentions`` read each mention in context (``harness.text.negation``): a negated mention
("No pneumothorax or pleural effusion") is no leak; a hedged one ("cannot exclude a small
effusion") is counted apart, as uncertain; only a positive mention is a leak.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from rich.table import Table

__all__ = [
    "ForeignMentions",
    "audit_texts",
    "find_keywords",
    "foreign_mentions",
    "other_class_keywords",
    "render_audit_table",
]


@lru_cache(maxsize=4096)
def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in keyword.lower().split()]
    return re.compile(r"(?<![\w-])" + r"\s+".join(words) + r"(?![\w-])")


def find_keywords(text: str, keywords: Iterable[str]) -> list[str]:
    """Return the keywords (sorted) that occur in ``text`` as whole words, ignoring case."""
    lowered = text.lower()
    return sorted({k for k in keywords if k.strip() and _keyword_pattern(k).search(lowered)})


def _foreign(label: str, keywords_by_class: Mapping[str, Iterable[str]]) -> set[str]:
    own = {k.lower() for k in keywords_by_class.get(label, ())}
    foreign: set[str] = set()
    for other, kws in keywords_by_class.items():
        if other != label:
            foreign.update(k.lower() for k in kws if k.strip() and k.lower() not in own)
    return foreign


def other_class_keywords(
    text: str, label: str, keywords_by_class: Mapping[str, Iterable[str]]
) -> list[str]:
    """Keywords of classes other than ``label`` that ``text`` contains (sorted, unique), in
    any context, negated ones included (``foreign_mentions`` reads the context).

    A keyword that also belongs to ``label`` itself is never counted against it.
    """
    return find_keywords(text, _foreign(label, keywords_by_class))


@dataclass(frozen=True)
class ForeignMentions:
    """Other classes' keywords in a text, by how the text states them (each sorted, unique)."""

    positive: list[str]
    uncertain: list[str]
    negated: list[str]


def foreign_mentions(
    text: str, label: str, keywords_by_class: Mapping[str, Iterable[str]]
) -> ForeignMentions:
    """Keywords of classes other than ``label`` in ``text``, split by status.

    A keyword is ``positive`` if any of its mentions is, else ``uncertain`` if any is, else
    ``negated``. A keyword that also belongs to ``label`` is never counted against it.
    """
    from harness.text.findings import fold_statuses, keyword_mentions
    from harness.text.negation import Status

    foreign = _foreign(label, keywords_by_class)
    statuses = fold_statuses(keyword_mentions(text, {k: (k,) for k in sorted(foreign)}))
    by = {s: sorted(k for k, v in statuses.items() if v is s) for s in Status}
    return ForeignMentions(by[Status.POSITIVE], by[Status.UNCERTAIN], by[Status.NEGATED])


def _default_keywords() -> dict[str, set[str]]:
    from harness.text.ontology import keywords_by_class

    return keywords_by_class()


def audit_texts(
    texts_by_class: Mapping[str, list[str]],
    keywords_by_class: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Summarise synthesized texts per class.

    For each class: ``count``; ``unique`` and ``uniqueness`` (unique / count, after whitespace
    normalisation and case folding); ``words`` = ``{"min", "median", "max"}`` word counts;
    ``leaky`` (texts stating another class's keywords as present), ``leak_share`` (leaky /
    count) and ``leak_keywords`` (those keywords, with how many texts state each); the same for
    hedged mentions of them in texts that are not leaky (``uncertain``, ``uncertain_share``,
    ``uncertain_keywords``); and ``negated`` (texts whose only foreign mentions are negated).
    Empty classes get zeros. ``keywords_by_class`` defaults to the built-in template ontology.
    """
    keywords = dict(keywords_by_class) if keywords_by_class is not None else _default_keywords()
    audit: dict[str, dict[str, Any]] = {}
    for label, texts in texts_by_class.items():
        count = len(texts)
        normalised = {" ".join(t.split()).casefold() for t in texts}
        lengths = [len(t.split()) for t in texts]
        leaky = uncertain = negated = 0
        seen: dict[str, int] = {}
        hedged: dict[str, int] = {}
        for text in texts:
            found = foreign_mentions(text, label, keywords)
            if found.positive:
                leaky += 1
                for hit in found.positive:
                    seen[hit] = seen.get(hit, 0) + 1
            elif found.uncertain:
                uncertain += 1
                for hit in found.uncertain:
                    hedged[hit] = hedged.get(hit, 0) + 1
            elif found.negated:
                negated += 1
        audit[label] = {
            "count": count,
            "unique": len(normalised),
            "uniqueness": round(len(normalised) / count, 4) if count else 0.0,
            "words": {
                "min": min(lengths) if lengths else 0,
                "median": float(statistics.median(lengths)) if lengths else 0.0,
                "max": max(lengths) if lengths else 0,
            },
            "leaky": leaky,
            "leak_share": round(leaky / count, 4) if count else 0.0,
            "leak_keywords": _by_count(seen),
            "uncertain": uncertain,
            "uncertain_share": round(uncertain / count, 4) if count else 0.0,
            "uncertain_keywords": _by_count(hedged),
            "negated": negated,
        }
    return audit


def _by_count(counts: Mapping[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def render_audit_table(audit: Mapping[str, Mapping[str, Any]], title: str = "Synth audit") -> Table:
    """A ``rich`` table of an ``audit_texts`` result, one row per class."""
    table = Table(title=title)
    for column, justify in (
        ("class", "left"),
        ("count", "right"),
        ("unique", "right"),
        ("words min/med/max", "right"),
        ("leak share", "right"),
        ("top foreign keywords", "left"),
        ("uncertain", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for label, row in audit.items():
        words = row["words"]
        top = ", ".join(f"{k} ({v})" for k, v in list(row["leak_keywords"].items())[:3])
        leak = row["leak_share"]
        table.add_row(
            label,
            str(row["count"]),
            f"{row['uniqueness']:.0%}",
            f"{words['min']}/{words['median']:g}/{words['max']}",
            f"[red]{leak:.1%}[/red]" if leak > 0 else f"{leak:.1%}",
            top or "-",
            f"{row['uncertain_share']:.1%}",
        )
    return table
