"""Everything the exports show for one grid: CIs, paired tests against base corrected for the
grid's many comparisons, per-class tables, confusion matrices, and seed summaries with a
bootstrap over seeds and images together."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.evaluation.correction import DEFAULT_CORRECTION, adjust, check_correction
from harness.evaluation.hierarchical import seed_image_intervals
from harness.evaluation.result import LIKELIHOOD_METRICS
from harness.evaluation.scoring import combiner
from harness.evaluation.seeds import HEADLINE, aggregate_seeds, recipe_id
from harness.evaluation.stats import (
    DEFAULT_RESAMPLES,
    Encoded,
    bootstrap_weights,
    encode,
    mcnemar_encoded,
    metric_intervals,
    paired_bootstrap,
    shared_ids,
)
from harness.results.columns import LEGACY, NATIVE, MetricColumn


def per_class(enc: Encoded) -> list[dict[str, Any]]:
    """Precision, recall, F1, support and predicted count per class (invalid = wrong)."""
    k = len(enc.classes)
    rows = []
    for c, name in enumerate(enc.classes):
        tp = int(np.sum((enc.true == c) & (enc.pred == c)))
        support = int(np.sum(enc.true == c))
        predicted = int(np.sum(enc.pred == c))
        prec = tp / predicted if predicted else 0.0
        rec = tp / support if support else 0.0
        f1 = 2 * tp / (support + predicted) if support + predicted else 0.0
        invalid = int(np.sum((enc.true == c) & (enc.pred == k)))
        rows.append(
            {
                "class": name,
                "precision": prec,
                "recall": rec,
                "f1": f1,
                "support": support,
                "predicted": predicted,
                "invalid": invalid,
            }
        )
    return rows


def confusion_matrix(enc: Encoded) -> np.ndarray:
    """Rows = true classes, columns = classes + ``invalid``."""
    k = len(enc.classes)
    m = np.zeros((k, k + 1), dtype=np.int64)
    np.add.at(m, (enc.true, enc.pred), 1)
    return m


def correct_family(
    per: Mapping[str, dict[str, Any]], method: str, metrics: Sequence[str] = HEADLINE
) -> None:
    """Set ``p_adjusted`` on every paired result and McNemar test, one family per metric: the
    configurations compared with base."""
    paired = {m for item in per.values() for m in item["paired"]}
    families = [*metrics, *sorted(paired - set(metrics)), "mcnemar"]
    for m in families:
        ids = [
            cid
            for cid, item in per.items()
            if (item["mcnemar"] if m == "mcnemar" else item["paired"].get(m)) is not None
        ]

        def get(cid: str, m: str = m) -> Any:
            return per[cid]["mcnemar"] if m == "mcnemar" else per[cid]["paired"][m]

        adjusted = adjust([get(cid).p_value for cid in ids], method)
        for cid, p in zip(ids, adjusted, strict=True):
            new = dataclasses.replace(get(cid), p_adjusted=p)
            if m == "mcnemar":
                per[cid]["mcnemar"] = new
            else:
                per[cid]["paired"][m] = new


def likelihood_encoded(row: Mapping[str, Any], classes: Sequence[str]) -> Encoded | None:
    """A ``--scoring both`` row's likelihood-scored labels as arrays; None for other rows."""
    preds = row.get("predictions", [])
    if not preds or any("likelihood_prediction" not in p for p in preds):
        return None
    return encode([{**p, "prediction": p["likelihood_prediction"]} for p in preds], classes)


def _likelihood_stats(
    item: dict[str, Any],
    enc: Encoded,
    base: Encoded | None,
    weights: dict[int, np.ndarray],
    n_resamples: int,
    seed: int,
) -> None:
    """CIs of the likelihood-scored metrics and, against a base scored both ways too, their
    paired tests, under ``likelihood_<metric>``."""
    for m, ci in metric_intervals(enc, weights=weights[enc.n]).items():
        if m in LIKELIHOOD_METRICS:
            item["ci"][f"likelihood_{m}"] = ci
    if base is None or not shared_ids(base, enc):
        return
    n = len(shared_ids(base, enc))
    if n not in weights:
        weights[n] = bootstrap_weights(n, n_resamples, seed)
    for m, p in paired_bootstrap(base, enc, LIKELIHOOD_METRICS, weights=weights[n]).items():
        item["paired"][f"likelihood_{m}"] = dataclasses.replace(p, metric=f"likelihood_{m}")


def analyse(
    rows: Sequence[Mapping[str, Any]],
    classes: Sequence[str],
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    correction: str = DEFAULT_CORRECTION,
    columns: Sequence[MetricColumn] = LEGACY,
) -> dict[str, Any]:
    """CIs, paired tests vs base (raw and corrected p), per-class tables, confusion matrices,
    seed summaries and their bootstrap over seeds and images, for the metric table
    ``columns`` (plugin metrics are combined from each row's per-sample statistics)."""
    check_correction(correction)
    combiners = {c.name: combiner(c, classes) for c in columns if c.name not in NATIVE}
    enc = {
        r["config_id"]: encode(r.get("predictions", []), classes, r.get("metric_stats"), combiners)
        for r in rows
    }
    paired = list(dict.fromkeys([*HEADLINE, *(c.name for c in columns if c.paired)]))
    seed_metrics = list(dict.fromkeys([*HEADLINE, "invalid_rate", *(c.name for c in columns)]))
    base = next((r["config_id"] for r in rows if r.get("trainer") == "base"), None)
    enc_ll = {r["config_id"]: likelihood_encoded(r, classes) for r in rows}
    weights: dict[int, np.ndarray] = {}
    per: dict[str, dict[str, Any]] = {}
    for r in rows:
        cid, e = r["config_id"], enc[r["config_id"]]
        item: dict[str, Any] = {"ci": {}, "paired": {}, "mcnemar": None}
        if e.n:
            if e.n not in weights:
                weights[e.n] = bootstrap_weights(e.n, n_resamples, seed)
            item["ci"] = metric_intervals(e, weights=weights[e.n])
            item["per_class"] = per_class(e)
            item["confusion"] = confusion_matrix(e)
            item["classes"] = list(e.classes)
        if base and cid != base and e.n and enc[base].n and shared_ids(enc[base], e):
            shared = len(shared_ids(enc[base], e))
            if shared not in weights:
                weights[shared] = bootstrap_weights(shared, n_resamples, seed)
            item["paired"] = paired_bootstrap(enc[base], e, metrics=paired, weights=weights[shared])
            item["mcnemar"] = mcnemar_encoded(enc[base], e)
        if e.n and enc_ll[cid] is not None:
            other = enc_ll[base] if base and cid != base else None
            _likelihood_stats(item, enc_ll[cid], other, weights, n_resamples, seed)
        for m in paired:  # a metric the row does not report (e.g. ROUGE-L of likelihood scoring)
            if m not in r.get("metrics", {}):
                item["ci"].pop(m, None)
                item["paired"].pop(m, None)
        per[cid] = item
    correct_family(per, correction, paired)
    trained = [r for r in rows if r.get("trainer") != "base"]
    seeds = {
        k: v
        for k, v in aggregate_seeds(trained, seed_metrics).items()
        if v and next(iter(v.values())).n > 1
    }
    seeds_ci = {}
    for rid, summ in seeds.items():
        encs = [enc[r["config_id"]] for r in trained if recipe_id(r["config_id"]) == rid]
        try:
            seeds_ci[rid] = seed_image_intervals(encs, tuple(summ), n_resamples, seed)
        except ValueError:  # seed rows without shared, equally labelled images: mean ± sd only
            continue
    return {
        "classes": list(classes),
        "base": base,
        "configs": per,
        "seeds": seeds,
        "seeds_ci": seeds_ci,
        "n_resamples": n_resamples,
        "seed": seed,
        "correction": correction,
        "columns": list(columns),
    }
