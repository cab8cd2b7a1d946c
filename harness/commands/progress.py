"""Progress for long commands: the runner's ProgressSink as Rich bars in a terminal, and as plain
timestamped lines when stdout is a log file or a pipe (``nohup``, a scheduler, ``| cat``).

A plain line is printed when a stage starts, every 5% of it, at least every
``HARNESS_PROGRESS_SECONDS`` seconds (default 30) while it runs, even when no step ends in that
time (a heartbeat thread repeats the stage's state), and when it finishes:

    [12:01:05] [rslora+noise_rotate+template@s0] train: step 40/120 (33%) loss 1.234 eta 1m12s
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

INTERVAL_ENV = "HARNESS_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 30.0
STEP_SHARE = 0.05  # a plain line at least every 5% of a stage


class RichTask:
    def __init__(self, progress: Progress, task_id: int) -> None:
        self.progress, self.task_id = progress, task_id

    def advance(self, n: int = 1) -> None:
        self.progress.advance(self.task_id, n)

    def update(self, completed: int, total: int | None = None, loss: float | None = None) -> None:
        fields = {"loss": f"loss {loss:.3f}"} if loss is not None else {}
        self.progress.update(self.task_id, completed=completed, total=total, **fields)

    def finish(self) -> None:
        task = self.progress.tasks[self.task_id]
        self.progress.update(self.task_id, completed=task.total or task.completed)


class RichProgress:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def start(self, description: str, total: int) -> RichTask:
        task_id = self.progress.add_task(escape(description), total=total, loss="")
        return RichTask(self.progress, task_id)

    def note(self, message: str) -> None:
        self.progress.console.print(f"[dim]{escape(message)}[/dim]")


def progress_columns() -> tuple:
    """The progress bar layout of every long command: training bars also show the loss."""
    return (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )


def fmt_duration(seconds: float) -> str:
    """``1m12s``, ``2h03m``, ``8s``."""
    s = max(0, round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def interval_seconds() -> float:
    """The longest silence between two lines of a stage that advances (seconds)."""
    raw = os.environ.get(INTERVAL_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_INTERVAL
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value > 0 else DEFAULT_INTERVAL


class LineTask:
    """One stage rendered as plain lines; see the module docstring for when a line is printed."""

    def __init__(self, sink: LineProgress, description: str, total: int) -> None:
        self.sink, self.description, self.total = sink, description, max(0, total)
        self.completed, self.loss = 0, None
        self.t0 = self.last_time = time.monotonic()
        self.last_share = 0.0
        self.first: tuple[float, int] | None = None  # (time, completed) of the first update
        self.done = False
        sink.emit(f"{description}: started" + (f" ({self.total} steps)" if self.total > 1 else ""))
        sink.active.append(self)

    def advance(self, n: int = 1) -> None:
        self.update(self.completed + n)

    def update(self, completed: int, total: int | None = None, loss: float | None = None) -> None:
        if total is not None:
            self.total = total
        if loss is not None:
            self.loss = loss
        self.completed = completed
        now = time.monotonic()
        if self.first is None:
            self.first = (now, completed)
        share = completed / self.total if self.total else 0.0
        due = share - self.last_share >= STEP_SHARE - 1e-9
        quiet = now - self.last_time >= self.sink.interval
        if (due or quiet) and completed < self.total:
            self.last_share, self.last_time = share, now
            self.sink.emit(self.line(now))

    def heartbeat(self, now: float) -> None:
        """Called by the sink's thread: repeat the state after ``interval`` s of silence."""
        if not self.done and now - self.last_time >= self.sink.interval:
            self.last_time = now
            self.sink.emit(self.line(now))

    def line(self, now: float) -> str:
        if self.first is None:  # nothing counted yet: e.g. a model still loading
            return f"{self.description}: running for {fmt_duration(now - self.t0)}"
        total = self.total or 1
        text = f"{self.description}: step {self.completed}/{self.total} "
        text += f"({100 * self.completed / total:.0f}%)"
        if self.loss is not None:
            text += f" loss {self.loss:.3f}"
        # the rate since the first update: a stage's set-up (loading a model) is not a step
        t_first, n_first = self.first or (self.t0, 0)
        if self.completed > n_first:
            rate = (now - t_first) / (self.completed - n_first)
            text += f" eta {fmt_duration(rate * (total - self.completed))}"
        return text

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        if self in self.sink.active:
            self.sink.active.remove(self)
        text = f"{self.description}: done in {fmt_duration(time.monotonic() - self.t0)}"
        if self.loss is not None:
            text += f" (last loss {self.loss:.3f})"
        self.sink.emit(text)


class LineProgress:
    """A ProgressSink for logs: timestamped lines, flushed as they are written."""

    def __init__(self, console: Console, interval: float | None = None) -> None:
        self.console = console
        self.interval = interval if interval is not None else interval_seconds()
        self.active: list[LineTask] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def emit(self, text: str) -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        with self._lock:
            self.console.print(f"[{stamp}] {text}", markup=False, highlight=False, soft_wrap=True)
            self.console.file.flush()

    def start_heartbeat(self) -> None:
        """A daemon thread that prints a silent stage's state every ``interval`` seconds."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, name="progress", daemon=True)
            self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(min(1.0, self.interval / 4)):
            for task in list(self.active):
                task.heartbeat(time.monotonic())

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def start(self, description: str, total: int) -> LineTask:
        return LineTask(self, description, total)

    def note(self, message: str) -> None:
        self.emit(message)


@contextmanager
def progress_sink(console: Console) -> Iterator[RichProgress | LineProgress]:
    """Rich bars when ``console`` is a terminal, plain timestamped lines otherwise."""
    if not console.is_terminal:
        sink = LineProgress(console)
        sink.start_heartbeat()
        try:
            yield sink
        finally:
            sink.close()
        return
    with Progress(*progress_columns(), console=console, transient=False) as progress:
        yield RichProgress(progress)
