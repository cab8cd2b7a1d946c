"""End to end through the real `harness bench` CLI in subprocesses: resume after SIGKILL,
seed determinism, every export of a multi-configuration multi-seed run, `harness report` and
`harness compare` on what a real run stored.

Runs are kept tiny (a few training steps): the metrics are meaningless, only equality counts.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from harness.exports.common import slug
from harness.model.adapters import CARD
from harness.results.store import STORE_NAME, ResultsStore

STEPS = "8"
FIRST, SECOND = "lora+none+template@s3", "rslora+none+template@s3"
TWO_TRAINERS = ["--trainer", "lora", "--trainer", "rslora", "--no-base", "--seed", "3"]
METRICS = {"macro_f1", "accuracy", "rouge_l", "invalid_rate"}


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "250"}


def _harness_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("harness")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "harness.cli"]


def _bench_cmd(out: Path, *args: str, steps: str = STEPS) -> list[str]:
    return [
        *_harness_cmd(),
        "bench",
        *args,
        "-o",
        f"trainer.max_steps={steps}",
        "--out",
        str(out),
        "--threads",
        "1",
    ]


def _run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=_env(), cwd=cwd, timeout=timeout, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _results(out: Path) -> dict[str, dict[str, Any]]:
    doc = json.loads((out / "results.json").read_text())
    by_id = {r["config_id"]: r for r in doc["results"]}
    assert len(by_id) == len(doc["results"]), "a configuration appears twice"
    return by_id


def _answers(out: Path) -> dict[str, list[tuple[str, str]]]:
    got: dict[str, list[tuple[str, str]]] = {}
    for line in (out / "predictions.jsonl").read_text().splitlines():
        p = json.loads(line)
        got.setdefault(p["config_id"], []).append((p["id"], p["answer"]))
    return got


def _losses(row: dict[str, Any]) -> list[tuple[int, float]]:
    return [(h["step"], h["loss"]) for h in row["history"] if "loss" in h]


def _stored(out: Path) -> dict[str, tuple[int, str, str]]:
    """config_id -> (position, finished timestamp, row JSON) straight from the SQLite file."""
    conn = sqlite3.connect(f"file:{out / STORE_NAME}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT config_id, position, finished, row FROM configs").fetchall()
    finally:
        conn.close()
    by_id = {cid: (pos, fin, row) for cid, pos, fin, row in rows}
    assert len(by_id) == len(rows), "one row per configuration"
    return by_id


def _assert_same_result(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["metrics"] == b["metrics"]
    assert a["adapter_hash"] and a["adapter_hash"] == b["adapter_hash"]
    assert _losses(a) == _losses(b)
    assert a["prediction_cache_key"] == b["prediction_cache_key"]
    assert a["config_key"] == b["config_key"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cwd")  # subprocesses write nothing into the repo


@pytest.fixture(scope="module")
def reference(tmp_path_factory, workdir) -> Path:
    """An uninterrupted run of two configurations, seed 3."""
    out = tmp_path_factory.mktemp("reference")
    _run(_bench_cmd(out, *TWO_TRAINERS), workdir)
    return out


def _wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"bench exited ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _finished(out: Path) -> list[str]:
    if not (out / STORE_NAME).is_file():
        return []
    with ResultsStore.open(out, create=False) as store:
        return store.finished_keys()


@pytest.mark.slow
def test_resume_after_sigkill_skips_finished_and_matches_uninterrupted(
    tmp_path, workdir, reference
):
    out = tmp_path / "killed"
    cmd = _bench_cmd(out, *TWO_TRAINERS)
    with (tmp_path / "killed.log").open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=workdir)
        try:
            _wait_for(lambda: len(_finished(out)) >= 1, proc, "the first configuration")
            # The second configuration is under way once its run folder exists.
            second_dir = out / "runs" / SECOND.replace("@", "_").replace("+", "_")
            _wait_for(second_dir.is_dir, proc, "the second configuration to start")
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=60) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    before = _stored(out)
    assert list(before) == [FIRST], "only the first configuration finished before the kill"
    assert list(_results(out)) == [FIRST]  # exports are written after every configuration
    with ResultsStore.open(out, create=False) as store:
        started = store.load_provenance()["started"]

    proc = _run([*cmd, "--resume"], workdir)
    # Only one configuration is skipped (which one the console does not say: see
    # test_progress_lines_name_the_configuration below); the store proves it was the first.
    assert proc.stdout.count("finished earlier: skipped (--resume)") == 1, proc.stdout

    after = _stored(out)
    assert sorted(after) == sorted([FIRST, SECOND])
    assert after[FIRST] == before[FIRST]  # same position, finished timestamp and row
    assert after[SECOND][0] > after[FIRST][0]
    with ResultsStore.open(out, create=False) as store:
        assert len(store.finished_keys()) == 2
        assert len(store.runs()) == 2
        assert store.load_provenance()["started"] == started  # resume keeps the provenance

    got, ref = _results(out), _results(reference)
    assert sorted(got) == sorted(ref) == sorted([FIRST, SECOND])
    for cid in ref:
        _assert_same_result(got[cid], ref[cid])
        assert got[cid]["ci"] == ref[cid]["ci"]
    assert got[FIRST]["train_seconds"] == json.loads(before[FIRST][2])["train_seconds"]
    assert _answers(out) == _answers(reference)
    assert json.loads((out / "provenance.json").read_text())["started"] == started


@pytest.mark.slow
def test_identical_seeds_give_identical_results(tmp_path, workdir, reference):
    runs = [tmp_path / "a", tmp_path / "b"]
    for out in runs:
        _run(_bench_cmd(out, "--trainer", "lora", "--no-base", "--seed", "3"), workdir)
    a, b = (_results(out) for out in runs)
    assert list(a) == list(b) == [FIRST]
    _assert_same_result(a[FIRST], b[FIRST])
    assert a[FIRST]["ci"] == b[FIRST]["ci"]
    assert _answers(runs[0]) == _answers(runs[1])
    # The same configuration inside a two-trainer run (first of two) gives the same result.
    _assert_same_result(a[FIRST], _results(reference)[FIRST])
    assert _answers(runs[0])[FIRST] == _answers(reference)[FIRST]


# ------------------------------------------------------------------ every export of a full run
FULL_CONFIGS = [
    "base",
    "lora+none+template@s1",
    "lora+none+template@s2",
    "lora+noise_rotate+template@s1",
    "lora+noise_rotate+template@s2",
]
EVAL_BATCH = 20


@pytest.fixture(scope="module")
def full(tmp_path_factory, workdir) -> Path:
    out = tmp_path_factory.mktemp("full")
    args = ["--trainer", "lora", "--augmenter", "none", "--augmenter", "noise_rotate"]
    args += ["--seeds", "1,2", "--eval-batch-size", str(EVAL_BATCH)]
    _run(_bench_cmd(out, *args, steps="4"), workdir)
    return out


def _report_document(run: Path) -> dict:
    """The per-image document embedded in a run's report.html."""
    text = (run / "report.html").read_text(encoding="utf-8")
    return json.loads(re.search(r'id="report-data"[^>]*>(.*?)</script>', text, re.S).group(1))


@pytest.mark.slow
def test_full_run_writes_every_export(full):
    for name in (
        "leaderboard.md",
        "leaderboard.tex",
        "results.csv",
        "results.json",
        "predictions.jsonl",
        "per_class.md",
        "provenance.json",
        "plots/metrics.png",
        *(f"plots/confusion-{slug(cid)}.png" for cid in FULL_CONFIGS),
    ):
        assert (full / name).is_file(), name
        assert (full / name).stat().st_size > 0, name
    assert not [p for p in full.rglob(".*") if p.is_file()]  # no temp files left behind
    for png in (full / "plots").glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png

    results = _results(full)
    assert sorted(results) == sorted(FULL_CONFIGS)
    for cid, r in results.items():
        assert set(r["metrics"]) >= {"macro_f1", "accuracy", "rouge_l"}, cid
        assert r["n_test"] == 160
    with (full / "results.csv").open() as fh:
        assert sorted(r["config_id"] for r in csv.DictReader(fh)) == sorted(FULL_CONFIGS)
    answers = _answers(full)
    assert sorted(answers) == sorted(FULL_CONFIGS)
    for cid, rows in answers.items():
        assert len(rows) == results[cid]["n_test"], cid
        assert len({i for i, _ in rows}) == len(rows), cid
    ids = {tuple(i for i, _ in rows) for rows in answers.values()}
    assert len(ids) == 1  # every configuration is scored on the same test images, same order
    doc = json.loads((full / "results.json").read_text())
    assert set(doc["seeds"]) == {"lora+none+template", "lora+noise_rotate+template"}
    page = _report_document(full)  # report.html: every test image once, each configuration
    assert len(page["images"]) == 160 and all(i["uri"] for i in page["images"])
    assert sorted(c["id"] for c in page["configs"]) == sorted(FULL_CONFIGS)


@pytest.mark.slow
def test_full_run_provenance(full):
    from harness.data.labels import PHANTOM8_CLASSES
    from harness.model.prompts import eval_prompt, text_hash

    prov = json.loads((full / "provenance.json").read_text())
    assert prov == json.loads((full / "results.json").read_text())["provenance"]
    fingerprint = prov["benchmark"]["fingerprint"]
    assert isinstance(fingerprint, str) and len(fingerprint) >= 12
    assert prov["benchmark"]["name"] == "phantom8"
    assert prov["prompt_hash"] == text_hash(prov["prompt"])
    assert prov["prompt"] == eval_prompt(PHANTOM8_CLASSES)
    assert prov["seeds"] == [1, 2]
    assert prov["generation"]["batch_size"] == EVAL_BATCH
    assert prov["generation"]["do_sample"] is False
    for name in ("cxr-harness", "torch", "transformers", "peft"):
        assert prov["packages"][name] not in ("", None, "not installed"), name
    assert prov["model"]["model"] == "tiny" and prov["model"]["weights_hash"]
    results = _results(full)
    assert {r["seed"] for cid, r in results.items() if cid != "base"} == {1, 2}
    # A different seed gives a different adapter (metrics may well tie after 4 steps).
    for aug in ("none", "noise_rotate"):
        s1, s2 = (results[f"lora+{aug}+template@s{s}"]["adapter_hash"] for s in (1, 2))
        assert s1 and s2 and s1 != s2, aug
    assert results["base"]["adapter_hash"] == ""
    card = json.loads((Path(results["lora+none+template@s1"]["adapter_dir"]) / CARD).read_text())
    assert card["generation"]["batch_size"] == EVAL_BATCH
    assert card["benchmark"]["fingerprint"] == fingerprint
    assert card["metrics"] == results["lora+none+template@s1"]["metrics"]


@pytest.mark.slow
def test_leaderboard_shows_fingerprint_base_row_and_invalid_rate(full):
    md = (full / "leaderboard.md").read_text()
    prov = json.loads((full / "provenance.json").read_text())
    assert f"`{prov['benchmark']['fingerprint']}`" in md
    assert prov["prompt_hash"] in md
    header = next(line for line in md.splitlines() if line.startswith("| Configuration |"))
    assert "| Invalid |" in header
    base = next(line for line in md.splitlines() if line.startswith("| base |"))
    cells = [c.strip() for c in base.strip("|").split("|")]
    invalid_col = [c.strip() for c in header.strip("|").split("|")].index("Invalid")
    expected = _results(full)["base"]["metrics"]["invalid_rate"]
    assert cells[invalid_col].split(" ")[0].strip("*") == f"{expected:.3f}"
    for cid in FULL_CONFIGS:
        assert f"| {cid} |" in md, cid
    assert "## Paired tests against base" in md and "No base row" not in md


@pytest.mark.slow
def test_report_rerenders_identically_from_the_store(full, tmp_path, workdir):
    other = tmp_path / "rerendered"
    proc = _run([*_harness_cmd(), "report", str(full), "--out", str(other)], workdir)
    assert "files written" in proc.stdout
    for name in (
        "leaderboard.md",
        "leaderboard.tex",
        "results.csv",
        "results.json",
        "predictions.jsonl",
        "per_class.md",
        "provenance.json",
    ):
        assert (other / name).read_text() == (full / name).read_text(), name
    for cid in FULL_CONFIGS:
        assert (other / "plots" / f"confusion-{slug(cid)}.png").is_file(), cid
    # report.html reads the test images back from the benchmark: the same thumbnails as the run's
    assert _report_document(other) == _report_document(full)
    assert not (other / STORE_NAME).exists()  # the report reads the store, never copies it


@pytest.mark.slow
def test_compare_two_real_runs(full, reference, tmp_path, workdir):
    out = tmp_path / "cmp.md"
    pair = f"lora+none+template@s1={FIRST}"
    proc = _run(
        [*_harness_cmd(), "compare", str(full), str(reference), "--pair", pair, "--out", str(out)],
        workdir,
    )
    assert "lora+none+template@s1" in proc.stdout
    text = out.read_text()
    assert "lora+none+template@s1" in text and FIRST in text and "| 160 |" in text
    proc = _run([*_harness_cmd(), "compare", str(full), str(full)], workdir)
    for cid in FULL_CONFIGS:
        assert cid in proc.stdout, cid


def test_progress_lines_name_the_configuration():
    from rich.console import Console
    from rich.progress import Progress

    from harness.commands.progress import RichProgress

    console = Console(record=True, width=200, force_terminal=False)
    with Progress(console=console) as progress:
        sink = RichProgress(progress)
        sink.note(f"[{FIRST}] finished earlier: skipped (--resume)")
        sink.start(f"[{SECOND}] train", 1).finish()
    text = console.export_text()
    assert f"[{FIRST}] finished earlier: skipped (--resume)" in text
    assert f"[{SECOND}] train" in text
