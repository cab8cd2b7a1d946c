"""Resolve once, then run: a bench spec becomes a typed plan of configurations whose
components, effective options and preflight checks are settled before any work starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.benchmarks import check_benchmark
from harness.components import Component, Metric
from harness.core.errors import ModelError, OptionError
from harness.data.benchmark import Benchmark
from harness.evaluation.generate import GenerationConfig, check_decoding
from harness.model.loading import resolve_model_path
from harness.registry import Registry
from harness.results.store import config_key
from harness.spec import BenchSpec, Configuration
from harness.training.balance import parse_policy


@dataclass(frozen=True)
class PlannedConfig:
    """One configuration with its instantiated components (effective options resolved)."""

    config: Configuration
    components: dict[str, Component]

    @property
    def trainer(self) -> Component:
        return self.components["trainer"]

    def options(self) -> dict[str, dict[str, Any]]:
        """``{kind: effective options}`` as recorded in results and the resume key."""
        return {k: c.options.model_dump(mode="json") for k, c in self.components.items()}

    def names(self) -> dict[str, str]:
        c = self.config
        names = {"trainer": c.trainer}
        if c.trains:
            names.update(augmenter=c.augmenter, synthesizer=c.synthesizer)
        return names


@dataclass(frozen=True)
class Plan:
    """Everything a bench will do, resolved once: what `--dry-run` prints and
    `experiment.toml` records."""

    spec: BenchSpec
    generation: GenerationConfig
    configs: tuple[PlannedConfig, ...]
    metrics: tuple[Metric, ...] = ()  # the leaderboard's columns, in order

    def metric_table(self) -> list[dict[str, Any]]:
        """The metric table recorded in the run's provenance."""
        return [m.column().as_dict() for m in self.metrics]


def make_plan(spec: BenchSpec, registry: Registry) -> Plan:
    """Validate the spec and resolve every configuration once; raises typed errors."""
    validate(spec, registry)
    configs = tuple(
        PlannedConfig(c, resolve_components(spec, registry, c))
        for c in spec.configurations(fixed_trainers(spec, registry))
    )
    for planned in configs:
        planned.trainer.preflight()
    return Plan(spec, generation_config(spec), configs, resolve_metrics(spec, registry))


def resolve_metrics(spec: BenchSpec, registry: Registry) -> tuple[Metric, ...]:
    """The chosen metric plugins, each checked (``preflight``) before any work: an unknown
    name, a duplicate, or a metric that cannot run here (METEOR without Java) fails now."""
    names = list(spec.metrics)
    if not names:
        raise OptionError("--metric: choose at least one metric")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise OptionError(f"--metric {', '.join(dup)}: chosen more than once")
    given = spec.component_options.get("metric", {})
    stray = sorted(set(given) - set(names))
    if stray:
        raise OptionError(f"options for metric {', '.join(stray)}: not chosen with --metric")
    metrics = tuple(registry.create("metric", n, given.get(n)) for n in names)
    for m in metrics:
        m.preflight()
    return metrics


def fixed_trainers(spec: BenchSpec, registry: Registry) -> frozenset[str]:
    """The spec's trainers that only load a model (``Trainer.trains`` is false)."""
    return frozenset(
        {"base"} | {t for t in spec.trainers if not registry.get("trainer", t).cls.trains}
    )


def check_classes(plan: Plan, bench: Benchmark) -> None:
    """Every synthesizer of the plan can describe every class of the benchmark."""
    for planned in plan.configs:
        synth = planned.components.get("synthesizer")
        if synth is not None:
            synth.check_classes(bench.classes)


def resume_keys(plan: Plan, fingerprint: str, prompt_hash: str) -> dict[Configuration, str]:
    """Each configuration's resume key: its id plus a hash of every setting of its result."""
    spec = plan.spec
    return {
        p.config: config_key(
            p.config.id,
            fingerprint=fingerprint,
            model=spec.model.resolved(),
            options=p.options(),
            generation=plan.generation.as_dict(),
            prompt_hash=prompt_hash,
            aug_copies=spec.aug_copies,
            balance=spec.balance,
        )
        for p in plan.configs
    }


def resolve_components(
    spec: BenchSpec, registry: Registry, config: Configuration
) -> dict[str, Component]:
    """Instantiate the configuration's components with their effective options:
    preset defaults < per-kind options (``-o kind.key``) < per-component options (an
    experiment file's ``[options.kind.name]``)."""
    trainer_entry = registry.get("trainer", config.trainer)
    fields = trainer_entry.cls.Options.model_fields
    trainer_opts = {
        k: v
        for k, v in trainer_entry.cls.model_defaults(spec.model.preset.name).items()
        if k in fields and v is not None
    }
    if "seed" in fields:
        trainer_opts["seed"] = config.seed
    user = spec.options.get("trainer", {})
    if not config.trains:  # a row that only loads a model takes only options it declares
        user = {k: v for k, v in user.items() if k in fields}
    trainer_opts.update({k: v for k, v in user.items() if k != "seed"})
    trainer_opts.update(spec.component_options.get("trainer", {}).get(config.trainer, {}))
    comps: dict[str, Component] = {
        "trainer": registry.create("trainer", config.trainer, trainer_opts)
    }
    if config.trains:
        for kind, name in (("augmenter", config.augmenter), ("synthesizer", config.synthesizer)):
            opts = {
                **spec.options.get(kind, {}),
                **spec.component_options.get(kind, {}).get(name, {}),
            }
            comps[kind] = registry.create(kind, name, opts)
    return comps


def generation_config(spec: BenchSpec) -> GenerationConfig:
    """Resolved once: ``--decoding auto`` and an unset ``--eval-batch-size`` become what this
    machine runs fastest (`harness.model.gpu_eval`); on a CPU, plain decoding and the preset's
    batch."""
    from harness.model.gpu_eval import auto_eval_batch, cuda_available, resolve_decoding

    preset = spec.model.preset
    max_new_tokens = spec.max_new_tokens or preset.max_new_tokens
    batch = spec.eval_batch_size
    if batch is None and cuda_available():
        try:
            local = resolve_model_path(spec.model)
        except ModelError:
            local = None
        batch = auto_eval_batch(local, max_new_tokens)
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        batch_size=batch or preset.eval_batch_size,
        scoring=spec.scoring,
        decoding=resolve_decoding(spec.decoding),
    )


def validate(spec: BenchSpec, registry: Registry) -> None:
    """Fail before any work: unknown names, bad options, or a missing model path."""
    gen = generation_config(spec)
    check_decoding(gen)
    if gen.scoring == "likelihood" and spec.options.get("trainer", {}).get("min_rouge_l"):
        raise OptionError(
            "trainer.min_rouge_l needs ROUGE-L, which --scoring likelihood does not compute"
        )
    check_declared_options(spec, registry)
    if spec.balance is not None:
        parse_policy(spec.balance)
    check_benchmark(spec.benchmark)
    store_file = spec.out / "results.sqlite" if spec.out is not None else None
    if spec.resume and (store_file is None or not store_file.is_file()):
        raise OptionError("--resume needs --out DIR pointing at an earlier run's folder")
    if not spec.resume and store_file is not None and store_file.is_file():
        raise OptionError(
            f"--out {spec.out} already holds a run: add --resume to continue it, "
            "or choose a new --out"
        )
    if spec.model.model != "tiny":
        resolve_model_path(spec.model)


def check_declared_options(spec: BenchSpec, registry: Registry) -> None:
    """Every ``-o`` key must be declared by some component of the grid, and seeds come only
    from ``--seed``/``--seeds`` (a ``trainer.seed`` option would give every seed one value)."""
    if "seed" in spec.options.get("trainer", {}):
        raise OptionError(
            "-o trainer.seed: training seeds come from --seed/--seeds (a trainer.seed option "
            "would train every --seeds value with one seed); use --seeds "
            f"{spec.options['trainer']['seed']} instead"
        )
    for kind, tables in spec.component_options.items():
        if kind == "trainer" and any("seed" in t for t in tables.values()):
            raise OptionError("options.trainer.NAME.seed: training seeds come from `seeds`")
    configs = spec.configurations(fixed_trainers(spec, registry))
    names = {
        "trainer": {c.trainer for c in configs},
        "augmenter": {c.augmenter for c in configs if c.trains},
        "synthesizer": {c.synthesizer for c in configs if c.trains},
    }
    for kind, tables in spec.component_options.items():
        if kind == "metric":  # checked against --metric in resolve_metrics
            continue
        stray = sorted(set(tables) - names.get(kind, set()))
        if stray:
            raise OptionError(
                f"options for {kind} {', '.join(stray)}: not part of this run's grid "
                f"({', '.join(sorted(names.get(kind, set()))) or 'none'})"
            )
    for kind, chosen in names.items():
        given = spec.options.get(kind, {})
        if not given:
            continue
        declared: set[str] = set()
        for name in chosen:
            declared |= set(registry.get(kind, name).cls.Options.model_fields)
        unknown = sorted(set(given) - declared)
        if unknown and not declared:
            raise OptionError(
                f"unknown option {kind}.{unknown[0]}: {kind} {', '.join(sorted(chosen)) or '-'} "
                f"takes no options; did you mean to pick another {kind} with --{kind}?"
            )
        if unknown:
            which = ", ".join(sorted(chosen)) or "none (only the base row runs)"
            raise OptionError(
                f"unknown option {', '.join(f'{kind}.{k}' for k in unknown)}: no {kind} of this "
                f"run ({which}) declares it (allowed: {', '.join(sorted(declared)) or 'none'})"
            )
