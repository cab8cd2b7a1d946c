"""A run killed without warning still says where it stopped (events.jsonl)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.results.events import EventLog, read_events, where_stopped


def test_where_stopped_names_the_open_stage_and_ignores_a_torn_line(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl")
    log.record("run_started", configurations=["base"])
    log.record("stage_started", stage="[base] load model", total=1)
    log.record("stage_finished", stage="[base] load model", seconds=1.0)
    log.record("stage_started", stage="[lora+none+template@s0] train", total=5)
    with (tmp_path / "events.jsonl").open("a") as fh:
        fh.write('{"t": "2026-')  # killed mid-write
    assert len(read_events(tmp_path)) == 4
    assert "stopped during '[lora+none+template@s0] train'" in where_stopped(tmp_path)
    log.record("run_finished")
    assert where_stopped(tmp_path) is None


@pytest.mark.slow
def test_sigkilled_run_reports_its_stage_and_resume_says_where_it_stopped(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [sys.executable, "-m", "harness.cli", "bench", "--trainer", "lora", "--threads", "1"]
    args += ["-o", "trainer.max_steps=40", "--eval-batch-size", "40", "--out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    events = out / "events.jsonl"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if events.is_file() and 'lora+none+template@s0] train"' in events.read_text():
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before its training stage could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert "stopped during '[lora+none+template@s0] train'" in where_stopped(out)
    report = subprocess.run(
        [sys.executable, "-m", "harness.cli", "report", str(out), "--no-plots"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0, report.stderr
    assert "unfinished run" in report.stdout and "--resume" in report.stdout
    resumed = subprocess.run(
        [*args, "--resume"], env=env, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming: the run started" in " ".join(resumed.stdout.split())
    assert where_stopped(out) is None
    kinds = [e["event"] for e in map(json.loads, events.read_text().splitlines())]
    assert kinds.count("run_started") == 2 and kinds[-1] == "run_finished"
