"""The leaderboard's metric table: one record per chosen metric, stored in the provenance of
every run (``results.json`` and the results store), so that every export and `harness report`
format the same columns without importing any metric implementation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_METRICS: tuple[str, ...] = ("macro_f1", "accuracy", "rouge_l", "invalid_rate")
# Metrics the host's encoded predictions compute natively (classification + ROUGE-L); every
# other metric carries per-sample statistics in its row and is combined by its plugin.
NATIVE: frozenset[str] = frozenset(DEFAULT_METRICS)


@dataclass(frozen=True)
class MetricColumn:
    """One leaderboard column: what the metric is and which implementation computed it."""

    name: str
    title: str
    higher_is_better: bool = True
    needs_reference: bool = False
    corpus_level: bool = False
    paired: bool = True  # tested against base (paired bootstrap, corrected across the grid)
    implementation: str = "cxr-harness"
    version: str = ""
    tokenisation: str = ""
    module: str = ""  # where the plugin class lives: combining statistics re-imports only it
    cls: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MetricColumn:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})


# The table of a run recorded before metrics were plugins (its provenance has none).
LEGACY: tuple[MetricColumn, ...] = (
    MetricColumn("macro_f1", "Macro-F1"),
    MetricColumn("accuracy", "Accuracy"),
    MetricColumn("rouge_l", "ROUGE-L", needs_reference=True, implementation="rouge-score"),
    MetricColumn("invalid_rate", "Invalid", higher_is_better=False, paired=False),
)


def metric_table(provenance: Mapping[str, Any]) -> tuple[MetricColumn, ...]:
    """The run's metric table from its provenance (the legacy table where none is recorded)."""
    recorded: Sequence[Mapping[str, Any]] | None = provenance.get("metrics")
    if not recorded:
        return LEGACY
    return tuple(MetricColumn.from_dict(d) for d in recorded)
