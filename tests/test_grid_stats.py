"""Statistics for grids: Holm / Benjamini-Hochberg correction of the p-values against base, and
the bootstrap over training seeds and test images together."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from harness.commands.report import report_cmd
from harness.core.errors import OptionError
from harness.evaluation import stats
from harness.evaluation.analysis import analyse
from harness.evaluation.correction import adjust, benjamini_hochberg, holm
from harness.evaluation.hierarchical import seed_image_intervals
from harness.exports import leaderboard_latex, leaderboard_markdown, results_csv, results_json
from harness.results.store import ResultsStore

CLASSES = ["normal", "pneumonia", "effusion"]


def predictions(labels: list[str], skill: float, rng: np.random.Generator) -> list[dict]:
    out = []
    for i, lab in enumerate(labels):
        p = lab if rng.random() < skill else CLASSES[int(rng.integers(len(CLASSES)))]
        out.append({"id": f"img{i:03d}", "label": lab, "prediction": p, "rouge_l": skill})
    return out


def row(cid: str, trainer: str, preds: list[dict]) -> dict:
    return {
        "config_id": cid,
        "trainer": trainer,
        "seed": 0,
        "metrics": stats.point_metrics(stats.encode(preds, CLASSES)),
        "n_test": len(preds),
        "predictions": preds,
    }


def grid(skills: dict[str, float], n: int = 60, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    labels = [CLASSES[i % len(CLASSES)] for i in range(n)]
    rows = [row("base", "base", predictions(labels, 0.4, rng))]
    return rows + [row(cid, "lora", predictions(labels, s, rng)) for cid, s in skills.items()]


# ---------------------------------------------------------------- the corrections by hand


def test_holm_matches_hand_computed_values() -> None:
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> 0.06)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # 2 x 0.5 caps at 1, and stays monotone
    assert holm([0.2]) == [0.2]


def test_benjamini_hochberg_matches_hand_computed_values() -> None:
    # sorted: 0.005 x 4/1 = 0.02, 0.01 x 4/2 = 0.02, 0.03 x 4/3 = 0.04, 0.04 x 4/4 = 0.04
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # step-up: 0.04 x 3/2 = 0.06 is lowered to the larger p's 0.045 x 3/3 = 0.045
    assert benjamini_hochberg([0.001, 0.04, 0.045]) == pytest.approx([0.003, 0.045, 0.045])


def test_adjust_skips_nan_and_rejects_unknown_methods() -> None:
    out = adjust([0.01, float("nan"), 0.04], "holm")
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)
    assert adjust([0.01, 0.04], "none") == [0.01, 0.04]
    with pytest.raises(OptionError, match="--correction"):
        adjust([0.1], "bonferroni")


# ---------------------------------------------------------------- in the analysis and exports


def test_analysis_corrects_across_the_configurations_compared_with_base() -> None:
    rows = grid({"a": 0.9, "b": 0.5, "c": 0.45})
    an = analyse(rows, CLASSES, n_resamples=400)
    assert an["correction"] == "holm" and an["configs"]["base"]["paired"] == {}
    for m in ("macro_f1", "accuracy"):
        raw = [an["configs"][c]["paired"][m].p_value for c in "abc"]
        got = [an["configs"][c]["paired"][m].p_adjusted for c in "abc"]
        assert got == pytest.approx(holm(raw))
    raw = [an["configs"][c]["mcnemar"].p_value for c in "abc"]
    assert [an["configs"][c]["mcnemar"].p_adjusted for c in "abc"] == pytest.approx(holm(raw))
    bh = analyse(rows, CLASSES, n_resamples=400, correction="bh")
    raw = [bh["configs"][c]["paired"]["macro_f1"].p_value for c in "abc"]
    got = [bh["configs"][c]["paired"]["macro_f1"].p_adjusted for c in "abc"]
    assert got == pytest.approx(benjamini_hochberg(raw))
    assert all(g >= r for g, r in zip(got, raw, strict=True))


def test_every_export_shows_the_adjusted_p_next_to_the_raw_one() -> None:
    rows = grid({"a": 0.9, "b": 0.5})
    an = analyse(rows, CLASSES, n_resamples=300)
    pa = an["configs"]["b"]["paired"]["macro_f1"]
    md = leaderboard_markdown(rows, {}, {}, an)
    assert "Holm's step-down correction" in md and "across the 2 configurations" in md
    assert f"(Holm {pa.p_adjusted:.3f})" in md or pa.p_adjusted < 0.001
    assert "(Holm $" in leaderboard_latex(rows, {}, {}, an)
    table = list(csv.DictReader(io.StringIO(results_csv(rows, an))))
    b = next(r for r in table if r["config_id"] == "b")
    assert float(b["p_macro_f1_adjusted"]) == pytest.approx(pa.p_adjusted)
    assert float(b["p_macro_f1"]) == pytest.approx(pa.p_value) and b["p_correction"] == "holm"
    doc = json.loads(results_json(rows, {}, {}, an))
    got = next(r for r in doc["results"] if r["config_id"] == "b")["paired_vs_base"]
    assert got["macro_f1"]["p_adjusted"] == pytest.approx(pa.p_adjusted)
    assert doc["bootstrap"]["p_correction"] == "holm"
    none = analyse(rows, CLASSES, n_resamples=300, correction="none")
    assert "(Holm" not in leaderboard_markdown(rows, {}, {}, none)
    assert "not corrected for multiple comparisons" in leaderboard_markdown(rows, {}, {}, none)


def test_report_cli_takes_the_correction(tmp_path) -> None:
    rows = grid({"a": 0.9, "b": 0.5})
    with ResultsStore.open(tmp_path) as store:
        run = store.save_run({"benchmark": {"classes": CLASSES}}, {})
        for r in rows:
            store.save_config_result({**r, "augmenter": "none", "synthesizer": "none"}, run)
    res = CliRunner().invoke(report_cmd, [str(tmp_path), "--no-plots", "--correction", "bh"])
    assert res.exit_code == 0, res.output
    assert "(BH " in (tmp_path / "leaderboard.md").read_text()
    bad = CliRunner().invoke(report_cmd, [str(tmp_path), "--correction", "sidak"])
    assert bad.exit_code == 2 and "--correction" in bad.output


# ---------------------------------------------------------------- seeds and images together


def seed_rows(skills: list[float], n: int = 90, seed: int = 1) -> list[stats.Encoded]:
    rng = np.random.default_rng(seed)
    labels = [CLASSES[i % len(CLASSES)] for i in range(n)]
    return [stats.encode(predictions(labels, s, rng), CLASSES) for s in skills]


def test_seed_image_interval_widens_with_seed_variance() -> None:
    same = seed_rows([0.7])
    same = [same[0]] * 4  # four seeds that answered identically: only the images vary
    varied = seed_rows([0.35, 0.55, 0.8, 0.98])
    a = seed_image_intervals(same, n_resamples=800)["accuracy"]
    b = seed_image_intervals(varied, n_resamples=800)["accuracy"]
    image_only = stats.metric_intervals(same[0], n_resamples=800)["accuracy"]
    assert a.half_width == pytest.approx(image_only.half_width, rel=0.25)
    assert b.half_width > 2 * a.half_width
    expected = np.mean([stats.point_metrics(e)["accuracy"] for e in varied])
    assert b.estimate == pytest.approx(expected)
    assert b.low < expected < b.high


def test_seed_image_interval_is_deterministic_under_its_seed() -> None:
    encs = seed_rows([0.5, 0.7, 0.9])
    one = seed_image_intervals(encs, n_resamples=300, seed=7)
    assert one == seed_image_intervals(encs, n_resamples=300, seed=7)
    assert one["macro_f1"] != seed_image_intervals(encs, n_resamples=300, seed=8)["macro_f1"]
    with pytest.raises(ValueError, match="two seed rows"):
        seed_image_intervals(encs[:1])


def test_seed_rows_in_a_grid_get_the_interval_in_every_seed_table() -> None:
    rng = np.random.default_rng(3)
    labels = [CLASSES[i % len(CLASSES)] for i in range(60)]
    rows = [row("base", "base", predictions(labels, 0.4, rng))] + [
        row(f"lora+none+none@s{s}", "lora", predictions(labels, k, rng))
        for s, k in ((1, 0.5), (2, 0.7), (3, 0.9))
    ]
    an = analyse(rows, CLASSES, n_resamples=300)
    ci = an["seeds_ci"]["lora+none+none"]["macro_f1"]
    assert ci.estimate == pytest.approx(an["seeds"]["lora+none+none"]["macro_f1"].mean)
    md = leaderboard_markdown(rows, {}, {}, an)
    assert "hierarchical bootstrap" in md and f"[{ci.low:.3f}, {ci.high:.3f}]" in md
    assert f"[{ci.low:.3f}, {ci.high:.3f}]" in leaderboard_latex(rows, {}, {}, an)
    doc = json.loads(results_json(rows, {}, {}, an))
    got = doc["seeds"]["lora+none+none"]["macro_f1"]["seeds_and_images_ci"]
    assert got["low"] == pytest.approx(ci.low) and "seeds, then test images" in json.dumps(doc)
