"""The leaderboard's metric table: `--metric`, experiment files, plugin metrics with CIs and
paired tests in every export, and `harness report` from the store alone."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from harness.cli import main
from harness.data.sample import Sample
from harness.evaluation import stats
from harness.evaluation.scoring import score_plugins
from harness.experiment import load_experiment
from harness.exports import analyse, write_all
from harness.plan import resolve_metrics
from harness.plugins import make_registry
from harness.results.columns import DEFAULT_METRICS, LEGACY, metric_table
from harness.results.store import ResultsStore
from harness.spec import BenchSpec

CLASSES = ["normal", "effusion"]
WORDS = "small left pleural effusion heart size normal lungs clear no pneumothorax".split()
CHOSEN = ("macro_f1", "bleu4", "cider", "rouge_l", "chrf")


@pytest.fixture(scope="module")
def registry():
    return make_registry()


def _samples(n: int, rng: np.random.Generator) -> list[Sample]:
    img = Image.new("L", (8, 8))
    out = []
    for i in range(n):
        report = " ".join(rng.choice(WORDS, size=8)) if i % 5 else ""  # 1 in 5: no reference
        out.append(Sample(f"img{i:03d}", CLASSES[i % 2], img, report))
    return out


def _row(cid, trainer, samples, skill, rng, metrics) -> dict:
    preds = []
    for s in samples:
        good = rng.random() < skill
        words = s.report.split() if good and s.report else list(rng.choice(WORDS, size=6))
        label = s.label if good else CLASSES[int(rng.integers(2))]
        preds.append(
            {
                "id": s.id,
                "label": s.label,
                "prediction": label,
                "valid": True,
                "invalid_reason": None,
                "rouge_l": float(good) if s.report else None,
                "answer": f"Class: {label}\nExplanation: {' '.join(words)}",
            }
        )
    values, table = score_plugins(metrics, samples, preds, CLASSES)
    point = stats.point_metrics(stats.encode(preds, CLASSES))
    return {
        "config_id": cid,
        "trainer": trainer,
        "augmenter": "none",
        "synthesizer": "none",
        "seed": 0,
        "metrics": {**point, **values, "rouge_l_n": sum(bool(s.report) for s in samples)},
        "metric_stats": table,
        "n_test": len(samples),
        "predictions": preds,
    }


@pytest.fixture(scope="module")
def run(registry, tmp_path_factory):
    metrics = resolve_metrics(BenchSpec(metrics=CHOSEN), registry)
    rng = np.random.default_rng(0)
    samples = _samples(60, rng)
    rows = [
        _row("base", "base", samples, 0.2, rng, metrics),
        _row("lora+none+template@s0", "lora", samples, 0.8, rng, metrics),
    ]
    prov = {
        "benchmark": {"name": "toy", "fingerprint": "f" * 16, "classes": CLASSES},
        "metrics": [m.column().as_dict() for m in metrics],
    }
    out = tmp_path_factory.mktemp("run")
    with ResultsStore.open(out) as store:
        run_id = store.save_run(prov, {})
        for r in rows:
            store.save_config_result(r, run_id)
    write_all(out, rows, prov, {}, n_resamples=200, plots=False)
    return out, rows, prov, samples


def test_default_metric_table_is_the_legacy_leaderboard(registry):
    metrics = resolve_metrics(BenchSpec(), registry)
    cols = [m.column() for m in metrics]
    assert tuple(c.name for c in cols) == DEFAULT_METRICS
    assert [(c.name, c.title, c.higher_is_better) for c in cols] == [
        (c.name, c.title, c.higher_is_better) for c in LEGACY
    ]
    assert metric_table({}) == LEGACY  # a run recorded before the table existed


def test_unknown_metric_exits_2_naming_it_and_the_known_ones_before_any_work(tmp_path):
    out = tmp_path / "never"
    res = CliRunner().invoke(main, ["bench", "--metric", "bleu9", "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert "Unknown metric 'bleu9'" in res.output
    assert "Known metrics:" in res.output and "cider" in res.output and "macro_f1" in res.output
    assert not out.exists()


def test_a_metric_chosen_twice_is_an_error(tmp_path):
    args = ["bench", "--metric", "bleu4,bleu4", "--out", str(tmp_path / "x"), "--dry-run"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2 and "bleu4: chosen more than once" in res.output


def test_experiment_file_chooses_the_metrics(tmp_path, registry):
    path = tmp_path / "exp.toml"
    path.write_text('metrics = ["bleu4", "cider"]\n')
    assert load_experiment(path)["metrics"] == ("bleu4", "cider")
    path.write_text('metrics = "nope"\n')
    with pytest.raises(Exception, match="Unknown metric 'nope'"):
        resolve_metrics(BenchSpec(metrics=load_experiment(path)["metrics"]), registry)


def test_provenance_records_implementation_version_and_tokenisation(run):
    _, _, prov, _ = run
    by = {c["name"]: c for c in prov["metrics"]}
    import sacrebleu

    assert by["bleu4"]["implementation"] == "sacrebleu"
    assert by["bleu4"]["version"] == sacrebleu.__version__
    assert "13a" in by["bleu4"]["tokenisation"]
    assert by["cider"]["implementation"] == "pycocoevalcap"
    assert by["rouge_l"]["implementation"] == "rouge-score"


def test_plugin_metric_values_are_their_corpus_scores_over_referenced_images(run):
    import sacrebleu

    from harness.evaluation.parser import parse_answer

    _, rows, _, samples = run
    r = rows[1]
    keep = [(p, s) for p, s in zip(r["predictions"], samples, strict=True) if s.report]
    hyps = [parse_answer(p["answer"], CLASSES).explanation for p, _ in keep]
    want = sacrebleu.BLEU(lowercase=True).corpus_score(hyps, [[s.report for _, s in keep]])
    assert r["metrics"]["bleu4"] == pytest.approx(want.score / 100)
    assert r["metrics"]["bleu4_n"] == len(keep) < len(samples)


def test_every_export_shows_the_chosen_columns_with_cis(run):
    out, rows, prov, _ = run
    md = (out / "leaderboard.md").read_text()
    head = next(line for line in md.splitlines() if line.startswith("| Configuration"))
    assert [t.strip() for t in head.split("|")[2:7]] == [
        "Macro-F1",
        "BLEU-4",
        "CIDEr-D",
        "ROUGE-L",
        "chrF",
    ]
    assert "Accuracy" not in head and "Invalid" not in head
    assert "(48/60)" in md  # reference coverage of the reference metrics
    tex = (out / "leaderboard.tex").read_text()
    assert "BLEU-4 & CIDEr-D & ROUGE-L & chrF" in tex
    data = list(csv.DictReader((out / "results.csv").open()))
    for m in ("bleu4", "cider", "chrf"):
        low, high = float(data[1][f"{m}_ci_low"]), float(data[1][f"{m}_ci_high"])
        assert low <= float(data[1][m]) <= high and low < high
    doc = json.loads((out / "results.json").read_text())
    lora = doc["results"][1] if "results" in doc else doc["rows"][1]
    assert {"bleu4", "cider", "chrf"} <= set(lora["ci"])
    assert lora["paired_vs_base"]["bleu4"]["estimate"] > 0  # the better row wins, tested
    assert lora["coverage"]["bleu4"] == {"n": 48, "of": 60}
    html = (out / "report.html").read_text()
    assert "CIDEr-D" in html and "chrF" in html


def test_bootstrap_of_a_corpus_metric_recomputes_the_corpus_score(run, registry):
    _, rows, prov, _ = run
    an = analyse(rows, prov, n_resamples=50, seed=1)
    enc = stats.encode(
        rows[1]["predictions"], CLASSES, rows[1]["metric_stats"], {"bleu4": lambda s: s[:, 0]}
    )
    w = stats.bootstrap_weights(enc.n, 3, 0)
    bleu = registry.create("metric", "bleu4")
    table = np.asarray(rows[1]["metric_stats"]["bleu4"])
    direct = bleu.combine(w @ table, CLASSES)
    combined = stats.weighted_metrics(
        stats.encode(
            rows[1]["predictions"],
            CLASSES,
            rows[1]["metric_stats"],
            {"bleu4": lambda s: bleu.combine(s, CLASSES)},
        ),
        w,
    )["bleu4"]
    assert np.allclose(direct, combined)
    ci = an["configs"][rows[1]["config_id"]]["ci"]["bleu4"]
    assert ci.low <= rows[1]["metrics"]["bleu4"] <= ci.high
    assert enc.extra["bleu4"].shape == table.shape


def test_report_shows_the_same_table_from_the_store_without_scikit_learn(run, tmp_path):
    out, *_ = run
    code = (
        "import sys; from harness.cli import main\n"
        f"sys.argv = ['harness', 'report', {str(out)!r}, '--out', {str(tmp_path)!r},"
        " '--resamples', '200']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'sklearn' not in sys.modules, 'report imported scikit-learn'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"COLUMNS": "250", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BLEU-4" in proc.stdout and "CIDEr-D" in proc.stdout
    assert (tmp_path / "leaderboard.md").read_text() == (out / "leaderboard.md").read_text()


def _table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[:1] in "┏┃┡│└"]


@pytest.mark.slow
def test_bench_with_text_metrics_on_the_tiny_model_and_report_print_one_table(tmp_path):
    out = tmp_path / "run"
    env = {"COLUMNS": "250", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    exe = [sys.executable, "-m", "harness.cli"]
    args = ["bench", "--trainer", "base", "--metric", "bleu4", "--metric", "cider"]
    args += ["--metric", "rouge_l", "--out", str(out), "--threads", "2"]
    bench = subprocess.run([*exe, *args], capture_output=True, text=True, env=env, check=False)
    assert bench.returncode == 0, bench.stdout[-3000:] + bench.stderr[-3000:]
    report = subprocess.run(
        [*exe, "report", str(out), "--out", str(tmp_path / "again")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert report.returncode == 0, report.stderr
    table = _table_lines(bench.stdout)
    assert table and table == _table_lines(report.stdout)
    assert "BLEU-4" in table[1] and "CIDEr-D" in table[1] and "Macro-F1" not in table[1]
    doc = json.loads((out / "results.json").read_text())
    row = doc["results"][0]
    assert {"bleu4", "cider", "rouge_l"} <= set(row["ci"]) and "bleu4" in row["metrics"]
    assert [c["name"] for c in doc["provenance"]["metrics"]] == ["bleu4", "cider", "rouge_l"]
    assert "BLEU-4 & CIDEr-D & ROUGE-L" in (out / "leaderboard.tex").read_text()
    assert "bleu4_ci_low" in (out / "results.csv").read_text().splitlines()[0]


def test_eval_takes_metric_too_and_refuses_an_unknown_one(tmp_path):
    out = tmp_path / "never"
    res = CliRunner().invoke(main, ["eval", "--metric", "bleu9", "--out", str(out)])
    assert res.exit_code == 2 and "Unknown metric 'bleu9'" in res.output, res.output
    assert not out.exists()


def test_seed_table_carries_plugin_metrics_with_the_seed_and_image_bootstrap(registry, tmp_path):
    metrics = resolve_metrics(BenchSpec(metrics=("macro_f1", "bleu4")), registry)
    rng = np.random.default_rng(5)
    samples = _samples(40, rng)
    rows = [_row("base", "base", samples, 0.2, rng, metrics)] + [
        _row(f"lora+none+template@s{s}", "lora", samples, 0.7, rng, metrics) for s in (1, 2, 3)
    ]
    prov = {
        "benchmark": {"name": "toy", "fingerprint": "f" * 16, "classes": CLASSES},
        "metrics": [m.column().as_dict() for m in metrics],
    }
    an = analyse(rows, prov, n_resamples=200)
    summ = an["seeds"]["lora+none+template"]
    values = [r["metrics"]["bleu4"] for r in rows[1:]]
    assert summ["bleu4"].n == 3 and summ["bleu4"].mean == pytest.approx(np.mean(values))
    ci = an["seeds_ci"]["lora+none+template"]["bleu4"]
    assert ci.low < np.mean(values) < ci.high
    write_all(tmp_path, rows, prov, {}, analysis=an, plots=False)
    md = (tmp_path / "leaderboard.md").read_text()
    seeds_line = next(line for line in md.splitlines() if line.startswith("| lora+none+template |"))
    assert f"{np.mean(values):.3f} ± " in seeds_line
