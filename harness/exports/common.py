"""Shared helpers of the exporters: the metric table's columns, number formats, ordering, best
values. The columns come from the run's metric table (``analysis["columns"]``, built from the
chosen metric plugins and recorded in the provenance); every export only formats them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from harness.evaluation.correction import LABELS
from harness.results.columns import LEGACY, MetricColumn

SMALL_CLASS = 30
Rows = Sequence[Mapping[str, Any]]


def fmt_params(n: int | None) -> str:
    if n is None:
        return "–"
    if n >= 1_000_000:
        return f"{n / 1e6:.2f}M"
    return f"{n / 1e3:.1f}k" if n >= 1_000 else str(n)


def fmt_p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def slug(config_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", config_id).strip("_") or "config"


def classes_of(rows: Rows, provenance: Mapping[str, Any]) -> list[str]:
    classes = list(provenance.get("benchmark", {}).get("classes") or [])
    return classes or sorted({p["label"] for r in rows for p in r.get("predictions", [])})


def ordered(rows: Rows) -> list[Mapping[str, Any]]:
    """Best Macro-F1 first; ties keep their order."""
    return sorted(rows, key=lambda r: -float(r["metrics"].get("macro_f1", 0.0)))


def metric_columns(an: Mapping[str, Any]) -> tuple[MetricColumn, ...]:
    """The leaderboard's metric table (the legacy four for an analysis without one)."""
    return tuple(an.get("columns") or LEGACY)


def titled(an: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(name, title)`` of each leaderboard column, in the table's order."""
    return [(c.name, c.title) for c in metric_columns(an)]


def baseline_cells(an: Mapping[str, Any], values: Mapping[str, Any], none: str = "–") -> list[str]:
    """A reference baseline's cells, one per leaderboard column (``none`` where it has no
    value for that metric)."""
    return [
        f"{float(values[m]):.3f}" if isinstance(values.get(m), int | float) else none
        for m, _ in titled(an)
    ]


def best(rows: Rows, an: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for c in metric_columns(an):
        vals = [float(r["metrics"][c.name]) for r in rows if c.name in r["metrics"]]
        if vals:
            out[c.name] = max(vals) if c.higher_is_better else min(vals)
    return out


def cell(r: Mapping[str, Any], an: Mapping[str, Any], m: str) -> tuple[float | None, float | None]:
    """(value, CI half-width); value None where the row does not report the metric."""
    if m not in r["metrics"]:
        return None, None
    ci = an["configs"][r["config_id"]]["ci"].get(m)
    return float(r["metrics"][m]), (ci.half_width if ci else None)


def coverage(r: Mapping[str, Any], m: str) -> tuple[int, int] | None:
    """(images scored, test images) of a reference metric (it records ``NAME_n``, the images
    with a reference); None for every other metric."""
    key = f"{m}_n"
    if m not in r["metrics"] or (key not in r["metrics"] and m != "rouge_l"):
        return None
    total = int(r.get("n_test") or len(r.get("predictions", [])))
    n = r["metrics"].get(key)
    return (int(n) if n is not None else total), total


def coverage_suffix(r: Mapping[str, Any], m: str) -> str:
    """`` (n/N)`` where a reference metric covers only part of the test images, else empty."""
    cov = coverage(r, m)
    return f" ({cov[0]}/{cov[1]})" if cov and cov[0] < cov[1] else ""


def coverage_note(rows: Rows, an: Mapping[str, Any]) -> str:
    """One sentence on which images the reference metrics average over, for table captions."""
    refs = [c for c in metric_columns(an) if c.needs_reference]
    parts = sorted({coverage(r, c.name) for r in rows for c in refs} - {None})
    if not parts:
        return ""
    names = ", ".join(c.title for c in refs if any(c.name in r["metrics"] for r in rows))
    spans = ", ".join(f"{n} of {total}" for n, total in parts)
    verb = "uses" if "," not in names else "use"
    return f"{names} {verb} the test images with a reference report only ({spans})."


def fmt_p_adjusted(result: Any, an: Mapping[str, Any], math: bool = False, sep: str = " ") -> str:
    """The raw p with the grid-corrected p next to it, ``0.012 (Holm 0.036)``; the raw p alone
    without a correction. ``math`` wraps the numbers for LaTeX; ``sep`` goes between the two
    (a line break in a narrow terminal table)."""
    method = an.get("correction", "none")

    def num(p: float) -> str:
        return f"${fmt_p(p)}$" if math else fmt_p(p)

    if method == "none" or getattr(result, "p_adjusted", None) is None:
        return num(result.p_value)
    return f"{num(result.p_value)}{sep}({LABELS[method]} {num(result.p_adjusted)})"


def correction_note(an: Mapping[str, Any]) -> str:
    """One sentence on the correction of the p-values for the grid's comparisons with base."""
    method = an.get("correction", "none")
    family = sum(1 for item in an["configs"].values() if item.get("paired"))
    if family == 0:
        return ""
    if method == "none":
        return "p-values are not corrected for multiple comparisons."
    what = {
        "holm": "Holm's step-down correction (family-wise error rate)",
        "bh": "the Benjamini–Hochberg correction (false discovery rate)",
    }[method]
    return (
        f"In parentheses: p adjusted by {what} across the {family} configurations compared "
        "with base, per metric."
    )


def seed_cells(an: Mapping[str, Any], recipe: str, pm: str = " ± ", none: str = "–") -> list[str]:
    """One recipe's seed-table cells: ``mean ± sd [low, high]`` per column, the interval from
    the bootstrap over seeds and images where it was computed."""
    summ = an["seeds"][recipe]
    cis = an.get("seeds_ci", {}).get(recipe, {})
    return [
        f"{summ[m].mean:.3f}{pm}{summ[m].sd:.3f}"
        + (f" [{cis[m].low:.3f}, {cis[m].high:.3f}]" if m in cis else "")
        if m in summ
        else none
        for m, _ in titled(an)
    ]


def fmt_train_seconds(row: Mapping[str, Any]) -> str:
    """Training time, or "–" for a row that never trained (base, a loaded adapter): loading the
    model is not training."""
    seconds = row.get("train_seconds")
    if row.get("trainer") == "base" or seconds is None:
        return "–"
    return f"{float(seconds):.1f}"


# ---------------------------------------------------------------- --scoring both

LIKELIHOOD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("likelihood_macro_f1", "Likelihood Macro-F1"),
    ("likelihood_accuracy", "Likelihood accuracy"),
)
KNOWLEDGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("macro_f1", "Generated Macro-F1"),
    ("accuracy", "Generated accuracy"),
    ("invalid_rate", "Invalid"),
    *LIKELIHOOD_COLUMNS,
)
KNOWLEDGE_HEADS: tuple[str, ...] = (
    *(t for _, t in KNOWLEDGE_COLUMNS),
    "ΔLikelihood Macro-F1 vs base",
    "p",
)
KNOWLEDGE_NOTE = (
    "Each row scored twice on the same images: its generated answers, parsed strictly (an "
    "answer without a Class: line is invalid and wrong), and the label the model ranks first "
    "by likelihood after the prompt (never invalid). A low generated score next to a high "
    "likelihood score means the model knows the class but does not write the answer format."
)


def scored_both(rows: Rows) -> list[Mapping[str, Any]]:
    """The rows scored both by generation and by likelihood (``--scoring both``), best first."""
    return [r for r in ordered(rows) if "likelihood_macro_f1" in r["metrics"]]


def knowledge_cells(
    r: Mapping[str, Any], an: Mapping[str, Any], pm: str = " ± ", none: str = "–"
) -> list[str]:
    """One row of the format-vs-knowledge table: generated and likelihood-scored metrics with
    CI half-widths, and the likelihood Macro-F1's paired test against base."""
    cells = []
    for m, _ in KNOWLEDGE_COLUMNS:
        v, hw = cell(r, an, m)
        text = none if v is None else f"{v:.3f}" + (f"{pm}{hw:.3f}" if hw is not None else "")
        cells.append(text)
    p = an["configs"][r["config_id"]]["paired"].get("likelihood_macro_f1")
    if p is None:
        return [*cells, none, none]
    return [*cells, f"{p.estimate:+.3f} [{p.low:+.3f}, {p.high:+.3f}]", fmt_p_adjusted(p, an)]
