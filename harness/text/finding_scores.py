"""Scores built on the finding extractor: finding F1 and report-label consistency.

Both are pure functions of texts that return one record per sample, so that bootstrap CIs and
paired tests can resample samples:

- ``finding_f1(generated, reference)``: the positive findings of a generated explanation
  against those of its reference report. Per sample, F1 = 2·|both| / (|generated| +
  |reference|), 1.0 when neither states any finding. ``finding_f1_table(samples)`` gives per
  finding precision, recall, F1 and support over a set of samples, and their macro average
  over the findings that occur (support or prediction), from the same records.
- ``finding_count_rows`` / ``macro_finding_f1``: the same in sufficient statistics, one row of
  (tp, fp, fn) per finding per sample, and the macro F1 of any (weighted) sum of rows, so a
  bootstrap resample of samples recomputes the corpus-level macro exactly.
- ``label_consistency(explanation, predicted)``: do the explanation's positive findings
  support the predicted class, through the ontology's class -> findings map? A normal class is
  supported by an explanation with no positive finding; any other class by one with at least
  one positive finding of that class. The record also lists the positive findings that support
  only other classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.text.findings import positive_findings
from harness.text.ontology import Ontology, default_ontology

__all__ = [
    "ConsistencySample",
    "FindingF1Sample",
    "FindingF1Table",
    "FindingScore",
    "finding_f1",
    "finding_f1_scores",
    "finding_count_rows",
    "finding_f1_table",
    "label_consistency",
    "label_consistency_scores",
    "macro_finding_f1",
]


@dataclass(frozen=True)
class FindingF1Sample:
    """One generated explanation against its reference: the positive findings of each."""

    generated: frozenset[str]
    reference: frozenset[str]

    @property
    def f1(self) -> float:
        total = len(self.generated) + len(self.reference)
        return 1.0 if total == 0 else 2 * len(self.generated & self.reference) / total


@dataclass(frozen=True)
class FindingScore:
    """Precision, recall and F1 of one finding over a set of samples."""

    finding: str
    tp: int
    fp: int
    fn: int

    @property
    def support(self) -> int:
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.support if self.support else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True)
class FindingF1Table:
    """Per-finding scores (findings that occur in a reference or a generation) and the macro."""

    findings: tuple[FindingScore, ...]
    samples: int

    @property
    def macro_f1(self) -> float | None:
        """Mean F1 over the findings listed; ``None`` when no finding occurs at all."""
        return sum(f.f1 for f in self.findings) / len(self.findings) if self.findings else None


def finding_f1(generated: str, reference: str, ontology: Ontology | None = None) -> FindingF1Sample:
    """The positive findings of ``generated`` and of ``reference``, compared."""
    return FindingF1Sample(
        positive_findings(generated, ontology), positive_findings(reference, ontology)
    )


def finding_f1_scores(
    generated: Sequence[str],
    references: Sequence[str | None],
    ontology: Ontology | None = None,
) -> list[float | None]:
    """Per-sample finding F1; ``None`` where a sample has no reference report."""
    if len(generated) != len(references):
        raise ValueError(f"{len(generated)} generated texts but {len(references)} references")
    return [
        None if ref is None else finding_f1(gen, ref, ontology).f1
        for gen, ref in zip(generated, references, strict=True)
    ]


def finding_f1_table(samples: Sequence[FindingF1Sample]) -> FindingF1Table:
    """Per-finding precision/recall/F1/support over ``samples``, with their macro F1."""
    keys = sorted(set().union(*(s.generated | s.reference for s in samples)) if samples else ())
    scores = []
    for key in keys:
        tp = sum(key in s.generated and key in s.reference for s in samples)
        fp = sum(key in s.generated and key not in s.reference for s in samples)
        fn = sum(key not in s.generated and key in s.reference for s in samples)
        scores.append(FindingScore(key, tp, fp, fn))
    return FindingF1Table(tuple(scores), len(samples))


def finding_count_rows(
    samples: Sequence[FindingF1Sample | None], findings: Sequence[str]
) -> np.ndarray:
    """Sufficient statistics, shape ``(len(samples), 3 * len(findings))``: per finding, in
    the order given, 1/0 for tp, fp and fn; an all-zero row where a sample is ``None`` (no
    reference)."""
    out = np.zeros((len(samples), 3 * len(findings)))
    for i, sample in enumerate(samples):
        if sample is None:
            continue
        for j, key in enumerate(findings):
            gen, ref = key in sample.generated, key in sample.reference
            out[i, 3 * j : 3 * j + 3] = (gen and ref, gen and not ref, ref and not gen)
    return out


def macro_finding_f1(sums: np.ndarray) -> np.ndarray:
    """Macro F1 over findings of summed ``finding_count_rows``, ``(B, 3K) -> (B,)``.

    A finding counts in a row's macro where it occurs (tp + fp + fn > 0); a row where no
    finding occurs is NaN.
    """
    counts = np.asarray(sums, dtype=float).reshape(len(sums), -1, 3)
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    occurs = (tp + fp + fn) > 0
    f1 = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=occurs)
    n = occurs.sum(axis=1)
    return np.divide(f1.sum(axis=1), n, out=np.full(len(sums), np.nan), where=n > 0)


@dataclass(frozen=True)
class ConsistencySample:
    """Whether an explanation's positive findings support its predicted class."""

    predicted: str
    positive: frozenset[str]  # the explanation's positive findings
    supporting: frozenset[str]  # those that support ``predicted``
    foreign: frozenset[str]  # those that support only other classes
    consistent: bool

    @property
    def score(self) -> float:
        return 1.0 if self.consistent else 0.0


def label_consistency(
    explanation: str, predicted: str, ontology: Ontology | None = None
) -> ConsistencySample:
    """Do the positive findings of ``explanation`` support the class ``predicted``?

    A class that no finding supports (the normal class) is consistent with an explanation
    that states no finding; any other class needs at least one of its own findings.
    """
    onto = ontology or default_ontology()
    onto.entry(predicted)  # an unknown class is an error, not a silent inconsistency
    positive = positive_findings(explanation, onto)
    own = set(onto.class_findings(predicted))
    supporting = frozenset(positive & own)
    foreign = frozenset(k for k in positive - own if onto.findings[k].classes)
    consistent = bool(supporting) if own else not positive
    return ConsistencySample(predicted, positive, supporting, foreign, consistent)


def label_consistency_scores(
    explanations: Sequence[str | None],
    predicted: Sequence[str | None],
    ontology: Ontology | None = None,
) -> list[float | None]:
    """Per-sample consistency (1.0 or 0.0); ``None`` where there is no explanation or no
    valid predicted class."""
    if len(explanations) != len(predicted):
        raise ValueError(f"{len(explanations)} explanations but {len(predicted)} predictions")
    return [
        None if text is None or label is None else label_consistency(text, label, ontology).score
        for text, label in zip(explanations, predicted, strict=True)
    ]
