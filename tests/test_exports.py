"""harness.exports and `harness report` / `harness compare`: every output from the store alone."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from harness.commands.report import compare_cmd, report_cmd
from harness.evaluation import stats
from harness.exports import (
    analyse,
    caveats,
    latex_document,
    leaderboard_latex,
    leaderboard_markdown,
    tex_escape,
    write_all,
)
from harness.results.store import ResultsStore

CLASSES = ["normal", "pneumonia", "effusion", "pneumothorax"]


def make_bench(n: int = 40, seed: int = 0, fingerprint: str = "0123456789abcdef"):
    rng = np.random.default_rng(seed)
    labels = [CLASSES[i % len(CLASSES)] for i in range(n)]

    def row(cid: str, trainer: str, s: int, skill: float) -> dict:
        preds = []
        for i, lab in enumerate(labels):
            u = rng.random()
            p = None if u < 0.05 else lab if u < skill else CLASSES[rng.integers(len(CLASSES))]
            preds.append(
                {
                    "id": f"img{i:03d}",
                    "label": lab,
                    "prediction": p,
                    "valid": p is not None,
                    "invalid_reason": None if p else "no Class: line",
                    "rouge_l": float(rng.random() * skill),
                    "answer": f"Class: {p}",
                }
            )
        metrics = stats.point_metrics(stats.encode(preds, CLASSES))
        return {
            "config_id": cid,
            "trainer": trainer,
            "augmenter": "none",
            "synthesizer": "none" if trainer == "base" else "template",
            "seed": s,
            "options": {},
            "resolved": {},
            "metrics": metrics,
            "n_test": n,
            "trainable_params": 0 if trainer == "base" else 2_500_000,
            "train_seconds": 0.0 if trainer == "base" else 30.0,
            "eval_seconds": 1.0,
            "chat_template_hash": "c" * 16,
            "adapter_hash": None if trainer == "base" else f"ad{s}",
            "predictions": preds,
        }

    rows = [row("base", "base", 0, 0.3)] + [
        row(f"rslora+none+template@s{s}", "rslora", s, 0.8) for s in (1, 2)
    ]
    prov = {
        "benchmark": {
            "name": "phantom8",
            "fingerprint": fingerprint,
            "classes": CLASSES,
            "sizes": {"train": 100, "val": 8, "test": n},
            "test_counts": {c: labels.count(c) for c in CLASSES},
            "excluded_classes": ["hernia"],
            "dedup": {"near_duplicates_removed": 3},
        },
        "caveats": ["Reference reports are synthetic."],
        "model": {"model": "tiny", "revision": None, "min_pixels": 3136, "max_pixels": 12544},
        "prompt_hash": "feedbeef",
        "generation": {"max_new_tokens": 48, "batch_size": 8},
        "packages": {"torch": "2.13.0"},
        "git_commit": "abc1234",
        "hardware": {"cuda": False},
        "seeds": [1, 2],
    }
    return rows, prov, {"majority": {"macro_f1": 0.1, "accuracy": 0.25, "invalid_rate": 0.0}}


def stored(directory: Path, **kw) -> Path:
    rows, prov, base = make_bench(**kw)
    with ResultsStore.open(directory) as store:
        run = store.save_run(prov, base)
        for r in rows:
            store.save_config_result(r, run)
    return directory


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("out")
    rows, prov, base = make_bench()
    write_all(out, rows, prov, base, n_resamples=300)
    return out


def test_write_all_writes_every_output(outputs: Path) -> None:
    for name in (
        "leaderboard.md",
        "leaderboard.tex",
        "results.csv",
        "results.json",
        "predictions.jsonl",
        "per_class.md",
        "provenance.json",
        "plots/metrics.png",
        "plots/confusion-base.png",
        "plots/confusion-rslora_none_template_s1.png",
        "report.html",
    ):
        assert (outputs / name).is_file(), name
    assert not list(outputs.rglob(".*"))  # no temp files left behind
    with Image.open(outputs / "plots/metrics.png") as im:
        assert im.format == "PNG" and im.size[0] > 400


def test_csv_json_jsonl_content(outputs: Path) -> None:
    with (outputs / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["config_id"] for r in rows][0] == "base"
    assert float(rows[1]["macro_f1_ci_low"]) <= float(rows[1]["macro_f1"])
    assert rows[0]["p_macro_f1"] == "" and 0 <= float(rows[1]["mcnemar_p"]) <= 1
    doc = json.loads((outputs / "results.json").read_text())
    assert doc["bootstrap"]["n_resamples"] == 300
    res = doc["results"][1]
    assert set(res["ci"]) >= {"macro_f1", "accuracy", "rouge_l"}
    assert len(res["confusion"]["matrix"][0]) == len(CLASSES) + 1
    assert "rslora+none+template" in doc["seeds"]
    assert "predictions" not in res
    lines = (outputs / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 3 * 40 and json.loads(lines[0])["config_id"] == "base"


def test_markdown_has_cis_paired_tests_seeds_caveats_and_provenance(outputs: Path) -> None:
    md = (outputs / "leaderboard.md").read_text()
    for needle in (
        " ± ",
        "majority-class baseline",
        "## Paired tests against base",
        "## Across training seeds (mean ± sd [95% CI over seeds and images])",
        "Excluded classes: hernia",
        "near_duplicates_removed 3",
        "fewer than 30 test images",
        "0123456789abcdef",
        "abc1234",
        "feedbeef",
        "max_pixels 12544",
    ):
        assert needle in md, needle
    per_class = (outputs / "per_class.md").read_text()
    assert "| true \\ pred |" in per_class and "invalid" in per_class


def test_latex_bolds_the_best_value_per_column() -> None:
    rows, prov, base = make_bench()
    an = analyse(rows, prov, n_resamples=200)
    tex = leaderboard_latex(rows, prov, base, an)
    best_f1 = max(r["metrics"]["macro_f1"] for r in rows)
    lowest_invalid = min(r["metrics"]["invalid_rate"] for r in rows)
    assert f"\\textbf{{{best_f1:.3f}}}" in tex
    assert f"\\textbf{{{lowest_invalid:.3f}}}" in tex
    assert "\\toprule" in tex and "\\bottomrule" in tex and "$\\pm$" in tex
    assert "rslora+none+template@s1" in tex
    assert tex_escape("a_b&c%#$") == "a\\_b\\&c\\%\\#\\$"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_compiles_with_pdflatex(outputs: Path, tmp_path: Path) -> None:
    doc = tmp_path / "doc.tex"
    doc.write_text(latex_document((outputs / "leaderboard.tex").read_text()))
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


def test_caveats_without_optional_fields() -> None:
    rows, prov, _ = make_bench()
    rows = rows[:2]  # one seed only
    del prov["benchmark"]["dedup"], prov["benchmark"]["excluded_classes"]
    text = " ".join(caveats(rows, prov, analyse(rows, prov, n_resamples=100)))
    assert "De-duplication" not in text and "single training seed" in text
    assert "synthesized (template)" in text


def test_leaderboard_markdown_keeps_the_old_call_shape() -> None:
    rows, prov, base = make_bench()
    md = leaderboard_markdown(rows, prov, base)
    assert md.startswith("# cxr-harness leaderboard") and "| base |" in md


def test_report_rerenders_identically_from_the_store(tmp_path: Path, outputs: Path) -> None:
    run = stored(tmp_path / "run")
    res = CliRunner().invoke(report_cmd, [str(run), "--resamples", "300"])
    assert res.exit_code == 0, res.output
    assert "rslora+none+template@s1" in res.output
    for name in ("leaderboard.md", "leaderboard.tex", "results.csv", "per_class.md"):
        assert (run / name).read_text() == (outputs / name).read_text(), name
    assert (run / "plots" / "metrics.png").is_file()


def test_report_on_a_folder_without_store_fails_cleanly(tmp_path: Path) -> None:
    res = CliRunner().invoke(report_cmd, [str(tmp_path)])
    assert res.exit_code == 2 and "results.sqlite" in res.output


def test_compare_two_runs(tmp_path: Path) -> None:
    a = stored(tmp_path / "a", seed=0)
    b = stored(tmp_path / "b", seed=1)
    out = tmp_path / "cmp.md"
    res = CliRunner().invoke(compare_cmd, [str(a), str(b), "--resamples", "200", "--out", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "| base | base | 40 |" in text and "rslora+none+template@s2" in text
    res = CliRunner().invoke(
        compare_cmd, [str(a), str(b), "--pair", "base=rslora+none+template@s1"]
    )
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(compare_cmd, [str(a), str(b), "--pair", "nope=base"])
    assert res.exit_code == 2 and "nope" in res.output


def test_compare_refuses_different_benchmarks(tmp_path: Path) -> None:
    a = stored(tmp_path / "a")
    b = stored(tmp_path / "b", fingerprint="ffffffffffffffff")
    res = CliRunner().invoke(compare_cmd, [str(a), str(b)])
    assert res.exit_code == 2 and "different benchmarks" in res.output
