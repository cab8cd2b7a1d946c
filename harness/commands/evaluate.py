"""`harness eval`: score a base model or a saved adapter on a benchmark."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from harness.benchmarks import DEFAULT_BENCHMARK
from harness.commands import console, eval_options, fail, set_torch_threads
from harness.core.errors import HarnessError


@click.command("eval")
@click.option("--model", default="tiny", show_default=True, help="'tiny', a local dir or a hub id.")
@click.option("--revision", default=None)
@click.option(
    "--adapter",
    type=click.Path(path_type=Path),
    default=None,
    help="A saved adapter folder (from a bench run's runs/*/adapter).",
)
@click.option("--benchmark", default=DEFAULT_BENCHMARK, show_default=True)
@click.option("--eval-batch-size", type=click.IntRange(min=1), default=None)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=None)
@eval_options
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="Leaderboard metric plugin, as for `harness bench` (repeatable or comma-separated).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads for torch (default 1 on <=2 cores).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run folder (default: a new folder under reports/); the same outputs as bench.",
)
@click.option(
    "--merge-parity",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Also compare merged vs unmerged greedy answers on the first N test images.",
)
@click.option(
    "--executor",
    type=click.Choice(["serial", "local"]),
    default="serial",
    show_default=True,
    help="local: data-parallel evaluation, each worker process answers one slice of the test "
    "split (one per visible GPU, or --workers N); the merged predictions equal a serial run's.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="--executor local: worker processes (default: one per visible GPU, else 1).",
)
def evaluate_cmd(
    model,
    revision,
    adapter,
    benchmark,
    eval_batch_size,
    max_new_tokens,
    scoring,
    decoding,
    metrics,
    threads,
    out,
    merge_parity,
    executor,
    workers,
) -> None:
    """Evaluate a model (optionally with an adapter) on a benchmark's test split.

    A one-configuration plan: it writes the same run folder as `bench` (store, leaderboard,
    results.json, predictions), which `harness report` and `harness compare` read.
    """
    from harness.commands.progress import progress_sink
    from harness.commands.report import print_leaderboard
    from harness.exports import analyse
    from harness.model.adapters import check_adapter_dir, read_card
    from harness.model.loading import ModelSpec
    from harness.plan import make_plan
    from harness.plugins import make_registry
    from harness.results.columns import DEFAULT_METRICS
    from harness.runner import default_out_dir, run_bench
    from harness.spec import BenchSpec

    try:
        set_torch_threads(threads)
        if adapter:
            check_adapter_dir(adapter)
        card = read_card(adapter) if adapter else {}
        base = card.get("base_model", {})
        model_spec = ModelSpec(
            model=model if model != "tiny" or not base else base.get("model", model),
            revision=revision or base.get("revision"),
            min_pixels=base.get("min_pixels"),
            max_pixels=base.get("max_pixels"),
        )
        generation = card.get("generation", {})
        spec = BenchSpec(
            trainers=("adapter",) if adapter else ("base",),
            include_base=False,
            component_options={"trainer": {"adapter": {"path": str(adapter)}}} if adapter else {},
            model=model_spec,
            benchmark=benchmark,
            out=out or default_out_dir(),
            eval_batch_size=eval_batch_size or generation.get("batch_size"),
            max_new_tokens=max_new_tokens or generation.get("max_new_tokens"),
            scoring=scoring,
            decoding=decoding,
            metrics=tuple(m for v in metrics for m in v.split(",") if m) or DEFAULT_METRICS,
            executor=executor,
            workers=workers,
        )
        registry = make_registry()
        plan = make_plan(spec, registry)
        with progress_sink(console) as progress:
            result = run_bench(spec, registry, progress, plan)
        row = result.rows[0]
        parity = _merge_parity(spec, adapter, merge_parity) if adapter and merge_parity else None
    except HarnessError as exc:
        fail(exc)
    print_leaderboard(result.rows, result.provenance, analyse(result.rows, result.provenance))
    _compare_with_card(card, row["metrics"], result.provenance["benchmark"])
    if parity is not None:
        console.print(f"merge parity: {parity['disagreements']} of {parity['n']} answers differ")
    console.print(f"Run folder [bold]{result.out}[/bold] (harness report {result.out})")


def _merge_parity(spec, adapter: Path, n: int) -> dict:
    """Merged vs unmerged greedy answers of the adapter on the first ``n`` test images."""
    from harness.benchmarks import load_benchmark
    from harness.evaluation.parity import merge_parity as check
    from harness.model.adapters import load_with_adapter
    from harness.model.prompts import eval_prompt
    from harness.plan import generation_config

    bench = load_benchmark(spec.benchmark)
    net, processor = load_with_adapter(spec.model, adapter)
    prompt = eval_prompt(bench.classes)
    subset = bench.test[:n]
    with console.status(f"merge parity on {len(subset)} images"):
        return check(
            net,
            processor,
            [s.image for s in subset],
            [prompt] * len(subset),
            generation_config(spec),
        )


def _compare_with_card(card: dict, metrics: dict, bench: dict) -> None:
    """Say whether this evaluation reproduces the metrics the adapter's run recorded."""
    recorded = card.get("metrics", {})
    if not recorded:
        return
    card_bench = card.get("benchmark", {})
    if card_bench.get("fingerprint") != bench.get("fingerprint"):
        console.print(
            f"[yellow]the card's values were recorded on benchmark {card_bench.get('name')} "
            f"({card_bench.get('fingerprint')}), not on this one[/yellow]"
        )
        return
    table = Table(title="this evaluation vs the adapter card's record")
    for col in ("metric", "this eval", "recorded in card"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}", f"{recorded[key]:.4f}" if key in recorded else "–")
    console.print(table)
    shared = set(metrics) & set(recorded)
    same = bool(shared) and all(abs(recorded[k] - metrics[k]) < 1e-9 for k in shared)
    console.print(
        "metrics match the run's record"
        if same
        else "[yellow]metrics differ from the run's record[/yellow]"
    )
