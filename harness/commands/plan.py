"""`harness bench --dry-run`: the resolved plan, printed before any model loads."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from harness.commands import console
from harness.plan import Plan
from harness.registry import Registry


def _non_default(component: Any) -> str:
    """Effective options that differ from the component's own defaults, as key=value."""
    opts = component.options
    defaults = type(opts)()
    items = [
        f"{k}={v!r}"
        for k, v in opts.model_dump(mode="json").items()
        if v != getattr(defaults, k) and not (k == "seed")
    ]
    return ", ".join(items) or "(defaults)"


def _executor(spec: Any) -> str:
    """The executor and its settings, as `--dry-run` shows them."""
    if spec.executor == "local":
        workers = spec.workers if spec.workers is not None else "one per visible GPU, else 1"
        return f"local (workers: {workers})"
    if spec.executor == "ray":
        address = spec.address or "a local Ray instance"
        gpus = spec.gpus_per_config if spec.gpus_per_config is not None else "1 on GPU, else 0"
        return f"ray on {address} (GPUs per configuration: {gpus})"
    return "serial (one configuration after another, in this process)"


def finished_configs(plan: Plan, registry: Registry) -> set[str]:
    """Ids of the plan's configurations already finished in ``--out`` (empty for a new run)."""
    from harness.benchmarks import load_benchmark
    from harness.model.prompts import eval_prompt, text_hash
    from harness.results.store import ResultsStore

    out = plan.spec.out
    if out is None or not (out / "results.sqlite").is_file():
        return set()
    from harness.plan import resume_keys

    bench = load_benchmark(plan.spec.benchmark)
    keys = resume_keys(plan, bench.fingerprint, text_hash(eval_prompt(bench.classes)))
    with ResultsStore.open(out, create=False) as store:
        return {c.id for c, key in keys.items() if store.has_config(key)}


def print_plan(plan: Plan, registry: Registry) -> None:
    """The configurations with each component's effective options and their cache status."""
    spec = plan.spec
    done = finished_configs(plan, registry)
    gen = plan.generation
    table = Table(
        title=f"Plan: {len(plan.configs)} configuration(s) on {spec.benchmark} · model "
        f"{spec.model.model} (preset {spec.model.preset.name}) · {gen.scoring}, decoding "
        f"{gen.decoding}, batch {gen.batch_size}, max {gen.max_new_tokens} new tokens",
        caption="Options shown differ from the component's own defaults (preset and -o "
        "applied); all of them: harness plugins --options KIND.NAME",
    )
    table.add_column("Configuration", overflow="fold")
    table.add_column("Seed", justify="right")
    table.add_column("Components and effective options", overflow="fold")
    table.add_column("Status")
    for planned in plan.configs:
        names = planned.names()
        parts = [
            f"[bold]{kind} {names[kind]}[/bold]: {_non_default(comp)}"
            for kind, comp in planned.components.items()
        ]
        status = "finished (skipped with --resume)" if planned.config.id in done else "to run"
        table.add_row(planned.config.id, str(planned.config.seed), "\n".join(parts), status)
    console.print(table)
    console.print(f"Executor: {_executor(spec)}")
    console.print(f"Output folder: {spec.out} (nothing was written: --dry-run)")
