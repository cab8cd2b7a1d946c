"""A run that fails before its first result leaves no --out behind (a folder that existed, such as
a resumed run's, is never removed), and an offline hub id fails before any work with an error
that names HF_HUB_OFFLINE and the local-directory alternative."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _bench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("harness")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "harness.cli"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [*cmd, "bench", "--threads", "1", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
        check=False,
    )


def test_an_offline_hub_id_names_hf_hub_offline_and_a_local_directory(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _bench("--model", "nobody-here/no-such-vl-model", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = " ".join(proc.stderr.split())
    assert "HF_HUB_OFFLINE" in err and "local checkpoint directory" in err, err
    assert "--model ./no-such-vl-model" in err and "Traceback" not in proc.stderr
    assert not out.exists()


def _broken_checkpoint(tmp_path: Path) -> Path:
    model = tmp_path / "broken-model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    return model


def test_a_run_that_fails_before_its_first_result_leaves_no_out(tmp_path: Path) -> None:
    out = tmp_path / "reports" / "run"
    proc = _bench("--model", str(_broken_checkpoint(tmp_path)), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "broken-model" in proc.stderr
    assert not out.exists()  # the same command can simply be run again


def test_a_folder_that_existed_is_never_removed(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    model = str(_broken_checkpoint(tmp_path))
    proc = _bench("--model", model, "--out", str(out), "--resume", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert (out / "notes.txt").read_text() == "mine\n"
