"""report.html: one self-contained page of a run (or of a comparison of two runs).

The leaderboard, per-class tables, confusion matrices, caveats, provenance and plots are
rendered here with every text escaped; the per-image view is drawn in the browser from an
embedded JSON document (see :mod:`harness.exports.html_assets`). Metric columns come from the
exporters' one column table, per-sample metrics from whatever numeric scores the predictions
carry: nothing here names a metric.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from harness.exports.common import (
    Rows,
    best,
    cell,
    correction_note,
    coverage_note,
    coverage_suffix,
    fmt_p_adjusted,
    fmt_params,
    metric_columns,
    ordered,
    seed_cells,
    titled,
)
from harness.exports.html_assets import json_for_script, page
from harness.exports.html_images import (
    Thumbnail,
    gallery_data,
    images_section,
    plugin_sample_scores,
)
from harness.exports.markdown import SEEDS_NOTE, caveats, provenance_block


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def number_cell(v: float | None, text: str, cls: str = "") -> str:
    """A table cell sorted by ``v`` (missing values sort last)."""
    attr = f' data-v="{float(v)!r}"' if v is not None else ""
    klass = f' class="{cls}"' if cls else ""
    return f"<td{attr}{klass}>{_e(text)}</td>"


# ---------------------------------------------------------------- a run's sections


def table(heads: Sequence[str], body: Sequence[str], table_id: str = "") -> str:
    """A sortable table (``body``: rendered ``<tr>`` rows) that scrolls sideways when wide."""
    ident = f' id="{_e(table_id)}"' if table_id else ""
    return (
        f'<div class="scroll"><table class="sortable nums"{ident}><thead><tr>'
        + "".join(f"<th>{_e(h)}</th>" for h in heads)
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table></div>"
    )


def _delta_cells(p: Any, an: Mapping[str, Any]) -> list[str]:
    if p is None:
        return ["<td>–</td>", "<td>–</td>"]
    return [
        number_cell(p.estimate, f"{p.estimate:+.3f} [{p.low:+.3f}, {p.high:+.3f}]"),
        number_cell(p.p_value, fmt_p_adjusted(p, an, sep="\n"), "p"),
    ]


def leaderboard_section(rows: Rows, an: Mapping[str, Any], baselines: Mapping[str, Any]) -> str:
    """The leaderboard (metrics with CIs, the first paired metric's Δ against base, McNemar,
    size and time) and the paired tests of every metric in their own table."""
    top = best(rows, an)
    metrics = [(m, t) for m, t in titled(an) if any(m in r["metrics"] for r in rows)]
    paired = [
        (m, t)
        for m, t in metrics
        if any(m in an["configs"][r["config_id"]]["paired"] for r in rows)
    ]
    heads = ["Configuration", *(t for _, t in metrics)]
    heads += [f"Δ{paired[0][1]} vs base [95% CI]", "p"] if paired else []
    heads += ["McNemar p", "Trainable", "Train s"]
    body, tests = [], []
    for r in ordered(rows):
        item = an["configs"][r["config_id"]]
        name = f'<td class="text">{_e(r["config_id"])}</td>'
        cells = [name]
        for m, _ in metrics:
            v, hw = cell(r, an, m)
            text = "–" if v is None else f"{v:.3f}" + (f" ± {hw:.3f}" if hw is not None else "")
            bold = v is not None and len(rows) > 1 and abs(v - top[m]) < 1e-12
            cells.append(number_cell(v, text + coverage_suffix(r, m), "best" if bold else ""))
        if paired:
            cells += _delta_cells(item["paired"].get(paired[0][0]), an)
        mc = item["mcnemar"]
        trained = r.get("trainer") != "base"
        n_params = r.get("trainable_params") if trained else None
        secs = float(r.get("train_seconds") or 0) if trained else None
        mc_text = fmt_p_adjusted(mc, an, sep="\n") if mc else "–"
        mc_cell = number_cell(mc.p_value if mc else None, mc_text, "p")
        cells.append(mc_cell)
        cells.append(number_cell(n_params, fmt_params(n_params)))
        cells.append(number_cell(secs, f"{secs:.1f}" if secs is not None else "–"))
        body.append("<tr>" + "".join(cells) + "</tr>")
        if item["paired"]:
            n = next(iter(item["paired"].values())).n
            row = [name, number_cell(n, str(n))]
            row += [c for m, _ in paired for c in _delta_cells(item["paired"].get(m), an)]
            mcnemar = f"{mc.b}/{mc.c}" if mc else "–"
            tests.append("<tr>" + "".join([*row, f"<td>{mcnemar}</td>", mc_cell]) + "</tr>")
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
        + correction_note(an)
        + " "
        + coverage_note(rows, an)
    )
    test_heads = ["Configuration", "n"]
    test_heads += [h for _, t in paired for h in (f"Δ{t} [95% CI]", "p")]
    tests_html = (
        "<h3>Paired tests against base</h3>"
        + table([*test_heads, "McNemar b/c", "McNemar p"], tests, "paired-table")
        if tests
        else ""
    )
    return (
        '<section id="leaderboard"><h2>Leaderboard</h2>'
        + table(heads, body, "leaderboard-table")
        + f'<p class="note">{_e(note)}</p>{tests_html}{_seeds_table(an)}</section>'
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
            number_cell(summ[m].mean, text) if m in summ else "<td>–</td>"
            for (m, _), text in zip(titled(an), seed_cells(an, rid), strict=True)
        )
        body += f'<tr><td class="text">{_e(rid)}</td><td>{n}</td>{cells}</tr>'
    heads = "".join(f"<th>{_e(t)}</th>" for _, t in titled(an))
    note = SEEDS_NOTE.format(n=an["n_resamples"], seed=an["seed"])
    return (
        '<h3>Across training seeds</h3><table class="sortable"><thead><tr>'
        f"<th>Recipe</th><th>Seeds</th>{heads}</tr></thead><tbody>{body}</tbody></table>"
        f'<p class="note">{_e(note)}</p>'
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
    evaluation = [p for p in pngs if p.stem == "metrics"]
    evaluation += [p for p in pngs if p.stem.startswith("confusion")]
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
    extra = plugin_sample_scores(rows, metric_columns(analysis), classes)
    data = gallery_data([("", rows)], images, classes, dict(titled(analysis)), extra)
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
