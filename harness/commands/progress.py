"""Rich progress for long commands: the runner's ProgressSink rendered as bars."""

from __future__ import annotations

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class RichTask:
    def __init__(self, progress: Progress, task_id: int) -> None:
        self.progress, self.task_id = progress, task_id

    def advance(self, n: int = 1) -> None:
        self.progress.advance(self.task_id, n)

    def update(self, completed: int, total: int | None = None) -> None:
        self.progress.update(self.task_id, completed=completed, total=total)

    def finish(self) -> None:
        task = self.progress.tasks[self.task_id]
        self.progress.update(self.task_id, completed=task.total or task.completed)


class RichProgress:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def start(self, description: str, total: int) -> RichTask:
        return RichTask(self.progress, self.progress.add_task(escape(description), total=total))

    def note(self, message: str) -> None:
        self.progress.console.print(f"[dim]{escape(message)}[/dim]")


def progress_columns() -> tuple:
    """The progress bar layout of every long command."""
    return (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
