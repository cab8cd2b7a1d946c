"""`harness report DIR` (re-render every output from the results store) and
`harness compare DIR_A DIR_B` (two runs side by side with paired tests)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Group, RenderableType
from rich.table import Table

from harness.commands import console, fail
from harness.core.errors import DataError, HarnessError
from harness.evaluation.correction import CORRECTIONS, DEFAULT_CORRECTION

_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


# below this many columns the leaderboard is two stacked tables (metrics, then the comparison
# with base): configuration names are never cut, the CIs wrap under their values
NARROW = 130


def report_table(
    rows: Sequence[Mapping[str, Any]],
    provenance: Mapping[str, Any],
    analysis: Mapping[str, Any],
    baselines: Mapping[str, Any] | None = None,
    width: int | None = None,
) -> RenderableType:
    """The terminal leaderboard, the same for `bench` and `report`: metrics with 95% CIs (and
    reference coverage), the paired test against base, trainable parameters, training time and
    the reference baselines. Narrower than :data:`NARROW` columns it is two stacked tables."""
    from harness.exports import fmt_params, ordered
    from harness.exports.common import (
        baseline_cells,
        cell,
        correction_note,
        coverage_note,
        coverage_suffix,
        fmt_p_adjusted,
        fmt_train_seconds,
        titled,
    )

    bench = provenance.get("benchmark", {})
    note = " ".join(x for x in (correction_note(analysis), coverage_note(rows, analysis)) if x)
    title = (
        f"{bench.get('name', '?')} · fingerprint {bench.get('fingerprint', '?')} · "
        f"{bench.get('sizes', {}).get('test', '?')} test images · ± = 95% bootstrap CI half-width"
    )
    narrow = width is not None and width < NARROW
    metric_titles = [t for _, t in titled(analysis)]
    versus = ["ΔF1 vs base", "p", "McNemar p", "Trainable", "Train s"]
    body: list[list[str]] = []  # configuration, metrics..., comparison...
    for r in ordered(rows):
        item = analysis["configs"][r["config_id"]]
        pf, mc = item["paired"].get("macro_f1"), item["mcnemar"]
        cells = []
        for m, _ in titled(analysis):
            v, hw = cell(r, analysis, m)
            text = "–" if v is None else f"{v:.3f}" + (f" ±{hw:.3f}" if hw is not None else "")
            cells.append(text + coverage_suffix(r, m))
        trained = r.get("trainer") != "base"
        body.append(
            [
                r["config_id"],
                *cells,
                f"{pf.estimate:+.3f}" if pf else "–",
                fmt_p_adjusted(pf, analysis, sep="\n") if pf else "–",
                fmt_p_adjusted(mc, analysis, sep="\n") if mc else "–",
                fmt_params(r.get("trainable_params")) if trained else "–",
                fmt_train_seconds(r),
            ]
        )
    n_cfg = len(body)
    baselines = baselines or {}
    maj = baselines.get("majority")
    if maj:
        body.append(["[dim]majority class[/dim]", *baseline_cells(analysis, maj), *("–",) * 5])
    oracle = baselines.get("same_class_reference")
    if oracle and any("rouge_l" in r["metrics"] for r in rows):
        label = "ROUGE-L oracle" if narrow else "same-class reference (ROUGE-L oracle)"
        oracle_cells = baseline_cells(analysis, {"rouge_l": oracle["rouge_l"]})
        body.append([f"[dim]{label}[/dim]", *oracle_cells, *("–",) * 5])
    longest = max((len(b[0]) for b in body[:n_cfg]), default=12)
    if not narrow:
        return _table(title, note, ["Configuration", *metric_titles, *versus], body, longest)
    k = 1 + len(metric_titles)
    return Group(
        _table(
            title, None, ["Configuration", *metric_titles], [b[:k] for b in body], longest, True
        ),
        _table(
            "against base",
            note,
            ["Configuration", "ΔF1", "p", "McNemar", "Params", "Train s"],
            # the caption names the correction: "(Holm <0.001)" becomes "(<0.001)"
            [b[:1] + [re.sub(r"\([A-Za-z-]+ ", "(", c) for c in b[k:]] for b in body[:n_cfg]],
            longest,
            True,
        ),
    )


def _table(
    title: str,
    caption: str | None,
    headers: list[str],
    body: list[list[str]],
    longest: int,
    compact: bool = False,
) -> Table:
    """One leaderboard table; the configuration column is as wide as its longest name."""
    from rich import box as boxes

    box = boxes.SIMPLE_HEAD if compact else boxes.HEAVY_HEAD
    table = Table(title=title, caption=caption or None, box=box, collapse_padding=compact)
    table.add_column(headers[0], no_wrap=True, min_width=max(12, longest))
    for header in headers[1:]:
        table.add_column(header, justify="right", overflow="fold")
    for cells in body:
        table.add_row(*cells)
    return table


def knowledge_table(rows: Sequence[Mapping[str, Any]], analysis: Mapping[str, Any]) -> Table | None:
    """Generated next to likelihood-scored metrics for the rows run with ``--scoring both``."""
    from harness.exports.common import KNOWLEDGE_HEADS, KNOWLEDGE_NOTE, knowledge_cells, scored_both

    both = scored_both(rows)
    if not both:
        return None
    title = "Format vs knowledge (± = 95% bootstrap CI half-width)"
    table = Table(title=title, caption=KNOWLEDGE_NOTE)
    table.add_column("Configuration", overflow="fold", min_width=12)
    for title in KNOWLEDGE_HEADS:
        table.add_column(title, justify="right")
    for r in both:
        cells = knowledge_cells(r, analysis, pm=" ±")
        cells[-1] = cells[-1].replace(" (", "\n(")
        table.add_row(r["config_id"], *cells)
    return table


def print_leaderboard(
    rows: Sequence[Mapping[str, Any]],
    provenance: Mapping[str, Any],
    analysis: Mapping[str, Any],
    baselines: Mapping[str, Any] | None = None,
) -> None:
    """The leaderboard and the caveats that change what it means (both `bench` and `report`)."""
    from rich.console import Console

    from harness.exports.markdown import meaning_caveats

    # a terminal, or a width asked for with COLUMNS, is honoured; a pipe or log gets 160
    sized = console.is_terminal or bool(os.environ.get("COLUMNS"))
    wide = console if sized else Console(width=160)
    wide.print(report_table(rows, provenance, analysis, baselines, width=wide.width))
    both = knowledge_table(rows, analysis)
    if both is not None:
        wide.print(both)
    for c in meaning_caveats(rows, analysis, baselines or {}):
        console.print(f"[yellow]caveat:[/yellow] {c}", highlight=False)


def _check_has_store(directory: Path) -> None:
    """A folder of exported reports without its store (a copy such as reports/example) cannot be
    re-rendered: say why, and how to reproduce it somewhere else, never into the folder itself."""
    from harness.results.store import STORE_NAME

    if (directory / STORE_NAME).is_file():
        return
    what = "exported reports" if (directory / "results.json").is_file() else "no run"
    how = (
        f"reproduce the run into a new folder with: harness bench --config "
        f"{directory / 'experiment.toml'} --out reports/<new>"
        if (directory / "experiment.toml").is_file()
        else "run harness bench --out <new folder> to make one"
    )
    raise DataError(
        f"{directory} holds {what} but no results store ({STORE_NAME}), which harness report "
        f"renders from; nothing was written. To get a renderable run, {how}"
    )


@click.command("report")
@click.argument("directory", type=_DIR)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write the outputs (default: DIRECTORY itself).",
)
@click.option("--resamples", type=click.IntRange(min=100), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option(
    "--correction",
    type=click.Choice(CORRECTIONS),
    default=DEFAULT_CORRECTION,
    show_default=True,
    help="Multiple-comparison correction of the p-values against base, shown next to the raw "
    "p: holm (family-wise error), bh (Benjamini-Hochberg, false discovery rate) or none.",
)
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
def report_cmd(
    directory: Path,
    out: Path | None,
    resamples: int,
    seed: int,
    correction: str,
    no_plots: bool,
) -> None:
    """Re-render every report of DIRECTORY from its results.sqlite (report.html also reads the
    test images back from the benchmark the run used)."""
    from harness.exports import analyse, write_all
    from harness.exports.html_images import benchmark_thumbnails
    from harness.results.store import ResultsStore

    try:
        _check_has_store(directory)
        with ResultsStore.open(directory, create=False) as store:
            rows, provenance, baselines = store.load()
        if not rows:
            raise DataError(f"{store.path}: no finished configuration to report")
        target = out or directory
        analysis = analyse(rows, provenance, resamples, seed, correction)
        ids = {str(p["id"]) for r in rows for p in r.get("predictions", [])}
        images, image_note = benchmark_thumbnails(provenance, sorted(ids))
        written = write_all(
            target,
            rows,
            provenance,
            baselines,
            plots=not no_plots,
            analysis=analysis,
            workers=os.cpu_count() or 1,
            images=images,
            image_note=image_note,
        )
    except HarnessError as exc:
        fail(exc)
    print_leaderboard(rows, provenance, analysis, baselines)
    if image_note:
        console.print(f"[yellow]report.html:[/yellow] {image_note}", highlight=False)
    from harness.results.events import where_stopped

    stopped = where_stopped(directory)
    if stopped:
        console.print(
            f"[yellow]unfinished run:[/yellow] {stopped}; continue it with harness bench ... "
            f"--out {directory} --resume",
            highlight=False,
        )
    console.print(f"{len(written)} files written to [bold]{target}[/bold]")


def _parse_pairs(values: Sequence[str]) -> list[tuple[str, str]]:
    pairs = []
    for v in values:
        a, sep, b = v.partition("=")
        if not sep or not a or not b:
            fail(f"--pair {v!r}: expected A_ID=B_ID, e.g. --pair base=base")
        pairs.append((a, b))
    return pairs


@click.command("compare")
@click.argument("dir_a", type=_DIR)
@click.argument("dir_b", type=_DIR)
@click.option(
    "--pair",
    "pairs",
    multiple=True,
    metavar="A_ID=B_ID",
    help="Configurations to compare (default: every configuration id present in both).",
)
@click.option("--resamples", type=click.IntRange(min=100), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the comparison as Markdown to this file.",
)
@click.option(
    "--html",
    "html_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the comparison as one self-contained HTML page (the paired table and "
    "both runs' answers per test image) to this file.",
)
def compare_cmd(
    dir_a: Path,
    dir_b: Path,
    pairs: tuple[str, ...],
    resamples: int,
    seed: int,
    out: Path | None,
    html_out: Path | None,
) -> None:
    """Compare two results directories with paired tests on their shared test images."""
    from harness.core.atomic import write_text_atomic
    from harness.evaluation import stats
    from harness.exports import classes_of, fmt_p
    from harness.exports.compare import (
        compare_runs,
        comparison_html,
        comparison_markdown,
        match_pairs,
        setting_differences,
    )
    from harness.results.store import ResultsStore

    try:
        with ResultsStore.open(dir_a, create=False) as sa:
            rows_a, prov_a, _ = sa.load()
        with ResultsStore.open(dir_b, create=False) as sb:
            rows_b, prov_b, _ = sb.load()
        fa = prov_a.get("benchmark", {}).get("fingerprint")
        fb = prov_b.get("benchmark", {}).get("fingerprint")
        if fa and fb and fa != fb:
            raise DataError(
                f"{sa.path} (benchmark {fa}) and {sb.path} (benchmark {fb}) were scored on "
                "different benchmarks: paired tests need the same test images"
            )
        classes = classes_of([*rows_a, *rows_b], prov_a)
        wanted = _parse_pairs(pairs)
        results = compare_runs(rows_a, rows_b, classes, wanted, resamples, seed)
        warnings = setting_differences(prov_a, prov_b, match_pairs(rows_a, rows_b, wanted))
        note = "".join(f"**Warning:** {w}.\n\n" for w in warnings)
        if out:
            write_text_atomic(out, comparison_markdown(results, str(dir_a), str(dir_b), note))
        if html_out:
            from harness.exports.html_images import benchmark_thumbnails
            from harness.results.columns import metric_table

            ids = {str(p["id"]) for r in [*rows_a, *rows_b] for p in r.get("predictions", [])}
            images, image_note = benchmark_thumbnails(prov_a, sorted(ids))
            page = comparison_html(
                results,
                str(dir_a),
                str(dir_b),
                (rows_a, rows_b),
                images,
                classes,
                warnings,
                image_note,
                {c.name: c.title for c in metric_table(prov_a)},
            )
            write_text_atomic(html_out, page)
    except HarnessError as exc:
        fail(exc)
    table = Table(title=f"A = {dir_a}  ·  B = {dir_b}  ·  Δ = B − A (95% paired bootstrap CI)")
    for col in ("A", "B", "n"):
        table.add_column(col, justify="right" if col == "n" else "left")
    for m in stats.HEADLINE:
        table.add_column(f"Δ{m}", justify="right")
        table.add_column("p", justify="right")
    table.add_column("McNemar p", justify="right")
    for r in results:
        cells = []
        for m in stats.HEADLINE:
            p = r["paired"].get(m)
            if p is None:
                cells += ["–", "–"]
                continue
            cells += [f"{p.estimate:+.3f} [{p.low:+.3f}, {p.high:+.3f}]", fmt_p(p.p_value)]
        table.add_row(r["a"], r["b"], str(r["n_shared"]), *cells, fmt_p(r["mcnemar"].p_value))
    console.print(table)
    for w in warnings:
        console.print(f"[yellow]warning:[/yellow] {w}; the Δ may come from this", highlight=False)
    for path in (out, html_out):
        if path:
            console.print(f"Comparison written to [bold]{path}[/bold]")
