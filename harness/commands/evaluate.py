"""`harness eval`: score a base model or a saved adapter on a benchmark."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from harness.benchmark import DEFAULT_BENCHMARK
from harness.commands import console, eval_options, fail, set_torch_threads
from harness.errors import HarnessError, ModelError


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
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads for torch (default 1 on <=2 cores).",
)
@click.option(
    "--merge-parity",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Also compare merged vs unmerged greedy answers on the first N test images.",
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
    threads,
    merge_parity,
) -> None:
    """Evaluate a model (optionally with an adapter) on a benchmark's test split."""
    from harness.adapters import load_with_adapter, read_card
    from harness.benchmark import load_benchmark
    from harness.evaluation import GenerationConfig, check_decoding, evaluate
    from harness.modeling import ModelSpec, load_base
    from harness.prompts import eval_prompt

    try:
        set_torch_threads(threads)
        if adapter and not (adapter / "adapter_config.json").is_file():
            what = "does not exist" if not adapter.exists() else "has no adapter_config.json"
            raise ModelError(f"--adapter {str(adapter)!r} {what}")
        card = read_card(adapter) if adapter else {}
        base = card.get("base_model", {})
        spec = ModelSpec(
            model=model if model != "tiny" or not base else base.get("model", model),
            revision=revision or base.get("revision"),
            min_pixels=base.get("min_pixels"),
            max_pixels=base.get("max_pixels"),
        )
        gen = GenerationConfig(
            max_new_tokens=max_new_tokens
            or card.get("generation", {}).get("max_new_tokens")
            or spec.preset.max_new_tokens,
            batch_size=eval_batch_size
            or card.get("generation", {}).get("batch_size")
            or spec.preset.eval_batch_size,
            scoring=scoring,
            decoding=decoding,
        )
        check_decoding(gen)
        bench = load_benchmark(benchmark)
        net, processor = load_with_adapter(spec, adapter) if adapter else load_base(spec)
        prompt = eval_prompt(bench.classes)
        with console.status(f"evaluating {len(bench.test)} test images"):
            result = evaluate(net, processor, bench.test, prompt, bench.classes, gen)
        parity = None
        if adapter and merge_parity:
            from harness.adapters import merge_parity as check

            subset = bench.test[:merge_parity]
            with console.status(f"merge parity on {len(subset)} images"):
                parity = check(
                    net, processor, [s.image for s in subset], [prompt] * len(subset), gen
                )
    except HarnessError as exc:
        fail(exc)
    table = Table(title=f"{bench.name} · fingerprint {bench.fingerprint}")
    table.add_column("metric")
    table.add_column("this eval", justify="right")
    recorded = card.get("metrics", {})
    if recorded:
        table.add_column("recorded in card", justify="right")
    for key, value in result.metrics.items():
        cells = [f"{value:.4f}"]
        if recorded:
            cells.append(f"{recorded[key]:.4f}" if key in recorded else "–")
        table.add_row(key, *cells)
    console.print(table)
    card_bench = card.get("benchmark", {})
    if recorded and card_bench.get("fingerprint") != bench.fingerprint:
        console.print(
            f"[yellow]the card's values were recorded on benchmark {card_bench.get('name')} "
            f"({card_bench.get('fingerprint')}), not on this one[/yellow]"
        )
    if recorded and card_bench.get("fingerprint") == bench.fingerprint:
        shared = set(result.metrics) & set(recorded)
        same = bool(shared) and all(abs(recorded[k] - result.metrics[k]) < 1e-9 for k in shared)
        console.print(
            "metrics match the run's record"
            if same
            else "[yellow]metrics differ from the run's record[/yellow]"
        )
    if parity is not None:
        console.print(f"merge parity: {parity['disagreements']} of {parity['n']} answers differ")
