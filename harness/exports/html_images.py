"""The HTML report's per-image view: the test images as small embedded thumbnails, and the
document the page's script draws the view from.

A run's predictions name their images by sample id only; the pixels and reference reports live
in the benchmark the run used. ``thumbnails(samples)`` turns in-memory samples into thumbnails
(the bench step, which holds the benchmark); ``benchmark_thumbnails(provenance)`` reads them
back from the benchmark folder (or benchmark plugin) that the provenance names, for
``harness report``. An image that cannot be read becomes a placeholder with the reason; it
never fails the report.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from PIL import Image

from harness.core.errors import HarnessError
from harness.exports.common import Rows, ordered
from harness.exports.html_assets import IMAGES, fill

THUMB_PX = 128
JPEG_QUALITY = 80


@dataclass(frozen=True)
class Thumbnail:
    """One test image: a ``data:`` URI (empty when unreadable, with ``error`` saying why) and the
    image's reference report."""

    id: str
    label: str
    report: str
    uri: str = ""
    error: str = ""


def encode_thumbnail(image: Image.Image, size: int = THUMB_PX) -> str:
    """A JPEG ``data:`` URI of ``image`` downscaled to at most ``size`` px on its longer side."""
    img = image.convert("L") if image.mode not in ("L", "RGB") else image.copy()
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _thumb(sid: str, label: str, report: str, image: Any) -> Thumbnail:
    try:
        return Thumbnail(sid, label, report, uri=encode_thumbnail(image))
    except Exception as exc:  # one unreadable image shows a placeholder, never fails the report
        return Thumbnail(sid, label, report, error=f"{type(exc).__name__}: {exc}")


def thumbnails(samples: Iterable[Any], size: int = THUMB_PX) -> dict[str, Thumbnail]:
    """Thumbnails of in-memory samples (anything with ``id``, ``label``, ``report``,
    ``image``), by sample id."""
    return {s.id: _thumb(s.id, s.label, s.report or "", s.image) for s in samples}


def benchmark_source(name: str, registered: Iterable[str]) -> str:
    """Where a run's benchmark lives, for reading its images back later: ``plugin`` for a
    registered benchmark, else the absolute path of its built folder."""
    if name in set(registered):
        return "plugin"
    from harness.data.layout import resolve_dir

    return str(resolve_dir(name).resolve())


def benchmark_thumbnails(
    provenance: Mapping[str, Any], image_ids: Iterable[str]
) -> tuple[dict[str, Thumbnail], str]:
    """Thumbnails of ``image_ids`` read from the benchmark the provenance names, and a note
    (empty if every image was found). A built folder is read for its test rows only; a
    benchmark whose fingerprint differs from the run's shows placeholders only."""
    bench = provenance.get("benchmark") or {}
    name, want = str(bench.get("name") or ""), str(bench.get("fingerprint") or "")
    ids = list(image_ids)
    source = str(bench.get("source") or "")
    try:
        if source and source != "plugin":
            found, fp = _from_folder(Path(source), set(ids))
        else:
            found, fp = _from_registry(name, set(ids))
    except HarnessError as exc:
        return {}, f"test images unavailable: {exc}"
    if want and fp and fp != want:
        return {}, (
            f"test images not shown: benchmark {name!r} now has fingerprint {fp}, "
            f"the run used {want}"
        )
    missing = [i for i in ids if i not in found or not found[i].uri]
    note = f"{len(missing)} of {len(ids)} test images could not be read" if missing else ""
    return found, note


def _from_folder(path: Path, ids: set[str]) -> tuple[dict[str, Thumbnail], str]:
    from harness.data.images import load_image
    from harness.data.layout import read_manifest

    meta, rows = read_manifest(path)
    out = {}
    for row in rows:
        if row.get("id") not in ids:
            continue
        sid, label, report = row["id"], row.get("label", ""), row.get("report", "")
        try:
            image = load_image(path / row["path"])
        except HarnessError as exc:
            out[sid] = Thumbnail(sid, label, report, error=str(exc))
            continue
        out[sid] = _thumb(sid, label, report, image)
    return out, str(meta.get("fingerprint") or "")


def _from_registry(name: str, ids: set[str]) -> tuple[dict[str, Thumbnail], str]:
    from harness.benchmarks import load_benchmark

    bench = load_benchmark(name)
    samples = [s for s in (*bench.test, *bench.val, *bench.train) if s.id in ids]
    return thumbnails(samples), bench.fingerprint


# ---------------------------------------------------------------- the per-image view

# Prediction fields that describe the answer; every other numeric field is a per-sample score.
ANSWER_FIELDS = ("id", "label", "prediction", "valid", "invalid_reason", "answer", "config_id")


def sample_metric_names(rows: Rows) -> list[str]:
    """Numeric per-sample scores the predictions carry (bools and answer fields excluded)."""
    names: dict[str, None] = {}
    for r in rows:
        for p in r.get("predictions", []):
            for k, v in p.items():
                if (
                    k not in ANSWER_FIELDS
                    and isinstance(v, int | float)
                    and not isinstance(v, bool)
                ):
                    names.setdefault(k, None)
    return list(names)


def plugin_sample_scores(
    rows: Rows, columns: Sequence[Any], classes: Sequence[str]
) -> dict[str, dict[str, dict[str, float]]]:
    """``{config_id: {image_id: {metric: value}}}`` of the plugin metrics whose per-sample
    statistics a row stores (``metric_stats``): each image's statistics combined alone, e.g.
    a sentence-level BLEU. A metric whose plugin cannot be imported here adds no column."""
    import numpy as np

    from harness.evaluation.scoring import combiner

    out: dict[str, dict[str, dict[str, float]]] = {}
    for column in columns:
        stored = [(r, (r.get("metric_stats") or {}).get(column.name)) for r in rows]
        stored = [(r, st) for r, st in stored if st]
        if not stored or not getattr(column, "module", ""):
            continue
        try:
            combine = combiner(column, classes)
        except (ImportError, AttributeError, HarnessError):
            continue
        for r, st in stored:
            ids = [str(p["id"]) for p in r.get("predictions", [])]
            values = np.asarray(combine(np.asarray(st, dtype=np.float64)), dtype=np.float64)
            if len(values) != len(ids):
                continue
            per_image = out.setdefault(str(r["config_id"]), {})
            for sid, v in zip(ids, values, strict=True):
                if np.isfinite(v):  # NaN: no reference for this image
                    per_image.setdefault(sid, {})[column.name] = float(v)
    return out


def gallery_data(
    runs: Sequence[tuple[str, Rows]],
    images: Mapping[str, Thumbnail],
    classes: Sequence[str],
    titles: Mapping[str, str] | None = None,
    extra: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None,
) -> dict[str, Any]:
    """The per-image view's document: each test image once, each configuration's answers.

    ``runs`` are (prefix, rows): a comparison labels its two runs' configurations ``A:``/``B:``.
    ``titles`` name the per-sample scores (metric name -> column title; the name otherwise);
    ``extra`` adds scores by configuration id and image id (:func:`plugin_sample_scores`).
    """
    all_rows = [r for _, rows in runs for r in rows]
    extra = extra or {}
    metrics = sample_metric_names(all_rows)
    for per_image in extra.values():
        for scores in per_image.values():
            metrics += [m for m in scores if m not in metrics]
    order: dict[str, str] = {}
    for r in all_rows:
        for p in r.get("predictions", []):
            order.setdefault(str(p["id"]), str(p.get("label", "")))
    configs = []
    for prefix, rows in runs:
        for r in ordered(rows):
            answers = {
                str(p["id"]): {
                    "prediction": p.get("prediction"),
                    "valid": bool(p.get("valid")),
                    "invalid_reason": p.get("invalid_reason") or "",
                    "answer": p.get("answer") or "",
                    "metrics": {
                        **{m: p[m] for m in metrics if p.get(m) is not None},
                        **extra.get(str(r["config_id"]), {}).get(str(p["id"]), {}),
                    },
                }
                for p in r.get("predictions", [])
            }
            configs.append({"id": prefix + str(r["config_id"]), "answers": answers})
    rank = {c: i for i, c in enumerate(classes)}
    ids = sorted(order, key=lambda i: (rank.get(order[i], len(rank)), i))
    out = []
    for sid in ids:
        t = images.get(sid) or Thumbnail(sid, order[sid], "", error="no image")
        error = "" if t.uri else (t.error or "unreadable")
        out.append(
            {"id": sid, "label": order[sid], "report": t.report, "uri": t.uri, "error": error}
        )
    titles = titles or {}
    return {
        "classes": list(classes),
        "sample_metrics": metrics,
        "sample_titles": [titles.get(m, m) for m in metrics],
        "configs": configs,
        "images": out,
    }


def images_section(data: Mapping[str, Any], note: str = "") -> str:
    options = "".join(f'<option value="{escape(c)}">{escape(c)}</option>' for c in data["classes"])
    configs = "".join(
        f'<option value="{escape(c["id"])}">{escape(c["id"])}</option>' for c in data["configs"]
    )
    note_html = f" {escape(note)}" if note else ""
    return fill(IMAGES, classes=options, configs=configs, note=note_html)
