"""Every output of a results directory, rendered from rows + provenance + baselines alone.

``write_all(out_dir, rows, provenance, baselines)`` writes leaderboard.md/.tex, results.csv/.json,
predictions.jsonl, per_class.md, provenance.json, plots/*.png and report.html (one
self-contained page embedding the plots and the test images' thumbnails), each atomically.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.core.atomic import write_text_atomic
from harness.evaluation import analysis
from harness.evaluation.correction import DEFAULT_CORRECTION
from harness.exports.common import Rows, classes_of, fmt_p, fmt_params, ordered
from harness.exports.data import predictions_jsonl, results_csv, results_json
from harness.exports.html import report_html
from harness.exports.html_images import Thumbnail
from harness.exports.latex import latex_document, leaderboard_latex, tex_escape
from harness.exports.markdown import (
    caveats,
    leaderboard_markdown,
    per_class_markdown,
    provenance_block,
)
from harness.exports.plots import write_plots
from harness.results.columns import metric_table


def analyse(
    rows: Rows,
    provenance: Mapping[str, Any],
    n_resamples: int = 1000,
    seed: int = 0,
    correction: str = DEFAULT_CORRECTION,
) -> dict[str, Any]:
    """:func:`harness.evaluation.analysis.analyse` with the benchmark's classes taken from the
    provenance."""
    return analysis.analyse(
        rows,
        classes_of(rows, provenance),
        n_resamples,
        seed,
        correction,
        columns=metric_table(provenance),
    )


def write_all(
    out_dir: Path | str,
    rows: Rows,
    provenance: Mapping[str, Any],
    baselines: Mapping[str, Any] | None = None,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    plots: bool = True,
    analysis: Mapping[str, Any] | None = None,
    workers: int = 1,
    images: Mapping[str, Thumbnail] | None = None,
    image_note: str = "",
) -> list[Path]:
    """Render every output into ``out_dir``; returns the paths written.

    ``analysis`` (from :func:`analyse`) is computed when not given; pass it to reuse the
    bootstrap, e.g. for a console table. ``workers > 1`` renders plots in forked processes
    (CLI only; keep 1 inside a process that holds CUDA). ``images`` are the test images'
    thumbnails by sample id (placeholders where absent); ``image_note`` says why some are missing.
    """
    out = Path(out_dir)
    baselines = baselines or {}
    an = analysis or analyse(rows, provenance, n_resamples, seed)
    texts = {
        "leaderboard.md": leaderboard_markdown(rows, provenance, baselines, an),
        "leaderboard.tex": leaderboard_latex(rows, provenance, baselines, an),
        "results.csv": results_csv(rows, an),
        "results.json": results_json(rows, provenance, baselines, an),
        "predictions.jsonl": predictions_jsonl(rows),
        "per_class.md": per_class_markdown(rows, an),
        "provenance.json": json.dumps(provenance, indent=2, default=str) + "\n",
    }
    written = []
    for name, text in texts.items():
        write_text_atomic(out / name, text)
        written.append(out / name)
    if plots and rows:
        written += write_plots(out / "plots", rows, an, workers)
    page = report_html(rows, provenance, baselines, an, images or {}, out / "plots", image_note)
    write_text_atomic(out / "report.html", page)
    written.append(out / "report.html")
    return written


__all__ = [
    "analyse",
    "caveats",
    "classes_of",
    "fmt_p",
    "fmt_params",
    "latex_document",
    "leaderboard_latex",
    "leaderboard_markdown",
    "ordered",
    "per_class_markdown",
    "predictions_jsonl",
    "provenance_block",
    "results_csv",
    "results_json",
    "tex_escape",
    "write_all",
    "write_plots",
]
