"""report.html: one self-contained page of a run (or of a comparison of two runs).

The leaderboard, per-class tables, confusion matrices, caveats, provenance and plots are
rendered here with every text escaped; the per-image view is drawn in the browser from an
embedded JSON document (see :mod:`harness.exports.html_assets`). Metric columns come from the
exporters' one column table, per-sample metrics from whatever numeric scores the predictions
carry: nothing here names a metric.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from harness.exports.common import (
    COLUMNS,
    Rows,
    best,
    cell,
    coverage_note,
    coverage_suffix,
    fmt_p,
    fmt_params,
    ordered,
)
from harness.exports.html_assets import IMAGES, fill, page
from harness.exports.html_images import Thumbnail
from harness.exports.markdown import caveats, provenance_block

# Prediction fields that describe the answer; every other numeric field is a per-sample score.
ANSWER_FIELDS = ("id", "label", "prediction", "valid", "invalid_reason", "answer", "config_id")


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def number_cell(v: float | None, text: str, cls: str = "") -> str:
    """A table cell sorted by ``v`` (missing values sort last)."""
    attr = f' data-v="{v!r}"' if v is not None else ""
    return f"<td{attr}{f' class={chr(34)}{cls}{chr(34)}' if cls else ''}>{_e(text)}</td>"


def json_for_script(doc: Any) -> str:
    """JSON that cannot close or confuse the ``<script>`` element holding it."""
    text = json.dumps(doc, ensure_ascii=False, default=str, separators=(",", ":"))
    for ch, sub in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, sub)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


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


def gallery_data(
    runs: Sequence[tuple[str, Rows]], images: Mapping[str, Thumbnail], classes: Sequence[str]
) -> dict[str, Any]:
    """The per-image view's document: each test image once, each configuration's answers.

    ``runs`` are (prefix, rows): a comparison labels its two runs' configurations ``A:``/``B:``.
    """
    all_rows = [r for _, rows in runs for r in rows]
    metrics = sample_metric_names(all_rows)
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
                    "metrics": {m: p[m] for m in metrics if p.get(m) is not None},
                }
                for p in r.get("predictions", [])
            }
            configs.append({"id": prefix + str(r["config_id"]), "answers": answers})
    rank = {c: i for i, c in enumerate(classes)}
    ids = sorted(order, key=lambda i: (rank.get(order[i], len(rank)), i))
    out = []
    for sid in ids:
        t = images.get(sid)
        out.append(
            {
                "id": sid,
                "label": order[sid],
                "report": t.report if t else "",
                "uri": t.uri if t else "",
                "error": (t.error or "unreadable")
                if t and not t.uri
                else ("" if t else "no image"),
            }
        )
    return {"classes": list(classes), "sample_metrics": metrics, "configs": configs, "images": out}


def images_section(data: Mapping[str, Any], note: str = "") -> str:
    options = "".join(f'<option value="{_e(c)}">{_e(c)}</option>' for c in data["classes"])
    configs = "".join(
        f'<option value="{_e(c["id"])}">{_e(c["id"])}</option>' for c in data["configs"]
    )
    note_html = f" {_e(note)}" if note else ""
    return fill(IMAGES, classes=options, configs=configs, note=note_html)


# ---------------------------------------------------------------- a run's sections


def leaderboard_section(rows: Rows, an: Mapping[str, Any], baselines: Mapping[str, Any]) -> str:
    top = best(rows)
    metrics = [(m, t) for m, t in COLUMNS if any(m in r["metrics"] for r in rows)]
    paired = [
        (m, t)
        for m, t in metrics
        if any(m in an["configs"][r["config_id"]]["paired"] for r in rows)
    ]
    heads = ["Configuration", *(t for _, t in metrics)]
    heads += [h for _, t in paired for h in (f"Δ{t} vs base [95% CI]", "p")]
    heads += ["McNemar p", "Trainable", "Train s"]
    body = []
    for r in ordered(rows):
        item = an["configs"][r["config_id"]]
        cells = [f'<td class="text">{_e(r["config_id"])}</td>']
        for m, _ in metrics:
            v, hw = cell(r, an, m)
            text = "–" if v is None else f"{v:.3f}" + (f" ± {hw:.3f}" if hw is not None else "")
            bold = v is not None and len(rows) > 1 and abs(v - top[m]) < 1e-12
            cells.append(number_cell(v, text + coverage_suffix(r, m), "best" if bold else ""))
        for m, _ in paired:
            p = item["paired"].get(m)
            cells.append(
                number_cell(
                    p.estimate if p else None,
                    f"{p.estimate:+.3f} [{p.low:+.3f}, {p.high:+.3f}]" if p else "–",
                )
            )
            cells.append(number_cell(p.p_value if p else None, fmt_p(p.p_value) if p else "–"))
        mc = item["mcnemar"]
        trained = r.get("trainer") != "base"
        n_params = r.get("trainable_params") if trained else None
        secs = float(r.get("train_seconds") or 0) if trained else None
        cells.append(number_cell(mc.p_value if mc else None, fmt_p(mc.p_value) if mc else "–"))
        cells.append(number_cell(n_params, fmt_params(n_params)))
        cells.append(number_cell(secs, f"{secs:.1f}" if secs is not None else "–"))
        body.append("<tr>" + "".join(cells) + "</tr>")
    for label, values in _baseline_rows(baselines, rows):
        cells = [f'<td class="text">{_e(label)}</td>']
        cells += [
            number_cell(values.get(m), f"{values[m]:.3f}" if m in values else "–")
            for m, _ in metrics
        ]
        cells += ["<td>–</td>"] * (len(heads) - len(metrics) - 1)
        body.append('<tr class="baseline">' + "".join(cells) + "</tr>")
    note = (
        f"Estimate ± half-width of the 95% percentile bootstrap CI ({an['n_resamples']} "
        f"resamples, seed {an['seed']}); best per column in bold. Δ and p compare with base on "
        "the same test images (paired bootstrap; McNemar for accuracy). Click a header to sort. "
        + coverage_note(rows)
    )
    return (
        '<section id="leaderboard"><h2>Leaderboard</h2>'
        '<table class="sortable" id="leaderboard-table"><thead><tr>'
        + "".join(f"<th>{_e(h)}</th>" for h in heads)
        + "</tr></thead><tbody>"
        + "".join(body)
        + f'</tbody></table><p class="note">{_e(note)}</p>{_seeds_table(an)}</section>'
    )


def _baseline_rows(baselines: Mapping[str, Any], rows: Rows) -> list[tuple[str, dict]]:
    out = []
    maj = baselines.get("majority")
    if maj:
        vals = {m: float(v) for m, v in maj.items() if isinstance(v, int | float)}
        out.append(("majority-class baseline", vals))
    oracle = baselines.get("same_class_reference")
    metrics = {m for r in rows for m in r["metrics"]}
    if oracle:
        vals = {m: float(v) for m, v in oracle.items() if m in metrics and m != "n"}
        if vals:
            out.append(("same-class reference (oracle)", vals))
    return out


def _seeds_table(an: Mapping[str, Any]) -> str:
    if not an.get("seeds"):
        return ""
    body = ""
    for rid, summ in an["seeds"].items():
        n = next(iter(summ.values())).n if summ else 0
        cells = "".join(
            number_cell(summ[m].mean, f"{summ[m].mean:.3f} ± {summ[m].sd:.3f}")
            if m in summ
            else "<td>–</td>"
            for m, _ in COLUMNS
        )
        body += f'<tr><td class="text">{_e(rid)}</td><td>{n}</td>{cells}</tr>'
    heads = "".join(f"<th>{_e(t)}</th>" for _, t in COLUMNS)
    return (
        '<h3>Across training seeds (mean ± sd)</h3><table class="sortable"><thead><tr>'
        f"<th>Recipe</th><th>Seeds</th>{heads}</tr></thead><tbody>{body}</tbody></table>"
    )


def per_class_section(rows: Rows, an: Mapping[str, Any]) -> str:
    parts = []
    for r in ordered(rows):
        table = an["configs"][r["config_id"]].get("per_class") or []
        if not table:
            continue
        keys = list(table[0])
        head = "".join(f"<th>{_e(k.replace('_', ' ').capitalize())}</th>" for k in keys)
        body = ""
        for c in table:
            cells = [
                number_cell(float(c[k]), f"{c[k]:.3f}" if isinstance(c[k], float) else str(c[k]))
                if isinstance(c[k], int | float)
                else f'<td class="text">{_e(c[k])}</td>'
                for k in keys
            ]
            body += "<tr>" + "".join(cells) + "</tr>"
        parts.append(
            f'<div><h3>{_e(r["config_id"])}</h3><table class="sortable per-class"><thead><tr>'
            f"{head}</tr></thead><tbody>{body}</tbody></table></div>"
        )
    return (
        '<section id="per-class"><h2>Per class</h2><p class="note">Invalid answers count as '
        'wrong (false negatives).</p><div class="grid">' + "".join(parts) + "</div></section>"
    )


def confusion_section(rows: Rows, an: Mapping[str, Any]) -> str:
    items = [(r, an["configs"][r["config_id"]]) for r in ordered(rows)]
    items = [(r, it) for r, it in items if "confusion" in it]
    if not items:
        return ""
    options = "".join(f"<option>{_e(r['config_id'])}</option>" for r, _ in items)
    wraps = []
    for r, it in items:
        cid, cols = str(r["config_id"]), [*it["classes"], "invalid"]
        head = "".join(f'<th class="rot">{_e(c)}</th>' for c in cols)
        body = ""
        for true, counts in zip(it["classes"], it["confusion"], strict=True):
            total = max(1, int(sum(counts)))
            tds = ""
            for pred, n in zip(cols, counts, strict=True):
                shade = int(255 - 150 * int(n) / total)
                tds += (
                    f'<td class="cell{" diag" if pred == true else ""}" data-config="{_e(cid)}"'
                    f' data-true="{_e(true)}" data-pred="{_e(pred)}" data-n="{int(n)}"'
                    f' style="background: rgb({shade},{shade},255)">{int(n)}</td>'
                )
            body += f"<tr><th>{_e(true)}</th>{tds}</tr>"
        wraps.append(
            f'<div class="cm-wrap" data-config="{_e(cid)}"><table class="cm"><thead><tr>'
            f"<th>true \\ predicted</th>{head}</tr></thead><tbody>{body}</tbody></table></div>"
        )
    return (
        '<section id="confusion"><h2>Confusion matrix</h2><label>Configuration '
        f'<select id="cm-config">{options}</select></label> <span class="note">Rows: true '
        "class; columns: parsed class. Click a cell to open its images.</span>"
        + "".join(wraps)
        + "</section>"
    )


def plots_section(plots_dir: Path) -> str:
    """Every PNG in ``plots/`` embedded; training curves (any plot that is not a metric bar
    chart or confusion matrix) under their own heading."""
    pngs = sorted(plots_dir.glob("*.png")) if plots_dir.is_dir() else []
    if not pngs:
        return '<section id="plots"><h2>Plots</h2><p class="note">No plots rendered.</p></section>'
    evaluation = [p for p in pngs if p.stem == "metrics" or p.stem.startswith("confusion")]
    curves = [p for p in pngs if p not in evaluation]

    def figures(paths: list[Path]) -> str:
        out = ""
        for p in paths:
            try:
                uri = "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii")
            except OSError as exc:
                out += f'<p class="note">{_e(p.name)}: unreadable ({_e(exc)})</p>'
                continue
            out += (
                f'<figure><img src="{uri}" alt="{_e(p.name)}"><figcaption>plots/{_e(p.name)}'
                "</figcaption></figure>"
            )
        return f'<div class="grid plots">{out}</div>'

    curves_html = figures(curves) if curves else '<p class="note">No training curves in plots/.</p>'
    return (
        f'<section id="plots"><h2>Plots</h2>{figures(evaluation)}</section>'
        f'<section id="curves"><h2>Training curves</h2>{curves_html}</section>'
    )


def caveats_section(items: Sequence[str]) -> str:
    lis = "".join(f"<li>{_e(c)}</li>" for c in items)
    return f'<section id="caveats"><h2>Caveats</h2><ul>{lis}</ul></section>'


def provenance_section(pairs: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in pairs)
    return f'<section id="provenance"><h2>Provenance</h2><dl class="prov">{body}</dl></section>'


def nav(sections: Sequence[tuple[str, str]]) -> str:
    return "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in sections)


def report_html(
    rows: Rows,
    provenance: Mapping[str, Any],
    baselines: Mapping[str, Any],
    analysis: Mapping[str, Any],
    images: Mapping[str, Thumbnail],
    plots_dir: Path,
    image_note: str = "",
) -> str:
    """The run's report.html as one string."""
    bench = provenance.get("benchmark", {})
    classes = list(analysis.get("classes") or bench.get("classes") or [])
    data = gallery_data([("", rows)], images, classes)
    body = (
        leaderboard_section(rows, analysis, baselines)
        + caveats_section(caveats(rows, provenance, analysis, baselines))
        + per_class_section(rows, analysis)
        + confusion_section(rows, analysis)
        + plots_section(plots_dir)
        + provenance_section(provenance_block(rows, provenance))
        + images_section(data, image_note)
    )
    subtitle = (
        f"Benchmark {bench.get('name', '?')} (fingerprint {bench.get('fingerprint', '?')}, "
        f"{bench.get('sizes', {}).get('test', '?')} test images) · model "
        f"{provenance.get('model', {}).get('model', '?')} · started "
        f"{provenance.get('started', '?')}"
    )
    sections = [
        ("leaderboard", "Leaderboard"),
        ("caveats", "Caveats"),
        ("per-class", "Per class"),
        ("confusion", "Confusion"),
        ("plots", "Plots"),
        ("curves", "Training curves"),
        ("provenance", "Provenance"),
        ("images", "Images"),
    ]
    return page("cxr-harness report", _e(subtitle), nav(sections), body, json_for_script(data))
