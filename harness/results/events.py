"""An append-only event log per run folder (``events.jsonl``): which stage started and finished
when, written as the run goes, so a run killed without warning still says where it stopped."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EVENTS = "events.jsonl"


@dataclass
class EventLog:
    """Appends one JSON object per line and flushes it to disk at once."""

    path: Path

    def record(self, event: str, **fields: Any) -> None:
        line = {"t": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event, **fields}
        torn = (
            self.path.is_file() and self.path.stat().st_size > 0 and not _ends_in_newline(self.path)
        )
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(("\n" if torn else "") + json.dumps(line, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _ends_in_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


class _LoggedTask:
    def __init__(self, inner: Any, log: EventLog, stage: str) -> None:
        self.inner, self.log, self.stage, self.t0 = inner, log, stage, time.perf_counter()

    def advance(self, n: int = 1) -> None:
        self.inner.advance(n)

    def update(self, completed: int, total: int | None = None, loss: float | None = None) -> None:
        self.inner.update(completed, total, loss)

    def finish(self) -> None:
        self.inner.finish()
        seconds = round(time.perf_counter() - self.t0, 2)
        self.log.record("stage_finished", stage=self.stage, seconds=seconds)


class LoggedProgress:
    """A ProgressSink that also writes every stage's start and end to an :class:`EventLog`."""

    def __init__(self, inner: Any, log: EventLog) -> None:
        self.inner, self.log = inner, log

    def start(self, description: str, total: int) -> _LoggedTask:
        self.log.record("stage_started", stage=description, total=total)
        return _LoggedTask(self.inner.start(description, total), self.log, description)

    def note(self, message: str) -> None:
        self.log.record("note", message=message)
        self.inner.note(message)


def read_events(folder: Path) -> list[dict[str, Any]]:
    """The events of a run folder; a torn last line (a kill mid-write) is ignored."""
    path = Path(folder) / EVENTS
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def where_stopped(folder: Path) -> str | None:
    """Where the last attempt of a run stopped, or None if it finished (or left no log)."""
    events = read_events(folder)
    starts = [i for i, e in enumerate(events) if e["event"] == "run_started"]
    if not starts:
        return None
    last = events[starts[-1] :]
    if any(e["event"] == "run_finished" for e in last):
        return None
    open_stages: dict[str, dict[str, Any]] = {}
    for e in last:
        if e["event"] == "stage_started":
            open_stages[e["stage"]] = e
        elif e["event"] == "stage_finished":
            open_stages.pop(e["stage"], None)
    if open_stages:
        stage = list(open_stages.values())[-1]
        begun = last[0]["t"]
        return f"the run started {begun} stopped during {stage['stage']!r} (started {stage['t']})"
    done = [e for e in last if e["event"] == "stage_finished"]
    after = (
        f"after {done[-1]['stage']!r} finished at {done[-1]['t']}" if done else "before any stage"
    )
    return f"the run started {last[0]['t']} stopped {after}"
