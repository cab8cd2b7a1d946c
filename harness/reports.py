"""Renders results (JSON, JSONL, Markdown) from the collected rows alone."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from harness.atomic import write_text_atomic

if TYPE_CHECKING:
    from harness.runner import BenchResult

COLUMNS: tuple[tuple[str, str], ...] = (
    ("macro_f1", "Macro-F1"),
    ("accuracy", "Accuracy"),
    ("rouge_l", "ROUGE-L"),
    ("invalid_rate", "Invalid"),
)


def leaderboard_rows(result: BenchResult) -> list[dict[str, Any]]:
    """One flat row per configuration, best Macro-F1 first, base kept as a reference row."""
    rows = []
    for r in result.rows:
        rows.append(
            {
                "config": r["config_id"],
                "trainer": r["trainer"],
                "augmenter": r["augmenter"],
                "synthesizer": r["synthesizer"],
                "seed": r["seed"],
                **{k: r["metrics"][k] for k, _ in COLUMNS},
                "trainable_params": r["trainable_params"],
                "train_seconds": r["train_seconds"],
            }
        )
    return sorted(rows, key=lambda x: -x["macro_f1"])


def fmt_params(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    if n >= 1_000:
        return f"{n / 1e3:.1f}k"
    return str(n)


def leaderboard_markdown(result: BenchResult) -> str:
    prov = result.provenance
    bench = prov["benchmark"]
    lines = [
        "# cxr-harness leaderboard",
        "",
        f"Benchmark **{bench['name']}** (fingerprint `{bench['fingerprint']}`, "
        f"{bench['sizes']['test']} test images), model `{prov['model']['model']}`, "
        f"prompt hash `{prov['prompt_hash']}`.",
        "",
        "| Configuration | " + " | ".join(t for _, t in COLUMNS) + " | Trainable | Train s |",
        "|---|" + "---:|" * (len(COLUMNS) + 2),
    ]
    for row in leaderboard_rows(result):
        cells = [f"{row[k]:.3f}" for k, _ in COLUMNS]
        lines.append(
            f"| {row['config']} | "
            + " | ".join(cells)
            + f" | {fmt_params(row['trainable_params'])} | {row['train_seconds']:.1f} |"
        )
    maj = result.baselines.get("majority")
    if maj:
        lines.append(
            f"| *majority-class baseline* | {maj['macro_f1']:.3f} | {maj['accuracy']:.3f} "
            "| – | 0.000 | – | – |"
        )
    lines += ["", "## Caveats", ""] + [f"- {c}" for c in prov.get("caveats", [])]
    lines += [
        "- Unparseable answers count as wrong in Macro-F1 and accuracy (see the Invalid column).",
        "",
        "## Provenance",
        "",
        "```json",
        json.dumps({k: v for k, v in prov.items() if k != "prompt"}, indent=2, default=str),
        "```",
        "",
    ]
    return "\n".join(lines)


def write_outputs(result: BenchResult) -> None:
    """Write results.json, predictions.jsonl and leaderboard.md atomically."""
    out = result.out
    rows = [{k: v for k, v in r.items() if k != "predictions"} for r in result.rows]
    doc = {"provenance": result.provenance, "baselines": result.baselines, "results": rows}
    write_text_atomic(out / "results.json", json.dumps(doc, indent=2, default=str) + "\n")
    pred_lines = [
        json.dumps({"config_id": r["config_id"], **p}, default=str)
        for r in result.rows
        for p in r["predictions"]
    ]
    write_text_atomic(out / "predictions.jsonl", "\n".join(pred_lines) + "\n")
    write_text_atomic(out / "leaderboard.md", leaderboard_markdown(result))
