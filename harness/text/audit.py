"""Audit of synthesized report texts: volume, diversity, length and cross-class leakage.

``audit_texts`` summarises, per class, how many texts there are, how many are unique, how long
they are (in words) and which share of them mentions another class's keywords (a text for
``Higher_Density`` that says "pneumothorax" teaches the model the wrong class). Keywords default
to the built-in template ontology (``class_keywords``: group name plus subtypes, lowercase).
``render_audit_table`` turns the summary into a ``rich`` table for the CLI.

Keyword matching is case-insensitive and whole-word: hyphens count as part of a word, so
"pneumonia" does not match "bronchopneumonia" and "nodule" does not match "micro-nodule".
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from rich.table import Table

__all__ = ["audit_texts", "find_keywords", "other_class_keywords", "render_audit_table"]


@lru_cache(maxsize=4096)
def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in keyword.lower().split()]
    return re.compile(r"(?<![\w-])" + r"\s+".join(words) + r"(?![\w-])")


def find_keywords(text: str, keywords: Iterable[str]) -> list[str]:
    """Return the keywords (sorted) that occur in ``text`` as whole words, ignoring case."""
    lowered = text.lower()
    return sorted({k for k in keywords if k.strip() and _keyword_pattern(k).search(lowered)})


def other_class_keywords(
    text: str, label: str, keywords_by_class: Mapping[str, Iterable[str]]
) -> list[str]:
    """Keywords of classes other than ``label`` that ``text`` mentions (sorted, unique).

    A keyword that also belongs to ``label`` itself is never counted against it.
    """
    own = {k.lower() for k in keywords_by_class.get(label, ())}
    foreign: set[str] = set()
    for other, kws in keywords_by_class.items():
        if other != label:
            foreign.update(k.lower() for k in kws if k.lower() not in own)
    return find_keywords(text, foreign)


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
    ``leaky`` (texts mentioning another class's keywords), ``leak_share`` (leaky / count) and
    ``leak_keywords`` (the foreign keywords seen, with how many texts mention each).
    Empty classes get zeros. ``keywords_by_class`` defaults to the built-in template ontology.
    """
    keywords = dict(keywords_by_class) if keywords_by_class is not None else _default_keywords()
    audit: dict[str, dict[str, Any]] = {}
    for label, texts in texts_by_class.items():
        count = len(texts)
        normalised = {" ".join(t.split()).casefold() for t in texts}
        lengths = [len(t.split()) for t in texts]
        leaky = 0
        seen: dict[str, int] = {}
        for text in texts:
            hits = other_class_keywords(text, label, keywords)
            if hits:
                leaky += 1
                for hit in hits:
                    seen[hit] = seen.get(hit, 0) + 1
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
            "leak_keywords": dict(sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))),
        }
    return audit


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
        )
    return table
