"""What an evaluation returns: its metrics, its per-image predictions, and how long it took;
and the merge of the two scorings of ``--scoring both``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class EvalResult:
    metrics: dict[str, float]
    predictions: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


LIKELIHOOD_METRICS = ("macro_f1", "accuracy")


def combine_scorings(results: dict[str, EvalResult]) -> EvalResult:
    """One scoring's result as it is; for both, the generated result with every image's
    likelihood-scored label (``likelihood_prediction``, ``scores``) and the
    ``likelihood_<metric>`` metrics beside it."""
    if len(results) == 1:
        return next(iter(results.values()))
    gen, ll = results["generate"], results["likelihood"]
    metrics = dict(gen.metrics)
    metrics.update({f"likelihood_{m}": ll.metrics[m] for m in LIKELIHOOD_METRICS})
    by_id = {p["id"]: p for p in ll.predictions}
    predictions = [
        {
            **p,
            "likelihood_prediction": by_id[p["id"]]["prediction"],
            "scores": by_id[p["id"]]["scores"],
        }
        for p in gen.predictions
    ]
    return EvalResult(metrics, predictions, gen.seconds + ll.seconds)
