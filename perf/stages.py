"""Wall time of each stage of the README demo (`harness bench --trainer rslora --augmenter
noise_rotate`). A measurement script, not a test: it prints a table.

    python perf/stages.py [--seed 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table


class TimedTask:
    def __init__(self, log: list, name: str) -> None:
        self.log, self.name, self.t0, self.done = log, name, time.perf_counter(), False

    def advance(self, n: int = 1) -> None:
        pass

    def update(self, completed: int, total: int | None = None) -> None:
        pass

    def finish(self) -> None:
        if not self.done:
            self.log.append((self.name, time.perf_counter() - self.t0))
            self.done = True


class TimedProgress:
    def __init__(self) -> None:
        self.log: list[tuple[str, float]] = []
        self.notes: list[str] = []

    def start(self, description: str, total: int) -> TimedTask:
        return TimedTask(self.log, description)

    def note(self, message: str) -> None:
        self.notes.append(message)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    from harness.plugins import make_registry
    from harness.runner import run_bench
    from harness.spec import BenchSpec

    t_import = time.perf_counter() - t_start
    spec = BenchSpec(
        trainers=("rslora",),
        augmenters=("noise_rotate",),
        seeds=(args.seed,),
        out=Path(tempfile.mkdtemp(prefix="perf-stages-")),
    )
    timer = TimedProgress()
    t0 = time.perf_counter()
    result = run_bench(spec, make_registry(), timer)
    total = time.perf_counter() - t0
    table = Table(title=f"demo stages (torch threads={args.threads}, seed={args.seed})")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    table.add_row("imports", f"{t_import:.1f}")
    accounted = 0.0
    for name, secs in timer.log:
        table.add_row(name, f"{secs:.1f}")
        accounted += secs
    table.add_row("other (benchmark generation, outputs)", f"{total - accounted:.1f}")
    table.add_row("[bold]total[/bold]", f"[bold]{total + t_import:.1f}[/bold]")
    console = Console()
    console.print(table)
    for row in result.rows:
        m = row["metrics"]
        console.print(
            f"{row['config_id']}: macro_f1={m['macro_f1']:.3f} accuracy={m['accuracy']:.3f} "
            f"rouge_l={m['rouge_l']:.3f} invalid={m['invalid_rate']:.3f}"
        )


if __name__ == "__main__":
    main()
