"""The records that travel between the driver and its workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EXECUTORS = ("serial", "local", "ray")


@dataclass(frozen=True)
class ConfigJob:
    """One configuration to run: its position in the plan and its resume key."""

    index: int
    config_id: str
    key: str


@dataclass(frozen=True)
class CacheEntry:
    """Predictions a worker computed, for the driver to put into the store's cache."""

    key: str
    answers: list[str]
    sample_ids: list[str]


@dataclass(frozen=True)
class ConfigOutcome:
    """What a worker returns: the result row (as the store saves it) or the error."""

    job: ConfigJob
    row: dict[str, Any] | None = None
    error: str | None = None
    worker: str = "driver"
    gpus: tuple[str, ...] = ()
    cache: tuple[CacheEntry, ...] = ()  # one per scoring (two for scoring "both")

    @property
    def ok(self) -> bool:
        return self.row is not None


@dataclass(frozen=True)
class WorkerEvent:
    """A worker started a stage of a configuration (the driver aggregates these)."""

    worker: str
    config_id: str
    stage: str
    total: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ShardJob:
    """One contiguous slice ``test[start:stop]`` of a configuration's evaluation."""

    index: int
    config_id: str
    start: int
    stop: int


@dataclass(frozen=True)
class ShardOutcome:
    """A slice's answers and the prediction cache key of the model that gave them."""

    job: ShardJob
    cache_key: str = ""
    answers: list[str] = field(default_factory=list)
    error: str | None = None
    worker: str = "driver"

    @property
    def ok(self) -> bool:
        return self.error is None


def shard_bounds(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous ``(start, stop)`` slices of ``range(n)``, sizes differing by <= 1."""
    parts = max(1, min(parts, n))
    size, extra = divmod(n, parts)
    bounds, start = [], 0
    for i in range(parts):
        stop = start + size + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds
