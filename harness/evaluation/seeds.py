"""Seed aggregation: mean ± sample standard deviation of each metric across a recipe's seeds.

A recipe is a configuration id without its ``@s<seed>`` suffix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

HEADLINE: tuple[str, ...] = ("macro_f1", "accuracy", "rouge_l")
_SEED_SUFFIX = re.compile(r"@s-?\d+$")


@dataclass(frozen=True)
class SeedSummary:
    mean: float
    sd: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def seed_summary(values: Sequence[float]) -> SeedSummary:
    """Mean and sample standard deviation (ddof=1; 0 for a single seed)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no values to summarise")
    sd = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return SeedSummary(float(arr.mean()), sd, int(arr.size))


def recipe_id(config_id: str) -> str:
    """The configuration id without its ``@s<seed>`` suffix."""
    return _SEED_SUFFIX.sub("", config_id)


def aggregate_seeds(
    rows: Sequence[Mapping[str, Any]], metrics: Iterable[str] = (*HEADLINE, "invalid_rate")
) -> dict[str, dict[str, SeedSummary]]:
    """Group rows by recipe (config id minus seed); mean ± sd of each metric across seeds."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(recipe_id(r["config_id"]), []).append(r)
    metrics = tuple(metrics)
    return {
        rid: {
            m: seed_summary([r["metrics"][m] for r in grp])
            for m in metrics
            if all(m in r["metrics"] for r in grp)
        }
        for rid, grp in groups.items()
    }
