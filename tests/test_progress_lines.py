"""Progress when stdout is not a terminal: plain timestamped lines while the run goes, with the
training loss and an ETA, instead of every bar at once when the run ends."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from harness.commands.progress import LineProgress, fmt_duration, interval_seconds

TRAIN_LINE = re.compile(
    r"^\[\d\d:\d\d:\d\d\] \[rslora\+none\+template@s0\] train: step (\d+)/(\d+) \((\d+)%\) "
    r"loss (\d+\.\d{3}) eta \S+$"
)


def _sink(interval: float = 30.0) -> tuple[LineProgress, io.StringIO]:
    buf = io.StringIO()
    return LineProgress(Console(file=buf, width=80), interval=interval), buf


def test_a_line_every_five_percent_with_loss_and_eta() -> None:
    sink, buf = _sink()
    task = sink.start("[lora+none+template@s0] train", 100)
    for step in range(1, 101):
        task.update(step, 100, loss=10.0 / step)
    task.finish()
    lines = buf.getvalue().splitlines()
    steps = [int(m.group(1)) for m in map(re.compile(r".*step (\d+)/100").match, lines) if m]
    assert steps == list(range(5, 100, 5))  # every 5%, never the finished step twice
    assert "step 20/100 (20%) loss 0.500 eta 0s" in lines[steps.index(20) + 1]
    assert lines[-1].endswith("train: done in 0s (last loss 0.100)")
    assert all(len(line) <= 80 for line in lines)  # soft-wrapped at no column


def test_a_slow_stage_prints_after_the_interval_even_below_five_percent() -> None:
    sink, buf = _sink(interval=0.05)
    task = sink.start("evaluate", 1000)
    task.update(1)
    time.sleep(0.06)
    task.update(2)  # 0.2%: printed only because the interval has passed
    assert "step 2/1000 (0%)" in buf.getvalue()
    task.update(3)  # straight after: silent
    assert "step 3/1000" not in buf.getvalue()


def test_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_PROGRESS_SECONDS", "2.5")
    assert interval_seconds() == 2.5
    monkeypatch.setenv("HARNESS_PROGRESS_SECONDS", "soon")
    assert interval_seconds() == 30.0
    assert [fmt_duration(s) for s in (8, 72, 7380)] == ["8s", "1m12s", "2h03m"]


@pytest.mark.slow
def test_piped_bench_prints_training_progress_with_loss_before_it_ends(tmp_path: Path) -> None:
    """stdout is a pipe: lines with step, loss and ETA arrive while the run is still going."""
    exe = Path(sys.executable).with_name("harness")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "harness.cli"]
    cmd += ["bench", "--trainer", "rslora", "--no-base", "-o", "trainer.max_steps=40"]
    cmd += ["--threads", "1", "--out", str(tmp_path / "run")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HARNESS_PROGRESS_SECONDS": "1"}
    env.pop("COLUMNS", None)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path
    )
    seen: list[tuple[float, str, bool]] = []  # (arrival, line, process still running)
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append((time.monotonic(), line.rstrip("\n"), proc.poll() is None))
    assert proc.wait(timeout=600) == 0, "\n".join(s[1] for s in seen[-30:])
    train = [(t, m, running) for t, line, running in seen if (m := TRAIN_LINE.match(line))]
    assert len(train) >= 10, "\n".join(s[1] for s in seen)
    steps = [int(m.group(1)) for _, m, _ in train]
    assert steps == sorted(steps) and steps[-1] < 40 and {m.group(2) for _, m, _ in train} == {"40"}
    assert all(running for _, _, running in train)  # printed during the run, not at its end
    ends = [t for t, line, _ in seen if "Reports in" in line]
    assert ends and train[-1][0] < ends[0] and train[-1][0] - train[0][0] > 1.0
    losses = [float(m.group(4)) for _, m, _ in train]
    assert losses[-1] < losses[0]  # the real training loss, falling


def test_the_terminal_training_bar_shows_loss_and_eta() -> None:
    from rich.progress import Progress

    from harness.commands.progress import RichProgress, progress_columns

    buf = io.StringIO()
    console = Console(file=buf, width=120, force_terminal=True, color_system=None)
    with Progress(*progress_columns(), console=console, auto_refresh=False) as bar:
        task = RichProgress(bar).start("[lora+none+template@s0] train", 100)
        task.update(40, 100, loss=1.2345)
        bar.refresh()
    text = buf.getvalue()
    assert "40/100" in text and "loss 1.234" in text and "eta" in text


def test_a_stage_with_no_step_still_prints_every_interval() -> None:
    """A model that loads for minutes, or one very slow step: the heartbeat keeps the log alive."""
    sink, buf = _sink(interval=0.2)
    sink.start_heartbeat()
    try:
        task = sink.start("[base] load model", 1)
        time.sleep(0.75)
        task.finish()
        time.sleep(0.3)
    finally:
        sink.close()
    lines = buf.getvalue().splitlines()
    beats = [line for line in lines if "load model: running for" in line]
    assert 2 <= len(beats) <= 4, lines
    assert "load model: done in" in lines[-1]  # nothing after the stage finished
