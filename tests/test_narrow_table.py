"""The terminal leaderboard at 80 columns: configuration names are never cut (two stacked
tables, CIs wrapped under their values), and base shows no training time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_exports import make_bench

from harness.results.store import ResultsStore

LONG = ["rslora+noise_rotate+template@s1", "rslora+noise_rotate+template@s2"]


def _stored(directory: Path) -> Path:
    rows, prov, baselines = make_bench()
    for row, name in zip(rows[1:], LONG, strict=True):
        row["config_id"] = name
    with ResultsStore.open(directory) as store:
        run = store.save_run(prov, baselines)
        for r in rows:
            store.save_config_result(r, run)
    return directory


def _report(run: Path, columns: int) -> list[str]:
    exe = Path(sys.executable).with_name("harness")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "harness.cli"]
    cmd += ["report", str(run), "--out", str(run / "rendered"), "--no-plots"]
    cmd += ["--resamples", "200"]
    env = {**os.environ, "COLUMNS": str(columns)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout.splitlines()


@pytest.mark.parametrize("columns", [80, 100])
def test_configuration_names_stay_whole_in_a_narrow_terminal(tmp_path: Path, columns: int) -> None:
    lines = _report(_stored(tmp_path / "run"), columns)
    assert all(len(line) <= columns for line in lines), max(lines, key=len)
    for name in LONG:  # whole, on one line, in the metrics and the comparison table
        assert sum(name in line for line in lines) == 2, "\n".join(lines)
    table = [line for line in lines if "…" in line]
    assert not table, table
    base = [line.split() for line in lines if line.split()[:1] == ["base"]]
    assert len(base) == 2 and base[1][-1] == "–"  # no training time for base


def test_a_wide_terminal_keeps_one_table(tmp_path: Path) -> None:
    lines = _report(_stored(tmp_path / "run"), 200)
    assert sum(LONG[0] in line for line in lines) == 1
    assert any("ΔF1 vs base" in line and "Macro-F1" in line for line in lines)


def test_base_shows_no_training_time_in_the_markdown(tmp_path: Path) -> None:
    from harness.exports import write_all

    rows, prov, baselines = make_bench()
    rows[0]["train_seconds"] = 7.4  # a store written before: model loading counted as training
    write_all(tmp_path, rows, prov, baselines, n_resamples=200, plots=False)
    table = (tmp_path / "leaderboard.md").read_text().splitlines()
    base = next(line for line in table if line.startswith("| base |"))
    trained = next(line for line in table if line.startswith("| rslora+none+template@s1 |"))
    assert base.endswith("| – |") and trained.endswith("| 30.0 |")
