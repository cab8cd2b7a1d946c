"""`--scoring both`: the generated answers and the likelihood-scored labels in one row, so a base
that never writes a Class: line still gets a classification score beside its invalid rate."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.core.errors import OptionError
from harness.evaluation import stats
from harness.evaluation.analysis import analyse
from harness.evaluation.generate import GenerationConfig
from harness.evaluation.result import EvalResult, combine_scorings
from harness.exports import leaderboard_latex, leaderboard_markdown, results_csv, results_json
from harness.results.store import ResultsStore

CLASSES = ["normal", "pneumonia", "effusion"]


def both_row(cid: str, trainer: str, gen_skill: float, ll_skill: float, seed: int) -> dict:
    """Generated answers right with ``gen_skill`` (else no Class: line), likelihood-scored labels
    right with ``ll_skill`` (else another class)."""
    rng = np.random.default_rng(seed)
    preds = []
    for i in range(60):
        lab = CLASSES[i % 3]
        gen = lab if rng.random() < gen_skill else None
        ll = lab if rng.random() < ll_skill else CLASSES[(i + 1) % 3]
        preds.append(
            {
                "id": f"i{i}",
                "label": lab,
                "prediction": gen,
                "rouge_l": None,
                "valid": gen is not None,
            }
            | {"likelihood_prediction": ll, "scores": {c: -float(c != ll) for c in CLASSES}}
        )
    metrics = stats.point_metrics(stats.encode(preds, CLASSES))
    metrics.pop("rouge_l")
    ll = stats.point_metrics(
        stats.encode([{**p, "prediction": p["likelihood_prediction"]} for p in preds], CLASSES)
    )
    metrics |= {"likelihood_macro_f1": ll["macro_f1"], "likelihood_accuracy": ll["accuracy"]}
    return {
        "config_id": cid,
        "trainer": trainer,
        "seed": 0,
        "metrics": metrics,
        "n_test": 60,
        "predictions": preds,
    }


def test_generation_config_runs_both_halves_and_hashes_its_scoring() -> None:
    both = GenerationConfig(scoring="both", decoding="static")
    assert both.parts == ("generate", "likelihood") and both.as_dict()["scoring"] == "both"
    assert both.part("generate").as_dict() == GenerationConfig(decoding="static").as_dict()
    assert both.part("likelihood").as_dict() == GenerationConfig(scoring="likelihood").as_dict()
    with pytest.raises(OptionError, match="generate, likelihood, both"):
        GenerationConfig(scoring="all")


def test_combine_keeps_the_generated_row_and_adds_the_likelihood_labels() -> None:
    gen = EvalResult(
        {"macro_f1": 0.0, "accuracy": 0.0, "invalid_rate": 1.0},
        [{"id": "a", "label": "x", "prediction": None}],
        1.0,
    )
    ll = EvalResult(
        {"macro_f1": 1.0, "accuracy": 1.0, "invalid_rate": 0.0},
        [{"id": "a", "label": "x", "prediction": "x", "scores": {"x": -0.1}}],
        0.5,
    )
    out = combine_scorings({"generate": gen, "likelihood": ll})
    assert out.metrics == {
        "macro_f1": 0.0,
        "accuracy": 0.0,
        "invalid_rate": 1.0,
        "likelihood_macro_f1": 1.0,
        "likelihood_accuracy": 1.0,
    }
    assert out.predictions == [
        {
            "id": "a",
            "label": "x",
            "prediction": None,
            "likelihood_prediction": "x",
            "scores": {"x": -0.1},
        }
    ]
    assert out.seconds == 1.5
    assert combine_scorings({"generate": gen}) is gen


def test_a_base_without_class_lines_gets_a_likelihood_score_in_every_export(tmp_path) -> None:
    rows = [both_row("base", "base", 0.0, 0.6, 1), both_row("lora", "lora", 0.9, 0.95, 2)]
    with ResultsStore.open(tmp_path) as store:  # the likelihood labels survive the store
        run = store.save_run({"benchmark": {"classes": CLASSES}}, {})
        for r in rows:
            store.save_config_result({**r, "augmenter": "none", "synthesizer": "none"}, run)
        rows = store.load_rows()
    assert rows[0]["predictions"][0]["likelihood_prediction"] in CLASSES
    an = analyse(rows, CLASSES, n_resamples=300)
    base = an["configs"]["base"]
    assert rows[0]["metrics"]["invalid_rate"] == 1.0 and rows[0]["metrics"]["macro_f1"] == 0.0
    ci = base["ci"]["likelihood_macro_f1"]
    assert (
        ci.estimate == pytest.approx(rows[0]["metrics"]["likelihood_macro_f1"])
        and ci.estimate > 0.4
    )
    assert ci.low < ci.estimate < ci.high
    paired = an["configs"]["lora"]["paired"]["likelihood_macro_f1"]
    assert paired.estimate == pytest.approx(
        rows[1]["metrics"]["likelihood_macro_f1"] - rows[0]["metrics"]["likelihood_macro_f1"]
    )
    assert paired.p_adjusted is not None
    md = leaderboard_markdown(rows, {}, {}, an)
    section = md.split("## Format vs knowledge")[1].splitlines()
    line = next(x for x in section if x.startswith("| base |"))
    assert "| 0.000 ± 0.000 | 0.000 ± 0.000 | 1.000 ± 0.000 |" in line  # generated: all invalid
    assert f"{ci.estimate:.3f} ± {ci.half_width:.3f}" in line  # the same row: invalid and LL score
    assert f"{ci.estimate:.3f} $\\pm$ {ci.half_width:.3f}" in leaderboard_latex(rows, {}, {}, an)
    table = {r["config_id"]: r for r in csv.DictReader(io.StringIO(results_csv(rows, an)))}
    assert float(table["base"]["likelihood_macro_f1"]) == pytest.approx(ci.estimate)
    assert float(table["base"]["likelihood_macro_f1_ci_low"]) == pytest.approx(ci.low)
    assert table["lora"]["p_likelihood_macro_f1_adjusted"] != ""
    doc = json.loads(results_json(rows, {}, {}, an))
    assert doc["results"][0]["ci"]["likelihood_accuracy"]["estimate"] == pytest.approx(
        rows[0]["metrics"]["likelihood_accuracy"]
    )


@pytest.mark.slow
def test_scoring_both_on_the_tiny_model_matches_the_two_scorings_run_apart(tmp_path) -> None:
    def bench(scoring: str) -> dict:
        out = tmp_path / scoring
        args = ["bench", "--trainer", "base", "--scoring", scoring, "--out", str(out)]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output[-2000:]
        (row,) = json.loads((out / "results.json").read_text())["results"]
        return row

    both, gen, ll = bench("both"), bench("generate"), bench("likelihood")
    m = both["metrics"]
    for k in ("macro_f1", "accuracy", "invalid_rate", "rouge_l"):
        assert m[k] == pytest.approx(gen["metrics"][k]), k
    assert m["likelihood_macro_f1"] == pytest.approx(ll["metrics"]["macro_f1"])
    assert m["likelihood_accuracy"] == pytest.approx(ll["metrics"]["accuracy"])
    assert m["likelihood_macro_f1"] > 0 and "likelihood_macro_f1" in both["ci"]
    assert both["prediction_cache_keys"]["generate"] == gen["prediction_cache_key"]
    assert both["prediction_cache_keys"]["likelihood"] == ll["prediction_cache_key"]
    md = (tmp_path / "both" / "leaderboard.md").read_text()
    assert "## Format vs knowledge" in md
