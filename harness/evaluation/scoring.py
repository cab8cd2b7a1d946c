"""Plugin metrics over one configuration's answers: values, reference coverage and the
per-sample statistics that the bootstrap and the paired tests resample."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from harness.components import Metric, MetricItem
from harness.data.sample import Sample
from harness.evaluation.parser import parse_answer
from harness.results.columns import NATIVE, MetricColumn


def metric_items(
    samples: Sequence[Sample], predictions: Sequence[Mapping[str, Any]], classes: Sequence[str]
) -> list[MetricItem]:
    """Each test image with its parsed answer, as the metrics see it."""
    out = []
    for s, p in zip(samples, predictions, strict=True):
        answer = p.get("answer") or ""
        explanation = parse_answer(answer, classes).explanation if answer else ""
        out.append(MetricItem(str(s.id), s.label, p.get("prediction"), explanation, s.report))
    return out


def score_plugins(
    metrics: Sequence[Metric],
    samples: Sequence[Sample],
    predictions: Sequence[Mapping[str, Any]],
    classes: Sequence[str],
    texts: bool = True,
) -> tuple[dict[str, float], dict[str, list[list[float]]]]:
    """``(metrics, per-sample statistics)`` of every non-native metric. A reference metric
    adds ``NAME_n`` (images with a reference) and is left out where none has one, or where the
    answers hold no text (``texts`` false: likelihood scoring)."""
    values: dict[str, float] = {}
    stats: dict[str, list[list[float]]] = {}
    todo = [m for m in metrics if m.name not in NATIVE and (texts or not m.needs_reference)]
    if not todo:
        return values, stats
    items = metric_items(samples, predictions, classes)
    with_ref = sum(1 for it in items if it.reference.strip())
    for m in todo:
        if m.needs_reference and not with_ref:
            continue
        table = np.asarray(m.statistics(items, classes), dtype=np.float64)
        values[m.name] = float(m.combine(table.sum(axis=0, keepdims=True), classes)[0])
        if m.needs_reference:
            values[f"{m.name}_n"] = with_ref
        stats[m.name] = table.tolist()
    return values, stats


def combiner(column: MetricColumn, classes: Sequence[str]) -> Callable[[np.ndarray], np.ndarray]:
    """The plugin's ``combine`` for a recorded column, importing only the plugin's module."""
    module = importlib.import_module(column.module)
    cls = getattr(module, column.cls)
    metric = cls(cls.Options.model_validate(column.options))
    return lambda sums: metric.combine(sums, classes)
