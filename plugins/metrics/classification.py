"""Macro-F1, accuracy and invalid rate over the benchmark's classes; invalid counts as wrong.

Computed from per-image counts (numpy only, no scikit-learn), so a bootstrap resample is a
weighted sum of the same counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from harness.components import Metric, MetricItem
from harness.hookspecs import hookimpl


def _one_hot(labels: Sequence[str | None], classes: Sequence[str]) -> np.ndarray:
    index = {c: k for k, c in enumerate(classes)}
    out = np.zeros((len(labels), len(classes)))
    for row, label in enumerate(labels):
        if label in index:
            out[row, index[label]] = 1.0
    return out


class MacroF1(Metric):
    name = "macro_f1"
    title = "Macro-F1"
    description = "Macro-F1 over the benchmark's classes; invalid counts as wrong"

    def statistics(self, items: Sequence[MetricItem], classes: Sequence[str]) -> np.ndarray:
        """Per class: true positive, support and predicted count (``3 * len(classes)``)."""
        t = _one_hot([it.label for it in items], classes)
        p = _one_hot([it.prediction for it in items], classes)
        return np.concatenate([t * p, t, p], axis=1)

    def combine(self, sums: np.ndarray, classes: Sequence[str]) -> np.ndarray:
        k = len(classes)
        tp, denom = sums[:, :k], sums[:, k : 2 * k] + sums[:, 2 * k : 3 * k]
        f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
        return f1.mean(axis=1)


class _Share(Metric):
    """Share of images for which ``hit`` holds: statistics (hit, 1)."""

    def hit(self, item: MetricItem) -> bool:
        raise NotImplementedError

    def statistics(self, items: Sequence[MetricItem], classes: Sequence[str]) -> np.ndarray:
        return np.array([[float(self.hit(it)), 1.0] for it in items]).reshape(len(items), 2)

    def combine(self, sums: np.ndarray, classes: Sequence[str]) -> np.ndarray:
        n = sums[:, 1]
        return np.divide(sums[:, 0], n, out=np.zeros(len(sums)), where=n > 0)


class Accuracy(_Share):
    name = "accuracy"
    title = "Accuracy"
    description = "Share of exact label matches; invalid counts as wrong"

    def hit(self, item: MetricItem) -> bool:
        return item.prediction is not None and item.prediction == item.label


class InvalidRate(_Share):
    name = "invalid_rate"
    title = "Invalid"
    description = "Share of answers the strict parser rejected"
    higher_is_better: ClassVar[bool] = False
    paired: ClassVar[bool] = False

    def hit(self, item: MetricItem) -> bool:
        return item.prediction is None


@hookimpl
def register_metrics(register):  # type: ignore[no-untyped-def]
    for cls in (MacroF1, Accuracy, InvalidRate):
        register(cls)
