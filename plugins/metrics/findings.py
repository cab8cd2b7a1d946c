"""Clinical-finding metrics from the negation- and uncertainty-aware finding extractor
(``harness.text.findings``, over the report ontology's findings).

- ``finding_f1``: the positive findings of each explanation against those of its reference
  report, as a macro F1 over the findings that occur (per finding tp/fp/fn summed over images,
  so a bootstrap resample recomputes the corpus-level macro exactly). Images with a reference
  only.
- ``label_consistency``: the share of valid answers whose explanation supports the predicted
  class (a normal class: no positive finding; any other: one of its own findings).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from harness.components import MeanMetric, Metric, MetricItem
from harness.hookspecs import hookimpl

TOKENISATION = (
    "ontology finding terms matched in lower-cased text, NegEx-style negation and uncertainty "
    "cues in the same sentence; only positive findings count"
)


class FindingF1(Metric):
    name = "finding_f1"
    title = "Finding F1"
    description = "Macro F1 of the explanation's positive findings vs the reference report's"
    needs_reference: ClassVar[bool] = True
    corpus_level: ClassVar[bool] = True
    implementation = "cxr-harness finding extractor (harness.text.findings)"
    tokenisation = TOKENISATION

    def statistics(self, items: Sequence[MetricItem], classes: Sequence[str]) -> np.ndarray:
        """Per finding (tp, fp, fn), then 1 for an image with a reference."""
        from harness.text.finding_scores import finding_count_rows, finding_f1
        from harness.text.ontology import default_ontology

        onto = default_ontology()
        keys = sorted(onto.findings)
        samples = [
            finding_f1(it.explanation, it.reference, onto) if it.reference.strip() else None
            for it in items
        ]
        has_ref = np.array([[0.0 if s is None else 1.0] for s in samples]).reshape(-1, 1)
        return np.concatenate([finding_count_rows(samples, keys), has_ref], axis=1)

    def combine(self, sums: np.ndarray, classes: Sequence[str]) -> np.ndarray:
        from harness.text.finding_scores import macro_finding_f1

        out = macro_finding_f1(sums[:, :-1])
        out[sums[:, -1] <= 0] = np.nan
        return out


class LabelConsistency(MeanMetric):
    name = "label_consistency"
    title = "Consistency"
    description = "Share of valid answers whose explanation's findings support the class"
    needs_reference: ClassVar[bool] = False
    implementation = "cxr-harness finding extractor (harness.text.findings)"
    tokenisation = TOKENISATION

    def statistics(self, items: Sequence[MetricItem], classes: Sequence[str]) -> np.ndarray:
        from harness.text.finding_scores import label_consistency

        out = np.zeros((len(items), 2))
        for row, it in enumerate(items):
            if it.prediction is not None:  # invalid answers have no class to support
                out[row] = (label_consistency(it.explanation, it.prediction).score, 1.0)
        return out


@hookimpl
def register_metrics(register):  # type: ignore[no-untyped-def]
    register(FindingF1)
    register(LabelConsistency)
