"""One view of every worker: configurations done, running and failed, and each worker's stage."""

from __future__ import annotations

from harness.execution.jobs import WorkerEvent


class GridView:
    def __init__(self, total: int) -> None:
        self.total, self.done, self.failed = total, 0, 0
        self.stages: dict[str, str] = {}

    def event(self, event: WorkerEvent) -> str:
        self.stages[event.worker] = f"[{event.config_id}] {event.stage}"
        return self.line()

    def finished(self, worker: str, ok: bool) -> str:
        if ok:
            self.done += 1
        else:
            self.failed += 1
        self.stages[worker] = "idle"
        return self.line()

    def line(self) -> str:
        running = sum(1 for s in self.stages.values() if s != "idle")
        head = f"grid {self.done}/{self.total} done, {running} running, {self.failed} failed"
        workers = "; ".join(f"{w} {s}" for w, s in sorted(self.stages.items()))
        return f"{head} | {workers}" if workers else head
