"""Markdown outputs: the leaderboard (CIs, paired tests, seeds), per-class tables, caveats and
the provenance block."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from harness.evaluation import stats
from harness.evaluation.analysis import analyse
from harness.exports.common import (
    KNOWLEDGE_HEADS,
    KNOWLEDGE_NOTE,
    SMALL_CLASS,
    Rows,
    baseline_cells,
    best,
    cell,
    classes_of,
    correction_note,
    coverage_note,
    coverage_suffix,
    fmt_p_adjusted,
    fmt_params,
    fmt_train_seconds,
    knowledge_cells,
    ordered,
    scored_both,
    seed_cells,
    titled,
)
from harness.results.columns import metric_table

SEEDS_NOTE = (
    "Mean ± sample sd of the seed rows; in brackets the 95% percentile interval of a "
    "hierarchical bootstrap ({n} resamples, seed {seed}): each resample draws the seeds with "
    "replacement, then the test images with replacement (one draw for all seeds), and averages "
    "the drawn seeds' metrics, so the interval covers training and test-set variance together."
)


def leaderboard_markdown(
    rows: Rows,
    provenance: Mapping[str, Any],
    baselines: Mapping[str, Any],
    analysis: Mapping[str, Any] | None = None,
) -> str:
    """The Markdown leaderboard (reports.leaderboard_markdown plus CIs, paired tests, seeds)."""
    an = analysis or analyse(rows, classes_of(rows, provenance), columns=metric_table(provenance))
    bench = provenance.get("benchmark", {})
    top = best(rows, an)
    lines = [
        "# cxr-harness leaderboard",
        "",
        f"Benchmark **{bench.get('name', '?')}** (fingerprint `{bench.get('fingerprint', '?')}`, "
        f"{bench.get('sizes', {}).get('test', '?')} test images), model "
        f"`{provenance.get('model', {}).get('model', '?')}`, prompt hash "
        f"`{provenance.get('prompt_hash', '?')}`.",
        "",
        f"Values are estimate ± half-width of the 95% percentile bootstrap CI "
        f"({an['n_resamples']} resamples, seed {an['seed']}); best per column in bold. "
        "Δ and p compare with base on the same test images (paired bootstrap; McNemar for "
        "accuracy). " + " ".join(x for x in (correction_note(an), coverage_note(rows, an)) if x),
        "",
        "| Configuration | " + " | ".join(t for _, t in titled(an)) + " | ΔMacro-F1 vs base | p "
        "| McNemar p | Trainable | Train s |",
        "|---|" + "---:|" * (len(titled(an)) + 5),
    ]
    for r in ordered(rows):
        cells = []
        for m, _ in titled(an):
            v, hw = cell(r, an, m)
            if v is None:
                cells.append("–")
                continue
            text = f"{v:.3f}" + (f" ± {hw:.3f}" if hw is not None else "")
            text = f"**{text}**" if abs(v - top[m]) < 1e-12 else text
            cells.append(text + coverage_suffix(r, m))
        item = an["configs"][r["config_id"]]
        pf = item["paired"].get("macro_f1")
        mc = item["mcnemar"]
        cells += [
            f"{pf.estimate:+.3f} [{pf.low:+.3f}, {pf.high:+.3f}]" if pf else "–",
            fmt_p_adjusted(pf, an) if pf else "–",
            fmt_p_adjusted(mc, an) if mc else "–",
            fmt_params(r.get("trainable_params")),
            fmt_train_seconds(r),
        ]
        lines.append(f"| {r['config_id']} | " + " | ".join(cells) + " |")
    maj = baselines.get("majority")
    if maj:
        cells = baseline_cells(an, maj) + ["–"] * 5
        lines.append("| *majority-class baseline* | " + " | ".join(cells) + " |")
    oracle = baselines.get("same_class_reference")
    if oracle and any("rouge_l" in r["metrics"] for r in rows):
        cells = baseline_cells(an, {"rouge_l": oracle["rouge_l"]}) + ["–"] * 5
        lines.append("| *same-class reference (ROUGE-L oracle)* | " + " | ".join(cells) + " |")
    lines += _paired_md(rows, an) + _knowledge_md(rows, an) + _seeds_md(an)
    lines += ["", "## Caveats", ""] + [f"- {c}" for c in caveats(rows, provenance, an, baselines)]
    lines += ["", "## Provenance", ""] + [
        f"- {k}: {v}" for k, v in provenance_block(rows, provenance)
    ]
    return "\n".join(lines) + "\n"


def _paired_md(rows: Rows, an: Mapping[str, Any]) -> list[str]:
    out = ["", "## Paired tests against base", ""]
    if not an["base"]:
        return out + ["No base row: no paired tests."]
    if not any(an["configs"][r["config_id"]]["paired"] for r in rows):
        return out + ["Only the base row: nothing to compare with it."]
    out += [
        correction_note(an),
        "",
        "| Configuration | n | "
        + " | ".join(f"Δ{t} [95% CI] | p" for _, t in titled({})[:3])
        + " | McNemar b/c | McNemar p |",
        "|---|" + "---:|" * 9,
    ]
    for r in rows:
        item = an["configs"][r["config_id"]]
        if not item["paired"]:
            continue
        cells = []
        for m in stats.HEADLINE:
            p = item["paired"].get(m)
            if p is None:
                cells += ["–", "–"]
                continue
            cells += [f"{p.estimate:+.3f} [{p.low:+.3f}, {p.high:+.3f}]", fmt_p_adjusted(p, an)]
        mc = item["mcnemar"]
        n = item["paired"]["macro_f1"].n
        cells += [f"{mc.b}/{mc.c}", f"{fmt_p_adjusted(mc, an)}, {mc.method}"]
        out.append(f"| {r['config_id']} | {n} | " + " | ".join(cells) + " |")
    return out


def _knowledge_md(rows: Rows, an: Mapping[str, Any]) -> list[str]:
    both = scored_both(rows)
    if not both:
        return []
    out = [
        "",
        "## Format vs knowledge: generated and likelihood-scored",
        "",
        KNOWLEDGE_NOTE,
        "",
        "| Configuration | " + " | ".join(KNOWLEDGE_HEADS) + " |",
        "|---|" + "---:|" * len(KNOWLEDGE_HEADS),
    ]
    for r in both:
        out.append(f"| {r['config_id']} | " + " | ".join(knowledge_cells(r, an)) + " |")
    return out


def _seeds_md(an: Mapping[str, Any]) -> list[str]:
    if not an["seeds"]:
        return []
    out = [
        "",
        "## Across training seeds (mean ± sd [95% CI over seeds and images])",
        "",
        SEEDS_NOTE.format(n=an["n_resamples"], seed=an["seed"]),
        "",
        "| Recipe | Seeds | " + " | ".join(t for _, t in titled(an)) + " |",
        "|---|" + "---:|" * (len(titled(an)) + 1),
    ]
    for rid, summ in an["seeds"].items():
        cells = seed_cells(an, rid, pm=" ± ", none="–")
        out.append(f"| {rid} | {summ['macro_f1'].n} | " + " | ".join(cells) + " |")
    return out


def per_class_markdown(rows: Rows, analysis: Mapping[str, Any]) -> str:
    lines = ["# Per-class results", "", "Invalid answers count as wrong (false negatives)."]
    for r in rows:
        item = analysis["configs"][r["config_id"]]
        if "per_class" not in item:
            continue
        lines += [
            "",
            f"## {r['config_id']}",
            "",
            "| Class | n | Precision | Recall | F1 | Predicted | Invalid |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for c in item["per_class"]:
            lines.append(
                f"| {c['class']} | {c['support']} | {c['precision']:.3f} | {c['recall']:.3f} "
                f"| {c['f1']:.3f} | {c['predicted']} | {c['invalid']} |"
            )
        cols = item["classes"] + ["invalid"]
        lines += [
            "",
            "Confusion matrix (rows: true, columns: predicted)",
            "",
            "| true \\ pred | " + " | ".join(cols) + " |",
            "|---|" + "---:|" * len(cols),
        ]
        for name, counts in zip(item["classes"], item["confusion"], strict=True):
            lines.append(f"| {name} | " + " | ".join(str(int(x)) for x in counts) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- caveats and provenance


def caveats(
    rows: Rows,
    provenance: Mapping[str, Any],
    an: Mapping[str, Any],
    baselines: Mapping[str, Any] | None = None,
) -> list[str]:
    """Automatic caveats: meaningless comparisons first, then synthetic text, small classes,
    exclusions, de-duplication, seeds."""
    bench = provenance.get("benchmark", {})
    out = meaning_caveats(rows, an, baselines or {})
    out += [str(c) for c in provenance.get("caveats", [])]
    synths = sorted({str(r.get("synthesizer")) for r in rows} - {"none", "None"})
    if synths:
        out.append(
            f"Training report texts were synthesized ({', '.join(synths)}), not written by "
            "radiologists; ROUGE-L measures agreement with the benchmark's reference reports."
        )
    if bench.get("synthetic_references"):
        out.append("The benchmark's reference reports are synthetic.")
    raw = bench.get("test_counts") or {}
    order = [c for c in an.get("classes", []) if c in raw] + sorted(set(raw) - set(an["classes"]))
    counts = {c: raw[c] for c in order}
    if counts:
        sizes = ", ".join(f"{k} {v}" for k, v in counts.items())
        out.append(f"Test images per class: {sizes}.")
        small = [k for k, v in counts.items() if v < SMALL_CLASS]
        if small:
            out.append(
                f"Classes with fewer than {SMALL_CLASS} test images ({', '.join(small)}) have "
                "wide per-class intervals; read their precision/recall/F1 with care."
            )
    excluded = bench.get("excluded_classes")
    if excluded:
        out.append(f"Excluded classes: {', '.join(map(str, excluded))}.")
    dedup = bench.get("dedup")
    if dedup:
        items = dedup.items() if isinstance(dedup, Mapping) else [("removed", dedup)]
        out.append("De-duplication: " + ", ".join(f"{k} {v}" for k, v in items) + ".")
    bad = [
        f"{r['config_id']} {r['metrics']['invalid_rate']:.1%}"
        for r in rows
        if r["metrics"].get("invalid_rate", 0) > 0
    ]
    out.append(
        "Unparseable answers count as wrong in Macro-F1 and accuracy"
        + (f" (invalid rate: {'; '.join(bad)})." if bad else "; no answer was invalid.")
    )
    sizes = {r["config_id"]: len(r.get("predictions", [])) for r in rows}
    if len(set(sizes.values())) > 1:
        out.append(f"Configurations answered different numbers of test images: {sizes}.")
    if any(r.get("trainer") != "base" for r in rows) and not an["seeds"]:
        out.append(
            "Each fine-tuned recipe ran with a single training seed: intervals reflect test-set "
            "sampling only, not training variance."
        )
    return out


BASE_INVALID_LIMIT = 0.5


def meaning_caveats(rows: Rows, an: Mapping[str, Any], baselines: Mapping[str, Any]) -> list[str]:
    """Where a Δ or a p-value means little: a base that rarely answered, rows below the
    majority-class baseline, and reference metrics that cover only part of the test set."""
    out = []
    base = next((r for r in rows if r.get("config_id") == an.get("base")), None)
    invalid = float(base["metrics"].get("invalid_rate", 0.0)) if base else 0.0
    if base is not None and invalid >= BASE_INVALID_LIMIT:
        out.append(
            f"The base row answered in the expected format for only {1 - invalid:.0%} of the "
            f"test images ({invalid:.0%} invalid): a Δ or p against base measures learning the "
            "answer format, not reading the image." + _knowledge_hint(base)
        )
    maj = baselines.get("majority") or {}
    if "macro_f1" in maj:
        below = [
            f"{r['config_id']} ({float(r['metrics']['macro_f1']):.3f})"
            for r in rows
            if float(r["metrics"].get("macro_f1", 0.0)) < float(maj["macro_f1"]) - 1e-12
        ]
        if below:
            out.append(
                f"Below the majority-class baseline's Macro-F1 of {float(maj['macro_f1']):.3f}: "
                f"{', '.join(below)}; such a row does no better than always answering one class."
            )
    partial = [
        f"{r['config_id']} {n}/{r.get('n_test') or len(r.get('predictions', []))}"
        for r in rows
        if (n := r["metrics"].get("rouge_l_n")) is not None
        and n < (r.get("n_test") or len(r.get("predictions", [])))
    ]
    if partial:
        out.append(
            "ROUGE-L is averaged over the test images that have a reference report only "
            f"({'; '.join(partial)})."
        )
    return out


def _knowledge_hint(base: Mapping[str, Any]) -> str:
    ll = base["metrics"].get("likelihood_macro_f1")
    if ll is None:
        return " Run with --scoring both to score its classification by likelihood as well."
    return f" Scored by likelihood, which needs no answer format, its Macro-F1 is {float(ll):.3f}."


def provenance_block(rows: Rows, provenance: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs of everything needed to reproduce the numbers."""
    bench = provenance.get("benchmark", {})
    model = provenance.get("model", {})
    gen = provenance.get("generation", {})

    def distinct(key: str) -> str:
        vals = sorted({str(r.get(key)) for r in rows if r.get(key)})
        return ", ".join(vals) or "–"

    adapters = [f"{r['config_id']}={r['adapter_hash']}" for r in rows if r.get("adapter_hash")]
    return [
        (
            "Benchmark",
            f"{bench.get('name', '?')} (fingerprint {bench.get('fingerprint', '?')}; "
            + ", ".join(f"{k} {v}" for k, v in (bench.get("sizes") or {}).items())
            + ")",
        ),
        (
            "Model",
            f"{model.get('model', '?')} revision {model.get('revision') or '–'}, weights "
            f"hash {model.get('weights_hash') or model.get('hash') or '–'}, dtype "
            f"{model.get('dtype', '?')}",
        ),
        ("Adapter hashes", ", ".join(adapters) or "–"),
        ("Prompt hash", str(provenance.get("prompt_hash", "?"))),
        ("Chat-template hashes", distinct("chat_template_hash")),
        ("Generation", json.dumps(gen, sort_keys=True)),
        (
            "Image size",
            f"min_pixels {model.get('min_pixels', '?')}, max_pixels {model.get('max_pixels', '?')}",
        ),
        ("Batch size", str(gen.get("batch_size", "?"))),
        ("Seeds", str(provenance.get("seeds", sorted({r.get("seed") for r in rows}, key=str)))),
        ("Packages", ", ".join(f"{k} {v}" for k, v in provenance.get("packages", {}).items())),
        ("Git commit", str(provenance.get("git_commit", "?"))),
        ("Hardware", json.dumps(provenance.get("hardware", {}), sort_keys=True)),
        ("Started", str(provenance.get("started", "?"))),
    ]
