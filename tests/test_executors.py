"""The grid executors: `local` worker processes and `ray` tasks give the serial run's metrics
and predictions; a worker killed mid-configuration fails only that configuration and
`--resume` completes the grid; `--executor ray` without Ray is an exit-2 error naming the extra.

Runs are tiny (2x2 grid, 2 training steps, 2 CPU workers): only equality counts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.execution.jobs import shard_bounds
from harness.plugins import make_registry
from harness.results.events import read_events
from harness.results.store import ResultsStore
from harness.runner import run_bench
from harness.spec import BenchSpec

GRID = ["--trainer", "lora", "--trainer", "rslora", "--seeds", "1,2", "--no-base"]
STEPS = "2"


def _cmd(out: Path, *args: str) -> list[str]:
    exe = Path(sys.executable).with_name("harness")
    head = [str(exe)] if exe.exists() else [sys.executable, "-m", "harness.cli"]
    return [*head, "bench", *GRID, "-o", f"trainer.max_steps={STEPS}", "--out", str(out), *args]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "250"}


def _run(cmd: list[str], expect: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=900)
    assert proc.returncode == expect, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _outcome(out: Path) -> list[tuple[str, Any, list[tuple[str, str]]]]:
    """Per configuration, in results.json order: its metrics and every (image, answer)."""
    doc = json.loads((out / "results.json").read_text())
    answers: dict[str, list[tuple[str, str]]] = {}
    for line in (out / "predictions.jsonl").read_text().splitlines():
        p = json.loads(line)
        answers.setdefault(p["config_id"], []).append((p["id"], p["answer"]))
    return [(r["config_id"], r["metrics"], answers[r["config_id"]]) for r in doc["results"]]


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> list:
    out = tmp_path_factory.mktemp("serial") / "run"
    _run(_cmd(out, "--threads", "1"))
    got = _outcome(out)
    assert len(got) == 4
    return got


@pytest.mark.slow
def test_local_workers_match_serial(serial: list, tmp_path: Path) -> None:
    out = tmp_path / "local"
    proc = _run(_cmd(out, "--executor", "local", "--workers", "2"))
    assert _outcome(out) == serial
    assert "grid 4/4 done, 0 running, 0 failed" in proc.stdout + proc.stderr
    workers = {e["worker"] for e in read_events(out) if e["event"] == "config_finished"}
    assert workers == {"w0", "w1"}  # both workers ran configurations


@pytest.mark.slow
def test_ray_tasks_match_serial_and_get_one_gpu_each(serial: list, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")  # the dev extra installs it: CI runs this
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    try:
        spec = BenchSpec(
            trainers=("lora", "rslora"),
            seeds=(1, 2),
            include_base=False,
            options={"trainer": {"max_steps": int(STEPS)}},
            out=tmp_path / "ray",
            executor="ray",
            gpus_per_config=1,
        )
        run_bench(spec, make_registry())
    finally:
        ray.shutdown()
    assert _outcome(tmp_path / "ray") == serial
    finished = [e for e in read_events(tmp_path / "ray") if e["event"] == "config_finished"]
    assert len(finished) == 4
    # each task was granted exactly one of the two declared GPUs
    assert all(len(e["gpus"]) == 1 and e["gpus"][0] in {"0", "1"} for e in finished)


def _wait_for_training(out: Path, timeout: float = 600) -> tuple[str, int]:
    """(configuration, worker pid) of a worker that is training a configuration it has not
    finished, once some other configuration has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (out / "events.jsonl").is_file():
            events = read_events(out)
            pids = {e["worker"]: e["pid"] for e in events if e.get("stage") == "start"}
            finished = {e["config"] for e in events if e["event"] == "config_finished"}
            current = {e["worker"]: e["config"] for e in events if e.get("stage") == "start"}
            training = {
                (e["worker"], e["config"])
                for e in events
                if e["event"] == "worker_stage" and e["stage"] == "train"
            }
            for worker, config in current.items():
                if finished and config not in finished and (worker, config) in training:
                    return config, pids[worker]
        time.sleep(0.2)
    raise AssertionError("no worker started training a second configuration")


@pytest.mark.slow
def test_killed_worker_fails_only_its_configuration_and_resume_completes(
    serial: list, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        _cmd(out, "--executor", "local", "--workers", "2"),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        config, pid = _wait_for_training(out)
        os.kill(pid, signal.SIGKILL)
        log, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, log[-3000:]
    assert f"configurations failed ({config})" in " ".join(log.split())  # unwrapped
    failed = [e for e in read_events(out) if e["event"] == "config_failed"]
    assert [e["config"] for e in failed] == [config]
    assert "exited with code -9" in failed[0]["error"]
    with ResultsStore.open(out, create=False) as store:
        saved = {r["config_id"] for r in store.load_rows(with_predictions=False)}
    assert saved == {c for c, _, _ in serial} - {config}  # the others all finished
    resumed = _run(_cmd(out, "--resume", "--executor", "local", "--workers", "2"))
    assert resumed.stdout.count("finished earlier: skipped (--resume)") == 3
    assert _outcome(out) == serial


def test_ray_executor_without_ray_is_an_exit_2_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an environment without Ray imports
    result = CliRunner().invoke(main, ["bench", "--executor", "ray", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert "cxr-harness[ray]" in result.output
    assert not (tmp_path / "r").exists()


def test_workers_belongs_to_the_local_executor(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "--workers", "2", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert "--workers" in result.output and "local" in result.output


def test_dry_run_and_experiment_file_show_the_executor(tmp_path: Path) -> None:
    config = tmp_path / "exp.toml"
    config.write_text('executor = "local"\nworkers = 2\n', encoding="utf-8")
    result = CliRunner().invoke(
        main, ["bench", "--config", str(config), "--dry-run", "--out", str(tmp_path / "r")]
    )
    assert result.exit_code == 0, result.output
    assert "Executor: local (workers: 2)" in result.output


def test_shard_bounds_cover_the_split_in_order() -> None:
    for n, parts in [(160, 2), (160, 3), (5, 8), (1, 1), (7, 7)]:
        bounds = shard_bounds(n, parts)
        assert [i for a, b in bounds for i in range(a, b)] == list(range(n))
        sizes = [b - a for a, b in bounds]
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


@pytest.mark.slow
def test_data_parallel_evaluation_equals_one_worker(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("harness")
    head = [str(exe)] if exe.exists() else [sys.executable, "-m", "harness.cli"]
    _run([*head, "eval", "--out", str(tmp_path / "one"), "--threads", "1"])
    proc = _run(
        [*head, "eval", "--out", str(tmp_path / "three"), "--executor", "local", "--workers", "3"]
    )
    stages = [e for e in read_events(tmp_path / "three") if e["event"] == "worker_stage"]
    slices = sorted({e["stage"] for e in stages if e["stage"].startswith("evaluate ")})
    assert slices == ["evaluate 0:54", "evaluate 107:160", "evaluate 54:107"], proc.stdout
    assert _outcome(tmp_path / "three") == _outcome(tmp_path / "one")
