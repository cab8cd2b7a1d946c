"""ROUGE-L F-measure (rouge-score, Porter stemming) of the explanation vs the reference report,
averaged over the test images that have a reference."""

from __future__ import annotations

import importlib.metadata as md
from collections.abc import Sequence

from harness.components import MeanMetric, MetricItem
from harness.hookspecs import hookimpl


class RougeL(MeanMetric):
    name = "rouge_l"
    title = "ROUGE-L"
    description = "Mean ROUGE-L F (stemmed) of the explanation vs the reference"
    implementation = "rouge-score"
    tokenisation = "rouge-score default: lower-cased, non-alphanumerics removed, Porter stemmer"

    def version(self) -> str:
        return md.version("rouge-score")

    def scores(self, items: Sequence[MetricItem]) -> list[float]:
        from harness.evaluation.metrics import rouge_l

        return [rouge_l(it.explanation, it.reference) for it in items]


@hookimpl
def register_metrics(register):  # type: ignore[no-untyped-def]
    register(RougeL)
