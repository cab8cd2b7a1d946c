"""``harness benchmark build|verify|check-leakage``: frozen, de-duplicated benchmarks."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from harness.commands import console, fail
from harness.commands.progress import progress_sink
from harness.core.errors import HarnessError


@contextmanager
def progress_callback() -> Iterator[object]:
    """Progress driven by the library's ``progress(stage, done, total)`` callback: Rich bars in a
    terminal, plain timestamped lines in a log."""
    tasks: dict[str, Any] = {}
    with progress_sink(console) as sink:

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = sink.start(stage, total)
            tasks[stage].update(done, total)
            if done >= total:
                tasks[stage].finish()

        yield report
        for task in tasks.values():
            task.finish()


root_option = click.option(
    "--root",
    type=click.Path(path_type=Path),
    default=Path("benchmarks"),
    show_default=True,
    help="Folder holding built benchmarks.",
)
workers_option = click.option(
    "--workers", type=click.IntRange(min=1), default=None, help="Processes (default: all cores)."
)
VERIFY_HELP = (
    "Near-duplicate verification: a hash candidate counts only if its thumbnail residual score "
    "is <= this (0: hash only)."
)


@click.group("benchmark")
def benchmark() -> None:
    """Build, verify and leak-check frozen benchmarks from your own X-rays."""


@benchmark.command("build")
@click.argument("source")
@click.option("--name", required=True, help="Benchmark name: written to ROOT/NAME.")
@root_option
@click.option("--val", type=float, default=0.1, show_default=True, help="Validation share.")
@click.option("--test", type=float, default=0.2, show_default=True, help="Test share.")
@click.option("--seed", type=int, default=0, show_default=True, help="Split seed.")
@click.option(
    "--hash",
    "hash_kind",
    default="whash",
    show_default=True,
    type=click.Choice(["whash", "phash", "dhash", "ahash"]),
    help="Perceptual hash.",
)
@click.option("--hash-size", type=int, default=8, show_default=True, help="Hash side (bits=n²).")
@click.option(
    "--threshold", type=int, default=8, show_default=True, help="Candidate Hamming threshold."
)
@click.option("--verify", type=float, default=0.02, show_default=True, help=VERIFY_HELP)
@click.option("--include-encapsulated", is_flag=True, help="Keep Encapsulated_Lesions (06).")
@click.option(
    "--follow-symlinks",
    is_flag=True,
    help="Import symlinks that resolve outside SOURCE (default: list and skip them).",
)
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="FOLDER=LABEL",
    help="Map a folder name / label value to a class; repeatable.",
)
@click.option("--image-column", default="image", show_default=True, help="HF image column.")
@click.option("--text-column", default="text", show_default=True, help="HF report column.")
@click.option("--label-column", default="__class__", show_default=True, help="HF label column.")
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=None,
    help="Decompression-bomb limit (default 50,000,000).",
)
@workers_option
@click.option("--overwrite", is_flag=True, help="Replace an existing benchmark of that name.")
def build_cmd(
    source,
    name,
    root,
    val,
    test,
    seed,
    hash_kind,
    hash_size,
    threshold,
    verify,
    include_encapsulated,
    follow_symlinks,
    mapping,
    image_column,
    text_column,
    label_column,
    max_pixels,
    workers,
    overwrite,
) -> None:
    """Import SOURCE (folder tree, saved HF dataset, CSV/JSONL manifest, or the name of a
    benchmark plugin such as phantom8), de-duplicate, split group-aware and stratified, and
    freeze it under ROOT/NAME."""
    from harness.benchmarks import plugin_benchmark
    from harness.data.dedup import HashConfig
    from harness.data.images import DEFAULT_MAX_PIXELS
    from harness.data.importers import import_source
    from harness.data.manifest import build_benchmark

    try:
        label_map = {}
        for item in mapping:
            key, sep, value = item.rpartition("=")
            if not sep or not key.strip():
                raise click.BadParameter(f"{item!r}: expected FOLDER=LABEL", param_hint="--map")
            label_map[key.strip()] = value.strip()
        cfg = HashConfig(hash_kind, hash_size, threshold, verify)
        imported = import_source(
            source,
            label_map,
            include_encapsulated,
            image_column,
            text_column,
            label_column,
            follow_symlinks=follow_symlinks,
            plugin_benchmark=plugin_benchmark,
        )
        with progress_callback() as report:
            res = build_benchmark(
                imported,
                name,
                root,
                val=val,
                test=test,
                seed=seed,
                hash_config=cfg,
                max_pixels=max_pixels or DEFAULT_MAX_PIXELS,
                workers=workers,
                overwrite=overwrite,
                progress=report,
            )
    except HarnessError as exc:
        fail(exc)
    rep = res.report
    table = Table(title=f"{name} · fingerprint {res.fingerprint}")
    table.add_column("Class")
    for split in ("train", "val", "test"):
        table.add_column(split, justify="right")
    for label in sorted({k for c in res.counts.values() for k in c}):
        table.add_row(label, *(str(res.counts[s].get(label, 0)) for s in ("train", "val", "test")))
    console.print(table)
    console.print(
        f"kept {rep['kept']} of {rep['records']} files · exact copies dropped "
        f"{len(rep['exact_duplicates_dropped'])} · duplicate groups {rep['near_duplicate_groups']} "
        f"({rep['images_in_near_duplicate_groups']} images, largest {rep['largest_group']}) · "
        f"label conflicts excluded {len(rep['label_conflicts'])} · skipped {len(rep['skipped'])}"
    )
    for conflict in rep["label_conflicts"]:
        who = ", ".join(f"{s} ({lab})" for s, lab in conflict["members"])
        console.print(f"[yellow]label conflict excluded:[/yellow] {who}", highlight=False)
    for s in rep["skipped"]:
        detail = f" ({s['detail']})" if s["detail"] else ""
        console.print(
            f"[yellow]skipped {s['reason']}:[/yellow] {s['source']}{detail}", highlight=False
        )
    for folder in rep["empty_classes"]:
        console.print(f"[yellow]empty class folder:[/yellow] {folder}", highlight=False)
    for label, n in rep["excluded_by_option"].items():
        console.print(f"[dim]excluded by option: {n} × {label}[/dim]")
    if rep["largest_group"] > max(50, rep["kept"] // 20):
        console.print(
            f"[bold yellow]warning:[/bold yellow] one duplicate group holds "
            f"{rep['largest_group']} images; the threshold may be too loose "
            "(try a lower --verify or --threshold)."
        )
    console.print(
        f"cross-split near-duplicate pairs: {res.leakage_pairs} · written to "
        f"[bold]{res.path}[/bold] (build_report.json lists everything above)"
    )


@benchmark.command("verify")
@click.argument("name")
@root_option
@workers_option
def verify_cmd(name, root, workers) -> None:
    """A benchmark plugin's NAME: rebuild it and compare its fingerprint with the one the plugin
    records. A built NAME: re-hash every file and report changed, missing or extra files. Exit 1
    if anything differs."""
    from harness.benchmarks import check_benchmark, verify_plugin_benchmark
    from harness.data.manifest import verify
    from harness.plugins import make_registry

    try:
        registry = make_registry()
        with console.status(f"rebuilding {name}"):
            rebuilt = verify_plugin_benchmark(name, registry)
        if rebuilt is None:
            check_benchmark(name, root, registry)
            with progress_callback() as report:
                res = verify(name, root, workers, report)
    except HarnessError as exc:
        fail(exc)
    if rebuilt is not None:
        if not rebuilt.expected:
            console.print(
                f"[red]unverifiable:[/red] the plugin of {name} records no fingerprint "
                f"(rebuilt: {rebuilt.rebuilt})"
            )
            sys.exit(1)
        if not rebuilt.ok:
            console.print(
                f"[red]fingerprint mismatch:[/red] {name} rebuilds to {rebuilt.rebuilt}, its "
                f"plugin records {rebuilt.expected} (its code or an image library changed)"
            )
            sys.exit(1)
        console.print(
            f"[green]ok:[/green] {name}: rebuilt from its plugin; fingerprint {rebuilt.rebuilt} "
            "matches the recorded one"
        )
        return
    for kind, paths in (("changed", res.changed), ("missing", res.missing), ("extra", res.extra)):
        for p in paths:
            console.print(f"[red]{kind}:[/red] {p}", highlight=False)
    if not res.fingerprint_ok:
        console.print("[red]manifest fingerprint mismatch:[/red] manifest.jsonl was edited")
    if not res.ok:
        sys.exit(1)
    console.print(f"[green]ok:[/green] {name}: every file matches its manifest SHA-256")


@benchmark.command("check-leakage")
@click.argument("name")
@root_option
@click.option(
    "--threshold",
    type=int,
    default=None,
    help="Candidate Hamming threshold (default: the one the benchmark was built with).",
)
@click.option("--verify", type=float, default=None, help=VERIFY_HELP + " Default: as built.")
@workers_option
def check_leakage_cmd(name, root, threshold, verify, workers) -> None:
    """Report near-duplicate pairs across train/val/test of NAME (exit 1 if any), by the
    definition NAME was built with (a benchmark plugin's NAME: the build defaults)."""
    from harness.benchmarks import plugin_benchmark
    from harness.data.dedup import HashConfig
    from harness.data.leakage import check_leakage, check_leakage_samples, leakage_config
    from harness.plugins import make_registry

    try:
        with console.status(f"loading {name}"):
            b = plugin_benchmark(name, make_registry())
        with progress_callback() as report:
            if b is not None:
                cfg = leakage_config({"hash": HashConfig().as_dict()}, threshold, verify)
                splits = {"train": b.train, "val": b.val, "test": b.test}
                res = check_leakage_samples(splits, cfg, workers, report)
            else:
                res = check_leakage(name, root, threshold, workers, report, verify)
    except HarnessError as exc:
        fail(exc)
    rule = res.config.describe()
    if res.pairs:
        table = Table(
            title=f"{len(res.pairs)} cross-split near-duplicate pairs "
            f"({rule}; {res.exact} pixel-identical)"
        )
        for col in ("split", "image", "split", "image", "distance", "score"):
            table.add_column(col)
        for a, ia, b, ib, d, sc in res.pairs[:50]:
            table.add_row(a, ia, b, ib, str(d), f"{sc:.4f}")
        console.print(table)
        if len(res.pairs) > 50:
            console.print(f"... and {len(res.pairs) - 50} more")
        sys.exit(1)
    console.print(
        f"[green]ok:[/green] no cross-split near-duplicates ({rule}; "
        f"{res.candidates} hash candidates checked)"
    )
