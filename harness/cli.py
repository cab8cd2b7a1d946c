"""The command line. The only module that prints and exits."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import click
from rich.table import Table

from harness.benchmarks import DEFAULT_BENCHMARK
from harness.commands import (
    console,
    err_console,
    eval_options,
    executor_options,
    fail,
    set_torch_threads,
)
from harness.commands.progress import progress_sink
from harness.core.errors import ExecutionError, HarnessError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cxr-harness")
def main() -> None:
    """cxr-harness: compare fine-tuning recipes for Qwen2.5-VL on chest X-rays, fairly."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # Library deprecation notices are for us, not for people reading a leaderboard.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")


def _split_csv(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(v.strip() for item in values for v in item.split(",") if v.strip())


@main.command()
@click.option(
    "--trainer",
    "trainers",
    multiple=True,
    default=("rslora",),
    show_default=True,
    help="Trainer plugin; repeat (or comma-separate) for a cross product.",
)
@click.option(
    "--augmenter",
    "augmenters",
    multiple=True,
    default=("none",),
    show_default=True,
    help="Augmenter plugin (train split only); repeatable.",
)
@click.option(
    "--synthesizer",
    "synthesizers",
    multiple=True,
    default=("template",),
    show_default=True,
    help="Synthesizer plugin for training report text; repeatable.",
)
@click.option(
    "--seed",
    "seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of every random choice in training (the benchmark itself is frozen).",
)
@click.option(
    "--seeds", default=None, help="Several training seeds, e.g. 1,2,3 (overrides --seed)."
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="Leaderboard metric plugin; repeat (or comma-separate) to choose the columns "
    "[default: macro_f1, accuracy, rouge_l, invalid_rate]; `harness plugins` lists them.",
)
@click.option(
    "-o",
    "--option",
    "options",
    multiple=True,
    metavar="KIND.KEY=VALUE",
    help="Component option, e.g. -o trainer.r=32 -o augmenter.max_deg=5.",
)
@click.option(
    "--model",
    default="tiny",
    show_default=True,
    help="'tiny' (embedded test model), a local checkpoint dir, or a hub id.",
)
@click.option("--revision", default=None, help="Hub revision for --model.")
@click.option("--min-pixels", type=int, default=None, help="Image processor min_pixels.")
@click.option("--max-pixels", type=int, default=None, help="Image processor max_pixels.")
@click.option(
    "--benchmark",
    default=DEFAULT_BENCHMARK,
    show_default=True,
    help="A benchmark plugin's name, a built benchmark's NAME, or its folder (with a /).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Output folder (default: a new folder under reports/).",
)
@click.option(
    "--eval-batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Generation batch size (default: sized from free GPU memory on a CUDA GPU, else the "
    "model preset's).",
)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=None)
@eval_options
@click.option(
    "--aug-copies",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Augmented copies added per training image (augmenter other than none).",
)
@click.option(
    "--balance",
    default=None,
    metavar="POLICY",
    help="Balance the train split per class: max, median or a count; small classes get "
    "augmented copies, large ones are undersampled (replaces --aug-copies).",
)
@click.option("--no-base", is_flag=True, help="Skip the base-model reference row.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --out: finished configurations are not recomputed.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads for torch (default 1 on <=2 cores: oversubscription is slow).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Experiment file (TOML): grid, model, benchmark, evaluation and options; flags given "
    "on the command line override it. Every run writes its resolved plan as experiment.toml.",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the resolved plan (and what is cached) and exit."
)
@executor_options
@click.pass_context
def bench(
    ctx,
    trainers,
    augmenters,
    synthesizers,
    seed,
    seeds,
    metrics,
    options,
    model,
    revision,
    min_pixels,
    max_pixels,
    benchmark,
    out,
    eval_batch_size,
    max_new_tokens,
    scoring,
    decoding,
    aug_copies,
    balance,
    no_base,
    resume,
    threads,
    config_file,
    dry_run,
    executor,
    workers,
    address,
    gpus_per_config,
) -> None:
    """Run the base and fine-tuned models on a fixed held-out benchmark and rank them."""
    from harness.execution import check_executor
    from harness.model.loading import ModelSpec
    from harness.plan import make_plan
    from harness.plugins import make_registry
    from harness.results.columns import DEFAULT_METRICS
    from harness.runner import default_out_dir, run_bench
    from harness.spec import BenchSpec, parse_option_args

    try:
        seed_list = tuple(int(s) for s in _split_csv((seeds,))) if seeds else (seed,)
    except ValueError:
        fail(f"--seeds {seeds!r}: expected comma-separated integers, e.g. 1,2,3")
    given = {
        "trainers": _split_csv(trainers),
        "augmenters": _split_csv(augmenters),
        "synthesizers": _split_csv(synthesizers),
        "seeds": seed_list,
        "metrics": _split_csv(metrics) or DEFAULT_METRICS,
        "model": model,
        "revision": revision,
        "min_pixels": min_pixels,
        "max_pixels": max_pixels,
        "benchmark": benchmark,
        "eval_batch_size": eval_batch_size,
        "max_new_tokens": max_new_tokens,
        "scoring": scoring,
        "decoding": decoding,
        "aug_copies": aug_copies,
        "balance": balance,
        "include_base": not no_base,
        "executor": executor,
        "workers": workers,
        "address": address,
        "gpus_per_config": gpus_per_config,
    }
    try:
        set_torch_threads(threads)
        cli_options = parse_option_args(list(options))
        component_options: dict = {}
        if config_file is not None:
            from harness.experiment import load_experiment

            given, cli_options, component_options = _merge_experiment(
                ctx, given, cli_options, load_experiment(config_file)
            )
        spec = BenchSpec(
            trainers=given["trainers"],
            augmenters=given["augmenters"],
            synthesizers=given["synthesizers"],
            seeds=given["seeds"],
            metrics=tuple(given["metrics"]),
            options=cli_options,
            component_options=component_options,
            model=ModelSpec(
                model=given["model"],
                revision=given["revision"],
                min_pixels=given["min_pixels"],
                max_pixels=given["max_pixels"],
            ),
            benchmark=given["benchmark"],
            out=out or default_out_dir(),
            eval_batch_size=given["eval_batch_size"],
            max_new_tokens=given["max_new_tokens"],
            scoring=given["scoring"],
            decoding=given["decoding"],
            aug_copies=given["aug_copies"],
            include_base=given["include_base"],
            resume=resume,
            balance=given["balance"],
            executor=given["executor"],
            workers=given["workers"],
            address=given["address"],
            gpus_per_config=given["gpus_per_config"],
        )
        registry = make_registry()
        plan = make_plan(spec, registry)
        check_executor(spec)
        if dry_run:
            from harness.commands.plan import print_plan

            print_plan(plan, registry)
            return
        with progress_sink(console) as progress:
            result = run_bench(spec, registry, progress, plan)
    except ExecutionError as exc:  # not bad input: some configurations failed, the rest saved
        from rich.markup import escape

        err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except HarnessError as exc:
        fail(exc)
    except KeyboardInterrupt:
        err_console.print(
            f"[yellow]interrupted.[/yellow] Finished configurations are saved in {spec.out}; "
            f"rerun the same command with --out {spec.out} --resume to continue.",
            highlight=False,
        )
        sys.exit(130)
    from harness.commands.report import print_leaderboard
    from harness.exports import analyse

    analysis = analyse(result.rows, result.provenance)
    print_leaderboard(result.rows, result.provenance, analysis, result.baselines)
    console.print(
        f"Reports in [bold]{result.out}[/bold]: leaderboard.md/.tex, results.json/.csv, "
        f"predictions.jsonl, per_class.md, plots/, report.html (re-render with: harness report "
        f"{result.out})"
    )


# bench parameter -> the key of the same setting in an experiment file
_FILE_KEYS = {
    "trainers": "trainers",
    "augmenters": "augmenters",
    "synthesizers": "synthesizers",
    "seeds": "seeds",
    "seed": "seeds",
    "metrics": "metrics",
    "model": "model",
    "revision": "revision",
    "min_pixels": "min_pixels",
    "max_pixels": "max_pixels",
    "benchmark": "benchmark",
    "eval_batch_size": "eval_batch_size",
    "max_new_tokens": "max_new_tokens",
    "scoring": "scoring",
    "decoding": "decoding",
    "aug_copies": "aug_copies",
    "balance": "balance",
    "no_base": "include_base",
    "executor": "executor",
    "workers": "workers",
    "address": "address",
    "gpus_per_config": "gpus_per_config",
}


def _merge_experiment(ctx, given: dict, cli_options: dict, file: dict) -> tuple:
    """Experiment-file values, except where the command line set a flag or an ``-o`` key."""
    from click.core import ParameterSource

    typed = {
        key
        for name, key in _FILE_KEYS.items()
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
    }
    merged = dict(given)
    for key, value in file.items():
        if key in merged and key not in typed:
            merged[key] = value
    options = {
        kind: {**file["options"].get(kind, {}), **cli_options.get(kind, {})} for kind in cli_options
    }
    components = {
        kind: {
            name: {k: v for k, v in values.items() if k not in cli_options.get(kind, {})}
            for name, values in tables.items()
        }
        for kind, tables in file["component_options"].items()
    }
    return merged, options, components


@main.command("plugins")
@click.option(
    "--options",
    "show",
    default=None,
    metavar="KIND.NAME",
    help="Show one component's options, e.g. --options trainer.rslora.",
)
@click.option(
    "--model",
    default="tiny",
    show_default=True,
    help="With --options: show the defaults that apply to this model (its family's preset).",
)
def plugins_cmd(show: str | None, model: str) -> None:
    """List every registered plugin component with its kind, distribution and version."""
    from harness.model.loading import ModelSpec
    from harness.plugins import make_registry
    from harness.registry import KINDS

    try:
        registry = make_registry()
        if show is not None:
            kind, _, name = show.partition(".")
            if kind not in KINDS or not name:
                fail(f"--options {show!r}: expected KIND.NAME, e.g. trainer.rslora")
            entry = registry.get(kind, name)
    except HarnessError as exc:
        fail(exc)
    if show is not None:
        family = ModelSpec(model=model).preset.name
        recommended = entry.cls.model_defaults(family) if kind == "trainer" else {}
        table = Table(title=f"{kind} {name!r} options (set with -o {kind}.KEY=VALUE)")
        for col in ("Option", "Type", f"Default for --model {model}", "Description"):
            table.add_column(col, overflow="fold")
        for key, field in entry.cls.Options.model_fields.items():
            ann = field.annotation
            type_name = (ann.__name__ if isinstance(ann, type) else str(ann)).replace("typing.", "")
            if key in recommended and recommended[key] != field.default:
                default = f"{recommended[key]!r} ({family} preset; own default {field.default!r})"
            else:
                default = repr(field.default)
            table.add_row(key, type_name, default, field.description or "")
        table.caption = f"Defaults as they apply to --model {model}; -o always wins."
        console.print(table)
        return
    table = Table(title="cxr-harness plugins")
    for col in ("Kind", "Name", "Distribution", "Version"):
        table.add_column(col, no_wrap=True)
    table.add_column("Description", overflow="ellipsis")
    for e in registry.all():
        summary = (e.cls.description or "").split(". ")[0].rstrip(".")
        table.add_row(e.kind, e.name, e.distribution, e.version, summary)
    console.print(table)
    console.print("Options of one component: harness plugins --options trainer.rslora")


def _add_commands() -> None:
    from harness.commands.benchmark import benchmark
    from harness.commands.evaluate import evaluate_cmd
    from harness.commands.report import compare_cmd, report_cmd
    from harness.commands.synth import synth

    for command in (benchmark, evaluate_cmd, synth, report_cmd, compare_cmd):
        main.add_command(command)


_add_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
