"""Macro-F1, accuracy (scikit-learn) and ROUGE-L (rouge-score) for in-training validation and
the native leaderboard path; invalid answers count as wrong. What the leaderboard shows, and in
which direction each metric is better, comes from the metric plugins (``plugins/metrics``)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score

if TYPE_CHECKING:
    from harness.data.benchmark import Benchmark

INVALID = "invalid"


@lru_cache(maxsize=1)
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure with stemming; an empty prediction scores 0."""
    if not prediction.strip() or not reference.strip():
        return 0.0
    return float(_scorer().score(reference, prediction)["rougeL"].fmeasure)


def classification_metrics(
    y_true: Sequence[str], y_pred: Sequence[str | None], classes: Sequence[str]
) -> dict[str, float]:
    """Macro-F1 over ``classes`` and accuracy; a ``None`` prediction is invalid and wrong.

    Invalid predictions are kept in the denominator: they are false negatives for the true class
    and false positives for no class.
    """
    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    if not y_true:
        return {"macro_f1": 0.0, "accuracy": 0.0, "invalid_rate": 0.0}
    pred = [p if p is not None else INVALID for p in y_pred]
    f1 = f1_score(list(y_true), pred, labels=list(classes), average="macro", zero_division=0)
    acc = float(np.mean([t == p for t, p in zip(y_true, pred, strict=True)]))
    invalid = float(np.mean([p is None for p in y_pred]))
    return {"macro_f1": float(f1), "accuracy": acc, "invalid_rate": invalid}


def confusion(
    y_true: Sequence[str], y_pred: Sequence[str | None], classes: Sequence[str]
) -> np.ndarray:
    """Confusion matrix with rows = true classes and columns = classes + ``invalid``."""
    pred = [p if p is not None else INVALID for p in y_pred]
    cols = list(classes) + [INVALID]
    return confusion_matrix(list(y_true), pred, labels=cols)[: len(classes)]


def majority_baseline(
    train_labels: Sequence[str], y_true: Sequence[str], classes: Sequence[str]
) -> dict[str, float]:
    """Predict the most frequent training class for every test image."""
    values, counts = np.unique(np.asarray(train_labels), return_counts=True)
    majority = str(values[int(np.argmax(counts))])
    return classification_metrics(y_true, [majority] * len(y_true), classes)


def same_class_reference(bench: Benchmark, seed: int = 0) -> dict[str, Any]:
    """ROUGE-L of a random same-class train reference against each test reference.

    It reads no image: what a model scores at or below this is style-matching, not reading.
    """
    by_class: dict[str, list[str]] = {}
    for s in bench.train:
        if s.report:
            by_class.setdefault(s.label, []).append(s.report)
    rng = np.random.default_rng(seed)
    scores = [
        rouge_l(by_class[s.label][int(rng.integers(len(by_class[s.label])))], s.report)
        for s in bench.test
        if by_class.get(s.label) and s.report
    ]
    return {"rouge_l": float(np.mean(scores)) if scores else 0.0, "n": len(scores)}
