"""Two results directories side by side: paired tests on the test images both answered."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from harness.core.errors import DataError
from harness.evaluation import stats
from harness.exports.common import fmt_p
from harness.exports.html import nav, number_cell, table
from harness.exports.html_assets import json_for_script, page
from harness.exports.html_images import gallery_data, images_section

Row = Mapping[str, Any]


def match_pairs(
    rows_a: Sequence[Row], rows_b: Sequence[Row], pairs: Sequence[tuple[str, str]] = ()
) -> list[tuple[Row, Row]]:
    """Explicit ``(id_a, id_b)`` pairs, else every configuration id present in both runs."""
    by_a = {r["config_id"]: r for r in rows_a}
    by_b = {r["config_id"]: r for r in rows_b}
    if not pairs:
        pairs = [(cid, cid) for cid in by_a if cid in by_b]
        _refuse_base_only(rows_a, rows_b, pairs)
    if not pairs:
        raise DataError(
            f"the runs share no configuration id (A: {', '.join(by_a) or '-'}; "
            f"B: {', '.join(by_b) or '-'}); name pairs with --pair A_ID=B_ID"
        )
    missing = [a for a, _ in pairs if a not in by_a] + [b for _, b in pairs if b not in by_b]
    if missing:
        raise DataError(
            f"unknown configuration id(s): {', '.join(missing)} (A has: {', '.join(by_a) or '-'};"
            f" B has: {', '.join(by_b) or '-'})"
        )
    return [(by_a[a], by_b[b]) for a, b in pairs]


def _refuse_base_only(
    rows_a: Sequence[Row], rows_b: Sequence[Row], pairs: Sequence[tuple[str, str]]
) -> None:
    """Two runs of different recipes share only the base row: comparing base with base would
    print Δ 0, p = 1 as if the recipes were equal. Name the pairs that could be made instead."""
    trained_a = [r["config_id"] for r in rows_a if r.get("trainer") != "base"]
    trained_b = [r["config_id"] for r in rows_b if r.get("trainer") != "base"]
    shared_trained = [a for a, _ in pairs if a in trained_a]
    if not trained_a or not trained_b or shared_trained:
        return
    options = [f"--pair {a}={b}" for a in trained_a for b in trained_b][:8]
    raise DataError(
        "the runs share no fine-tuned configuration (only "
        + (", ".join(a for a, _ in pairs) or "nothing")
        + "); name the recipes to compare, e.g. "
        + "; ".join(options)
        + ("" if pairs == [] else " (or --pair base=base to compare the base rows)")
    )


def setting_differences(
    prov_a: Mapping[str, Any],
    prov_b: Mapping[str, Any],
    pairs: Sequence[tuple[Row, Row]],
) -> list[str]:
    """What differs between the two runs besides the compared recipes: a Δ may come from these."""
    out = []
    ga, gb = prov_a.get("generation") or {}, prov_b.get("generation") or {}
    defaults = {"scoring": "generate", "cache": "plain"}
    for k in sorted(set(ga) | set(gb)):
        va, vb = ga.get(k, defaults.get(k)), gb.get(k, defaults.get(k))
        if va != vb:
            out.append(f"evaluation setting {k} differs: A {va} vs B {vb}")
    if prov_a.get("prompt_hash") != prov_b.get("prompt_hash"):
        out.append(
            f"prompt differs: A {prov_a.get('prompt_hash')} vs B {prov_b.get('prompt_hash')}"
        )
    wa = prov_a.get("model", {}).get("weights_hash")
    wb = prov_b.get("model", {}).get("weights_hash")
    if wa != wb:
        out.append(f"base weights differ: A {wa} vs B {wb}")
    for ra, rb in pairs:
        oa, ob = ra.get("options") or {}, rb.get("options") or {}
        if oa != ob:
            keys = sorted(
                f"{kind}.{k}"
                for kind in set(oa) | set(ob)
                for k in set(oa.get(kind) or {}) | set(ob.get(kind) or {})
                if (oa.get(kind) or {}).get(k) != (ob.get(kind) or {}).get(k)
            )
            out.append(
                f"{ra['config_id']} vs {rb['config_id']}: options differ ({', '.join(keys)})"
            )
    return out


def compare_runs(
    rows_a: Sequence[Row],
    rows_b: Sequence[Row],
    classes: Sequence[str],
    pairs: Sequence[tuple[str, str]] = (),
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """For each pair: metrics of A and B on the shared images, paired bootstrap B - A, McNemar."""
    out = []
    for ra, rb in match_pairs(rows_a, rows_b, pairs):
        ea = stats.encode(ra.get("predictions", []), classes)
        eb = stats.encode(rb.get("predictions", []), classes)
        ids = stats.shared_ids(ea, eb)
        if not ids:
            raise DataError(f"{ra['config_id']} and {rb['config_id']} share no test images")
        try:
            paired = stats.paired_bootstrap(ea, eb, n_resamples=n_resamples, seed=seed)
        except ValueError as exc:
            raise DataError(f"{ra['config_id']} vs {rb['config_id']}: {exc}") from exc
        reported = [m for m in stats.HEADLINE if m in ra["metrics"] and m in rb["metrics"]]
        ma, mb = stats.point_metrics(ea.subset(ids)), stats.point_metrics(eb.subset(ids))
        for m in set(stats.HEADLINE) - set(reported):  # e.g. ROUGE-L under likelihood scoring
            paired.pop(m, None)
            ma.pop(m, None)
            mb.pop(m, None)
        out.append(
            {
                "a": ra["config_id"],
                "b": rb["config_id"],
                "n_shared": len(ids),
                "n_a": ea.n,
                "n_b": eb.n,
                "metrics_a": ma,
                "metrics_b": mb,
                "paired": paired,
                "mcnemar": stats.mcnemar_encoded(ea, eb),
            }
        )
    return out


def comparison_markdown(
    results: Sequence[Mapping[str, Any]], label_a: str, label_b: str, note: str = ""
) -> str:
    lines = [
        "# cxr-harness comparison",
        "",
        f"A = `{label_a}`, B = `{label_b}`. Δ = B − A on the test images both answered; "
        "95% paired bootstrap CI and two-sided p; McNemar's test on accuracy.",
    ]
    if note:
        lines += ["", note]
    heads = " | ".join(f"{m} A | {m} B | Δ [95% CI] | p" for m in stats.HEADLINE)
    lines += [
        "",
        f"| A | B | n | {heads} | McNemar p |",
        "|---|---|---:|" + "---:|" * (4 * len(stats.HEADLINE) + 1),
    ]
    for r in results:
        cells = []
        for m in stats.HEADLINE:
            p = r["paired"].get(m)
            if p is None:
                cells += ["–"] * 4
                continue
            cells += [
                f"{r['metrics_a'][m]:.3f}",
                f"{r['metrics_b'][m]:.3f}",
                f"{p.estimate:+.3f} [{p.low:+.3f}, {p.high:+.3f}]",
                fmt_p(p.p_value),
            ]
        lines.append(
            f"| {r['a']} | {r['b']} | {r['n_shared']} | "
            + " | ".join(cells)
            + f" | {fmt_p(r['mcnemar'].p_value)} |"
        )
    return "\n".join(lines) + "\n"


def comparison_html(
    results: Sequence[Mapping[str, Any]],
    label_a: str,
    label_b: str,
    runs: tuple[Sequence[Row], Sequence[Row]],
    images: Mapping[str, Any],
    classes: Sequence[str],
    warns: Sequence[str] = (),
    image_note: str = "",
    titles: Mapping[str, str] | None = None,
) -> str:
    """The comparison as one self-contained page: the paired table (sortable), the warnings,
    and the per-image view of each compared pair (``A:``/``B:`` prefixed configurations).
    ``titles``: metric name -> column title (from the runs' metric table)."""
    titles = titles or {}
    heads = ["A", "B", "n"]
    for m in stats.HEADLINE:
        t = titles.get(m, m)
        heads += [f"{t} A", f"{t} B", f"Δ{t} [95% CI]", "p"]
    body = []
    for r in results:
        cells = [f'<td class="text">{escape(str(r[k]))}</td>' for k in ("a", "b")]
        cells.append(number_cell(r["n_shared"], str(r["n_shared"])))
        for m in stats.HEADLINE:
            p = r["paired"].get(m)
            if p is None:
                cells += ["<td>–</td>"] * 4
                continue
            cells += [
                number_cell(r["metrics_a"][m], f"{r['metrics_a'][m]:.3f}"),
                number_cell(r["metrics_b"][m], f"{r['metrics_b'][m]:.3f}"),
                number_cell(p.estimate, f"{p.estimate:+.3f} [{p.low:+.3f}, {p.high:+.3f}]"),
                number_cell(p.p_value, fmt_p(p.p_value)),
            ]
        cells.append(number_cell(r["mcnemar"].p_value, fmt_p(r["mcnemar"].p_value)))
        body.append("<tr>" + "".join(cells) + "</tr>")
    section = (
        '<section id="comparison"><h2>Paired comparison</h2>'
        + table([*heads, "McNemar p"], body, "leaderboard-table")
        + '<p class="note">Δ = B − A on the test images both answered; 95% paired bootstrap CI '
        "and two-sided p; McNemar's test on accuracy. Click a header to sort.</p>"
        + "".join(f"<p><b>Warning:</b> {escape(w)}; the Δ may come from this.</p>" for w in warns)
        + "</section>"
    )
    wanted_a = {r["a"] for r in results}
    wanted_b = {r["b"] for r in results}
    pick_a = [r for r in runs[0] if r["config_id"] in wanted_a]
    pick_b = [r for r in runs[1] if r["config_id"] in wanted_b]
    data = gallery_data([("A:", pick_a), ("B:", pick_b)], images, classes, titles)

    return page(
        "cxr-harness comparison",
        escape(f"A = {label_a} · B = {label_b}"),
        nav([("comparison", "Comparison"), ("images", "Images")]),
        section + images_section(data, image_note),
        json_for_script(data),
    )
