"""Ways a table could be silently wrong: each test here failed before its fix."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from harness.core.errors import DataError, OptionError
from harness.data.sample import Sample
from harness.evaluation import stats
from harness.evaluation.generate import score
from harness.exports import analyse, caveats, leaderboard_markdown
from harness.exports.compare import match_pairs
from harness.plan import validate
from harness.plugins import make_registry
from harness.spec import BenchSpec

pytestmark = pytest.mark.usefixtures("cached_distributions")

CLASSES = ("Normal", "Pneumonia")


@pytest.fixture(scope="module")
def registry():
    return make_registry()


# ---------------------------------------------------------------- seeds


def test_trainer_seed_option_with_seeds_is_an_error(registry, tmp_path):
    spec = BenchSpec(
        trainers=("rslora",), seeds=(1, 2, 3), options={"trainer": {"seed": 7}}, out=tmp_path / "o"
    )
    with pytest.raises(OptionError, match="trainer.seed.*--seeds"):
        validate(spec, registry)


def test_cli_trainer_seed_option_exits_2(tmp_path):
    from harness.cli import main

    out = tmp_path / "o"
    args = ["bench", "--seeds", "1,2", "-o", "trainer.seed=5", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "trainer.seed" in result.output and not out.exists()


# ---------------------------------------------------------------- unknown options


def test_option_no_grid_component_declares_is_an_error_with_base_only(registry, tmp_path):
    spec = BenchSpec(trainers=("base",), options={"trainer": {"rr": 3}}, out=tmp_path / "o")
    with pytest.raises(OptionError, match=r"trainer\.rr"):
        validate(spec, registry)


def test_option_declared_by_one_trainer_of_the_grid_is_accepted(registry, tmp_path):
    spec = BenchSpec(trainers=("rslora",), options={"trainer": {"r": 8}}, out=tmp_path / "o")
    validate(spec, registry)  # base ignores r, rslora declares it


# ---------------------------------------------------------------- ROUGE-L coverage


def _samples(reports: list[str]) -> list[Sample]:
    img = Image.new("L", (8, 8))
    return [Sample(f"s{i}", CLASSES[i % 2], img, report=r) for i, r in enumerate(reports)]


def test_rouge_l_averages_only_images_with_a_reference():
    samples = _samples(["clear lungs no effusion", "", "", ""])
    answers = [f"Class: {s.label}\nExplanation: clear lungs no effusion" for s in samples]
    ev = score(samples, answers, CLASSES)
    assert ev.metrics["rouge_l"] == pytest.approx(1.0)
    assert ev.metrics["rouge_l_n"] == 1
    assert [p["rouge_l"] for p in ev.predictions][1:] == [None, None, None]
    enc = stats.encode(ev.predictions, CLASSES)
    assert stats.point_metrics(enc)["rouge_l"] == pytest.approx(1.0)
    ci = stats.metric_intervals(enc, n_resamples=200)["rouge_l"]
    assert ci.low == pytest.approx(1.0) and ci.high == pytest.approx(1.0)


def _row(cid: str, trainer: str, preds: list[dict], seed: int = 0) -> dict:
    metrics = stats.point_metrics(stats.encode(preds, CLASSES))
    n_ref = sum(p.get("rouge_l") is not None for p in preds)
    metrics.pop("rouge_l") if not n_ref else metrics.update(rouge_l_n=n_ref)
    return {
        "config_id": cid,
        "trainer": trainer,
        "augmenter": "none",
        "synthesizer": "none" if trainer == "base" else "template",
        "seed": seed,
        "options": {},
        "resolved": {},
        "metrics": metrics,
        "n_test": len(preds),
        "trainable_params": 0,
        "train_seconds": 0.0,
        "predictions": preds,
    }


def _preds(labels: list[str], guess: list[str | None], rouge: list[float | None]) -> list[dict]:
    return [
        {
            "id": f"img{i}",
            "label": lab,
            "prediction": g,
            "valid": g is not None,
            "invalid_reason": None if g else "no Class: line",
            "rouge_l": r,
            "answer": "",
        }
        for i, (lab, g, r) in enumerate(zip(labels, guess, rouge, strict=True))
    ]


PROV = {"benchmark": {"name": "b", "fingerprint": "f", "classes": list(CLASSES), "sizes": {}}}


def test_leaderboard_shows_reference_coverage():
    labels = ["Normal", "Pneumonia"] * 2
    rows = [_row("base", "base", _preds(labels, labels, [1.0, None, None, None]))]
    text = leaderboard_markdown(rows, PROV, {})
    assert "1/4" in text


# ---------------------------------------------------------------- caveats


def test_caveats_flag_a_base_that_never_answered_and_rows_below_majority():
    labels = ["Normal"] * 6 + ["Pneumonia"] * 2
    rows = [
        _row("base", "base", _preds(labels, [None] * 8, [None] * 8)),
        _row("lora+none+template@s0", "lora", _preds(labels, ["Pneumonia"] * 8, [None] * 8)),
    ]
    maj = {"macro_f1": 0.43, "accuracy": 0.75, "invalid_rate": 0.0}
    an = analyse(rows, PROV)
    text = " ".join(caveats(rows, PROV, an, {"majority": maj}))
    assert "base row answered" in text and "invalid" in text
    assert "lora+none+template@s0" in text and "majority" in text


# ---------------------------------------------------------------- compare


def test_compare_without_pairs_refuses_runs_sharing_only_base():
    labels = ["Normal", "Pneumonia"]
    p = _preds(labels, labels, [None, None])
    a = [_row("base", "base", p), _row("rslora+none+template@s0", "rslora", p)]
    b = [_row("base", "base", p), _row("lora+none+template@s0", "lora", p)]
    with pytest.raises(DataError, match="--pair rslora\\+none\\+template@s0=lora"):
        match_pairs(a, b)
    assert len(match_pairs(a, b, [("base", "base")])) == 1  # explicit pairs still work


def test_rouge_coverage_is_recorded_in_results_json(tmp_path):
    import json

    from harness.exports import write_all

    labels = ["Normal", "Pneumonia"] * 2
    rows = [_row("base", "base", _preds(labels, labels, [1.0, None, None, None]))]
    write_all(tmp_path, rows, PROV, {}, plots=False, n_resamples=100)
    doc = json.loads((tmp_path / "results.json").read_text())
    cov = doc["results"][0]["coverage"]["rouge_l"]
    assert cov == {"n": 1, "of": 4}
    assert np.isclose(doc["results"][0]["metrics"]["rouge_l"], 1.0)
