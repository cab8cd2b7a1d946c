"""Run specifications: what a bench compares, and the configurations it expands into."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.benchmarks import DEFAULT_BENCHMARK
from harness.core.errors import OptionError
from harness.model.loading import ModelSpec
from harness.results.columns import DEFAULT_METRICS

KIND_PREFIXES = ("trainer", "augmenter", "synthesizer")


def parse_option_args(items: list[str]) -> dict[str, dict[str, Any]]:
    """Parse ``-o kind.key=value`` strings into ``{kind: {key: value}}``.

    Values are parsed as JSON when possible (numbers, booleans, lists), else kept as strings;
    the component's strict Options model then validates and coerces them.
    """
    import json

    out: dict[str, dict[str, Any]] = {k: {} for k in KIND_PREFIXES}
    for item in items:
        key, sep, raw = item.partition("=")
        kind, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise OptionError(f"-o {item!r}: expected KIND.KEY=VALUE, e.g. -o trainer.r=32")
        if kind not in out:
            raise OptionError(
                f"-o {item!r}: unknown kind {kind!r} (expected one of {', '.join(KIND_PREFIXES)})"
            )
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        out[kind][name] = value
    return out


@dataclass(frozen=True)
class Configuration:
    """One independent unit of work: its output is one results row."""

    trainer: str
    augmenter: str
    synthesizer: str
    seed: int
    trains: bool = True  # False: the trainer only loads a model (base, adapter)

    @property
    def id(self) -> str:
        if not self.trains:
            return self.trainer
        return f"{self.trainer}+{self.augmenter}+{self.synthesizer}@s{self.seed}"


@dataclass(frozen=True)
class BenchSpec:
    trainers: tuple[str, ...] = ("rslora",)
    augmenters: tuple[str, ...] = ("none",)
    synthesizers: tuple[str, ...] = ("template",)
    seeds: tuple[int, ...] = (0,)
    # leaderboard columns: metric plugin names (harness.results.columns.DEFAULT_METRICS)
    metrics: tuple[str, ...] = DEFAULT_METRICS
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # {kind: {component name: {key: value}}}: options of one component (experiment files)
    component_options: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    model: ModelSpec = field(default_factory=ModelSpec)
    benchmark: str = DEFAULT_BENCHMARK
    out: Path | None = None
    eval_batch_size: int | None = None
    max_new_tokens: int | None = None
    aug_copies: int = 1
    include_base: bool = True
    resume: bool = False
    balance: str | None = None  # "max", "median" or a per-class count; replaces aug_copies
    scoring: str = "generate"  # generate | likelihood | both (harness.evaluation.generate)
    decoding: str = "auto"  # auto | plain | static | compiled (harness.model.gpu_eval)
    # where configurations run (harness.execution): serial | local | ray
    executor: str = "serial"
    workers: int | None = None  # local: worker processes (default: one per visible GPU, else 1)
    address: str | None = None  # ray: an existing cluster's address (default: start one here)
    gpus_per_config: float | None = None  # ray: GPUs per configuration (default 1 on GPU, else 0)

    def configurations(self, fixed: frozenset[str] = frozenset({"base"})) -> list[Configuration]:
        """Base once, then each other trainer that does not train (``fixed``, e.g. ``adapter``)
        once, then the cross product of everything else."""
        configs: list[Configuration] = []
        if self.include_base or "base" in self.trainers:
            configs.append(Configuration("base", "none", "none", self.seeds[0], trains=False))
        for t in dict.fromkeys(self.trainers):
            if t in fixed and t != "base":
                configs.append(Configuration(t, "none", "none", self.seeds[0], trains=False))
        trained = [t for t in self.trainers if t not in fixed]
        for t, a, s, seed in itertools.product(
            trained, self.augmenters, self.synthesizers, self.seeds
        ):
            configs.append(Configuration(t, a, s, seed))
        return configs
