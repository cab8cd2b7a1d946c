"""Machine-readable outputs: results.csv, results.json and predictions.jsonl."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from typing import Any

from harness.evaluation import stats
from harness.evaluation.hierarchical import METHOD as SEED_METHOD
from harness.exports.common import LIKELIHOOD_COLUMNS, Rows, coverage, scored_both, titled


def results_csv(rows: Rows, analysis: Mapping[str, Any]) -> str:
    heads = ["config_id", "trainer", "augmenter", "synthesizer", "seed", "n_test"]
    extra = LIKELIHOOD_COLUMNS if scored_both(rows) else ()  # --scoring both
    columns = [*titled(analysis), *extra]
    compared = [*stats.HEADLINE, *(m for m, _ in extra)]
    for m, _ in columns:
        heads += [m, f"{m}_ci_low", f"{m}_ci_high"]
    for m in compared:
        heads += [f"delta_{m}_vs_base", f"delta_{m}_ci_low", f"delta_{m}_ci_high", f"p_{m}"]
        heads.append(f"p_{m}_adjusted")
    heads += ["mcnemar_p", "mcnemar_p_adjusted", "p_correction"]
    heads += ["trainable_params", "train_seconds", "eval_seconds"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(heads)
    for r in rows:
        item = analysis["configs"][r["config_id"]]
        vals: list[Any] = [
            r["config_id"],
            r.get("trainer"),
            r.get("augmenter"),
            r.get("synthesizer"),
            r.get("seed"),
            r.get("n_test"),
        ]
        for m, _ in columns:
            ci = item["ci"].get(m)
            vals += [r["metrics"].get(m), ci.low if ci else "", ci.high if ci else ""]
        for m in compared:
            p = item["paired"].get(m)
            vals += [p.estimate, p.low, p.high, p.p_value, _blank(p.p_adjusted)] if p else [""] * 5
        mc = item["mcnemar"]
        vals += [
            mc.p_value if mc else "",
            _blank(mc.p_adjusted) if mc else "",
            analysis.get("correction", "none"),
            r.get("trainable_params"),
            r.get("train_seconds"),
            r.get("eval_seconds"),
        ]
        writer.writerow(vals)
    return buf.getvalue()


def _blank(value: float | None) -> float | str:
    return "" if value is None else value


def results_json(
    rows: Rows,
    provenance: Mapping[str, Any],
    baselines: Mapping[str, Any],
    analysis: Mapping[str, Any],
) -> str:
    results = []
    for r in rows:
        item = analysis["configs"][r["config_id"]]
        results.append(
            {
                **{k: v for k, v in r.items() if k != "predictions"},
                "ci": {m: ci.as_dict() for m, ci in item["ci"].items()},
                "paired_vs_base": {m: p.as_dict() for m, p in item["paired"].items()},
                "mcnemar_vs_base": item["mcnemar"].as_dict() if item["mcnemar"] else None,
                "coverage": {
                    m: {"n": cov[0], "of": cov[1]}
                    for m, _ in titled(analysis)
                    if (cov := coverage(r, m)) is not None
                },
                "per_class": item.get("per_class", []),
                "confusion": {
                    "classes": item.get("classes", []),
                    "matrix": item["confusion"].tolist() if "confusion" in item else [],
                },
            }
        )
    seeds = {k: {m: s.as_dict() for m, s in v.items()} for k, v in analysis["seeds"].items()}
    for rid, intervals in analysis.get("seeds_ci", {}).items():
        for m, ci in intervals.items():
            seeds[rid][m]["seeds_and_images_ci"] = ci.as_dict()
    doc = {
        "provenance": provenance,
        "baselines": baselines,
        "results": results,
        "seeds": seeds,
        "bootstrap": {
            "n_resamples": analysis["n_resamples"],
            "seed": analysis["seed"],
            "confidence": 0.95,
            "p_correction": analysis.get("correction", "none"),
            "seed_rows": SEED_METHOD,
        },
    }
    return json.dumps(doc, indent=2, default=str) + "\n"


def predictions_jsonl(rows: Rows) -> str:
    lines = [
        json.dumps({"config_id": r["config_id"], **p}, default=str)
        for r in rows
        for p in r.get("predictions", [])
    ]
    return "\n".join(lines) + "\n"
