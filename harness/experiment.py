"""Experiment files: a bench written as TOML, and the fully resolved plan every run writes.

A file holds the grid (``trainers``, ``augmenters``, ``synthesizers``, ``seeds``), the model and
benchmark, the evaluation settings and options, either for every component of a kind
(``[options.trainer]``) or for one component (``[options.trainer.rslora]``, which wins). TOML has
no null: ``_unset = ["max_steps"]`` inside a component's table sets those keys to none.

Every run folder gets ``experiment.toml`` with each component's *effective* options, so
``harness bench --config RUN/experiment.toml --out NEW`` repeats the run exactly.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from harness.core.errors import OptionError

if TYPE_CHECKING:
    from harness.plan import Plan

KINDS = ("trainer", "augmenter", "synthesizer", "metric")
UNSET = "_unset"
# Top-level keys: name in the file -> BenchSpec/ModelSpec field (and the bench CLI parameter).
TOP = {
    "trainers": "trainers",
    "augmenters": "augmenters",
    "synthesizers": "synthesizers",
    "seeds": "seeds",
    "metrics": "metrics",
    "model": "model",
    "revision": "revision",
    "min_pixels": "min_pixels",
    "max_pixels": "max_pixels",
    "benchmark": "benchmark",
    "aug_copies": "aug_copies",
    "balance": "balance",
    "include_base": "include_base",
    # where the configurations run (harness.execution); results do not depend on it
    "executor": "executor",
    "workers": "workers",
    "address": "address",
    "gpus_per_config": "gpus_per_config",
}
EVALUATION = ("scoring", "decoding", "eval_batch_size", "max_new_tokens")


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    """TOML-ready: None values move into ``_unset``."""
    out = {k: v for k, v in values.items() if v is not None}
    unset = sorted(k for k, v in values.items() if v is None)
    if unset:
        out[UNSET] = unset
    return out


def experiment_toml(plan: Plan) -> str:
    """The fully resolved plan as an experiment file (effective options per component)."""
    spec = plan.spec
    doc: dict[str, Any] = {
        "trainers": list(dict.fromkeys(p.config.trainer for p in plan.configs)),
        "augmenters": list(spec.augmenters),
        "synthesizers": list(spec.synthesizers),
        "seeds": list(spec.seeds),
        "metrics": list(spec.metrics),
        "include_base": any(p.config.trainer == "base" for p in plan.configs),
        "model": spec.model.model,
        "benchmark": spec.benchmark,
        "aug_copies": spec.aug_copies,
    }
    lo, hi = spec.model.pixels
    doc.update(min_pixels=lo, max_pixels=hi)
    if spec.model.revision:
        doc["revision"] = spec.model.revision
    if spec.balance is not None:
        doc["balance"] = spec.balance
    doc["executor"] = spec.executor
    for key in ("workers", "address", "gpus_per_config"):
        if getattr(spec, key) is not None:
            doc[key] = getattr(spec, key)
    gen = plan.generation
    doc["evaluation"] = {
        "scoring": gen.scoring,
        "decoding": gen.decoding,
        "eval_batch_size": gen.batch_size,
        "max_new_tokens": gen.max_new_tokens,
    }
    options: dict[str, dict[str, Any]] = {}
    for planned in plan.configs:
        names = planned.names()
        for kind, values in planned.options().items():
            if kind == "trainer":
                values = {k: v for k, v in values.items() if k != "seed"}  # from `seeds`
            options.setdefault(kind, {})[names[kind]] = _clean(values)
    doc["options"] = options
    header = (
        "# cxr-harness experiment: the fully resolved plan of this run.\n"
        "# Repeat it with: harness bench --config experiment.toml --out NEW_DIR\n"
    )
    return header + tomli_w.dumps(doc)


def load_experiment(path: Path) -> dict[str, Any]:
    """Read an experiment file into bench settings; unknown keys are errors naming the file.

    Returns ``{field: value}`` for the top-level and evaluation keys, plus ``options``
    (``{kind: {key: value}}``) and ``component_options`` (``{kind: {name: {key: value}}}``).
    """
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise OptionError(f"--config {path}: cannot read it ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise OptionError(f"--config {path}: not valid TOML ({exc})") from exc
    out: dict[str, Any] = {}
    evaluation = doc.pop("evaluation", {}) or {}
    options = doc.pop("options", {}) or {}
    unknown = sorted(set(doc) - set(TOP)) + sorted(
        f"evaluation.{k}" for k in set(evaluation) - set(EVALUATION)
    )
    unknown += sorted(f"options.{k}" for k in set(options) - set(KINDS))
    if unknown:
        allowed = ", ".join([*TOP, *(f"evaluation.{k}" for k in EVALUATION), "options.KIND"])
        raise OptionError(f"--config {path}: unknown key(s) {', '.join(unknown)} ({allowed})")
    for key, value in doc.items():
        if key in ("trainers", "augmenters", "synthesizers", "seeds", "metrics") and not isinstance(
            value, list
        ):
            value = [value]
        out[TOP[key]] = tuple(value) if isinstance(value, list) else value
    out.update(evaluation)
    per_kind: dict[str, dict[str, Any]] = {}
    per_component: dict[str, dict[str, dict[str, Any]]] = {}
    for kind, table in options.items():
        for key, value in table.items():
            if isinstance(value, dict):  # [options.KIND.NAME]: one component's options
                values = {k: v for k, v in value.items() if k != UNSET}
                values.update(dict.fromkeys(value.get(UNSET, []), None))
                per_component.setdefault(kind, {})[key] = values
            else:
                per_kind.setdefault(kind, {})[key] = value
    out["options"] = per_kind
    out["component_options"] = per_component
    return out
