"""The finding extractor: which of the ontology's findings a report states, negates or hedges.

``extract_findings(text)`` returns one ``FindingMention(finding, status, span, term, trigger)``
per mention of a finding's terms, with the status the context rules of ``harness.text.negation``
give it (``positive``, ``negated`` or ``uncertain``). ``finding_statuses(text)`` folds them into
one status per finding for the whole report: positive if any mention is positive (a report
that says "No right effusion. Small left effusion." has an effusion), else uncertain if any is,
else negated. ``positive_findings(text)`` is the set of positive findings, which the finding F1
and the report-label consistency (``harness.text.finding_scores``) compare.

The vocabulary is the ontology's ``findings`` table (``harness/text/ontology.toml``); pass
another ``Ontology`` to use another one. ``keyword_mentions`` runs the same rules over any
``{concept: [keyword, ...]}`` vocabulary: the text audit and the gemini validator use it over
the classes' keywords, so "No pneumothorax or pleural effusion" is no mention of another class.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from harness.text.negation import Mention, Status, TermMatcher, assess
from harness.text.ontology import Ontology, default_ontology

__all__ = [
    "FindingMention",
    "Status",
    "extract_findings",
    "finding_matcher",
    "finding_statuses",
    "keyword_mentions",
    "positive_findings",
]


@dataclass(frozen=True)
class FindingMention:
    """One mention of a finding in a report.

    ``finding`` is the ontology key (``pleural_effusion``), ``status`` how the report states it,
    ``span`` the ``(start, end)`` character offsets of ``term`` (the text matched) and
    ``trigger`` the phrase that negated or hedged it (``None`` for a plain positive mention).
    """

    finding: str
    status: Status
    span: tuple[int, int]
    term: str
    trigger: str | None = None


def _matcher_for(ontology: Ontology) -> TermMatcher:
    return TermMatcher(
        {k: f.terms for k, f in ontology.findings.items()},
        {k: f.patterns for k, f in ontology.findings.items() if f.patterns},
    )


@lru_cache(maxsize=1)
def _default_matcher() -> TermMatcher:
    return _matcher_for(default_ontology())


def finding_matcher(ontology: Ontology | None = None) -> TermMatcher:
    """The compiled finding vocabulary of ``ontology`` (the built-in one by default)."""
    if ontology is None or ontology is default_ontology():
        return _default_matcher()
    return _matcher_for(ontology)


def _to_finding(mention: Mention) -> FindingMention:
    return FindingMention(
        mention.concept, mention.status, mention.span, mention.term, mention.trigger
    )


def extract_findings(text: str, ontology: Ontology | None = None) -> list[FindingMention]:
    """Every mention of the ontology's findings in ``text``, in order, with its status."""
    return [_to_finding(m) for m in assess(text, finding_matcher(ontology))]


_RANK = {Status.NEGATED: 0, Status.UNCERTAIN: 1, Status.POSITIVE: 2}


def fold_statuses(mentions: Iterable[FindingMention | Mention]) -> dict[str, Status]:
    """One status per concept: positive over uncertain over negated."""
    out: dict[str, Status] = {}
    for m in mentions:
        key = m.finding if isinstance(m, FindingMention) else m.concept
        if key not in out or _RANK[m.status] > _RANK[out[key]]:
            out[key] = m.status
    return out


def finding_statuses(text: str, ontology: Ontology | None = None) -> dict[str, Status]:
    """The report-level status of every finding ``text`` mentions (see the module doc)."""
    return fold_statuses(extract_findings(text, ontology))


def positive_findings(text: str, ontology: Ontology | None = None) -> frozenset[str]:
    """The findings ``text`` states as present."""
    return frozenset(k for k, s in finding_statuses(text, ontology).items() if s is Status.POSITIVE)


@lru_cache(maxsize=64)
def _keyword_matcher(vocabulary: tuple[tuple[str, tuple[str, ...]], ...]) -> TermMatcher:
    return TermMatcher(dict(vocabulary))


def keyword_mentions(text: str, keywords: Mapping[str, Iterable[str]]) -> list[Mention]:
    """Mentions of the keywords of ``{concept: [keyword, ...]}`` in ``text``, with status.

    ``concept`` of each mention is the key its keyword belongs to (a keyword listed under
    several keys belongs to the first); ``term`` is the text matched.
    """
    vocabulary = tuple((c, tuple(sorted(k.lower() for k in kws))) for c, kws in keywords.items())
    return assess(text, _keyword_matcher(vocabulary))
