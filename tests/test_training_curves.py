"""Training curves: drawn into plots/, and sent to TensorBoard through transformers' own
``report_to`` integration with the harness's validation metrics beside the loss, read back here
from the event files."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.exports.common import slug

CONFIG = "lora+none+template@s0"


def _harness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("harness")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "harness.cli"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600, check=False
    )


@pytest.mark.slow
def test_tensorboard_events_hold_the_loss_and_validation_metrics(tmp_path: Path) -> None:
    pytest.importorskip(
        "tensorboard", reason="the tensorboard extra is not installed: pip install '.[tensorboard]'"
    )
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    args = ["bench", "--trainer", "lora", "--no-base", "--threads", "1", "--out", str(out)]
    args += ["-o", "trainer.max_steps=8", "-o", "trainer.eval_every=4"]
    args += ["-o", "trainer.report_to=tensorboard", "--eval-batch-size", "40"]
    proc = _harness(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (row,) = json.loads((out / "results.json").read_text())["results"]
    assert row["options"]["trainer"]["report_to"] == "tensorboard"

    logdir = out / "runs" / CONFIG.replace("@", "_").replace("+", "_") / "tensorboard"
    assert list(logdir.glob("events.out.tfevents.*")), f"no event file in {logdir}"
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "eval/macro_f1", "eval/accuracy", "eval/rouge_l"} <= tags, tags

    # the logged loss is the one results.json recorded, step by step
    recorded = [(h["step"], h["loss"]) for h in row["history"] if "loss" in h]
    events = [(e.step, e.value) for e in acc.Scalars("train/loss")]
    assert [s for s, _ in events] == [s for s, _ in recorded] == list(range(1, 9))
    assert [v for _, v in events] == pytest.approx([v for _, v in recorded], rel=1e-5)
    # the harness's validation scores, at the steps it evaluated
    val = [(h["step"], h["val_macro_f1"]) for h in row["history"] if "val_macro_f1" in h]
    got = [(e.step, e.value) for e in acc.Scalars("eval/macro_f1")]
    assert [s for s, _ in got] == [4, 8] == [s for s, _ in val]
    assert [v for _, v in got] == pytest.approx([v for _, v in val], rel=1e-5)

    # and the curve is drawn into plots/
    plot = out / "plots" / f"training-{slug(CONFIG)}.png"
    assert plot.is_file() and plot.stat().st_size > 5000


@pytest.mark.slow
def test_mlflow_file_store_holds_the_loss_and_validation_metrics(tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="the mlflow extra is absent: pip install '.[mlflow]'")
    from mlflow.tracking import MlflowClient

    out = tmp_path / "run"
    args = ["bench", "--trainer", "lora", "--no-base", "--threads", "1", "--out", str(out)]
    args += ["-o", "trainer.max_steps=6", "-o", "trainer.eval_every=3"]
    args += ["-o", "trainer.report_to=mlflow", "--eval-batch-size", "40"]
    proc = _harness(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (row,) = json.loads((out / "results.json").read_text())["results"]
    store = out / "runs" / CONFIG.replace("@", "_").replace("+", "_") / "mlruns"
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=store.resolve().as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "cxr-harness"]
    (run,) = client.search_runs([experiment.experiment_id])
    loss = [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss")]
    recorded = [(h["step"], h["loss"]) for h in row["history"] if "loss" in h]
    assert [s for s, _ in sorted(loss)] == [s for s, _ in recorded] == list(range(1, 7))
    assert [v for _, v in sorted(loss)] == pytest.approx([v for _, v in recorded], rel=1e-5)
    history = client.get_metric_history(run.info.run_id, "eval_macro_f1")
    f1 = sorted((m.step, m.value) for m in history)
    val = [(h["step"], h["val_macro_f1"]) for h in row["history"] if "val_macro_f1" in h]
    assert [s for s, _ in f1] == [3, 6] and [v for _, v in f1] == pytest.approx([v for _, v in val])


def test_a_missing_integration_is_an_exit_2_naming_the_extra_before_any_work(
    tmp_path: Path,
) -> None:
    if importlib.util.find_spec("mlflow") is not None:
        pytest.skip("mlflow is installed here: the missing-package error cannot happen")
    out = tmp_path / "run"
    proc = _harness(
        "bench", "--trainer", "lora", "--out", str(out), "-o", "trainer.report_to=mlflow",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "trainer.report_to=mlflow" in proc.stderr and "cxr-harness[mlflow]" in proc.stderr
    assert not out.exists()  # refused before any work


def test_report_to_is_a_strict_option(tmp_path: Path) -> None:
    proc = _harness("bench", "--dry-run", "-o", "trainer.report_to=wandb", cwd=tmp_path)
    assert proc.returncode == 2 and "report_to" in proc.stderr
