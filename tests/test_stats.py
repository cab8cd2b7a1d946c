"""harness.evaluation.stats: hand-worked metrics, McNemar, bootstrap coverage and paired-test
calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.evaluation import analysis, seeds, stats

CLS = ("a", "b", "c")


def preds(true: list[str], pred: list[str | None], rouge: list[float] | None = None) -> list[dict]:
    rouge = rouge or [0.0] * len(true)
    return [
        {"id": f"s{i}", "label": t, "prediction": p, "rouge_l": r}
        for i, (t, p, r) in enumerate(zip(true, pred, rouge, strict=True))
    ]


# Hand-worked: a: tp 1, support 2, predicted 1 -> P 1, R .5, F1 2/3
#              b: tp 1, support 2, predicted 2 -> P .5, R .5, F1 .5
#              c: tp 1, support 1, predicted 1 -> F1 1; one invalid answer (true b).
HAND = preds(["a", "a", "b", "b", "c"], ["a", "b", "b", None, "c"], [1.0, 0.5, 0.0, 0.0, 0.5])


def test_point_metrics_match_hand_worked_example() -> None:
    m = stats.point_metrics(stats.encode(HAND, CLS))
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["invalid_rate"] == pytest.approx(1 / 5)
    assert m["rouge_l"] == pytest.approx(2.0 / 5)


def test_per_class_and_confusion_match_hand_worked_example() -> None:
    enc = stats.encode(HAND, CLS)
    rows = {r["class"]: r for r in analysis.per_class(enc)}
    assert rows["a"]["precision"] == 1.0 and rows["a"]["recall"] == 0.5
    assert rows["a"]["f1"] == pytest.approx(2 / 3)
    assert (rows["b"]["precision"], rows["b"]["recall"], rows["b"]["f1"]) == (0.5, 0.5, 0.5)
    assert rows["b"]["invalid"] == 1 and rows["b"]["support"] == 2 and rows["b"]["predicted"] == 2
    assert rows["c"]["f1"] == 1.0
    expected = np.array([[1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 1, 0]])  # columns a, b, c, invalid
    np.testing.assert_array_equal(analysis.confusion_matrix(enc), expected)


def test_matches_sklearn_based_metrics_module() -> None:
    from harness.evaluation.metrics import classification_metrics, confusion

    true = [p["label"] for p in HAND]
    pred = [p["prediction"] for p in HAND]
    ref = classification_metrics(true, pred, CLS)
    ours = stats.point_metrics(stats.encode(HAND, CLS))
    for k, v in ref.items():
        assert ours[k] == pytest.approx(v)
    np.testing.assert_array_equal(
        analysis.confusion_matrix(stats.encode(HAND, CLS)), confusion(true, pred, CLS)
    )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(CLS), st.sampled_from([*CLS, None]), st.integers(0, 3)),
        min_size=1,
        max_size=30,
    )
)
def test_weighted_metrics_equal_metrics_of_the_repeated_sample(data) -> None:
    """A bootstrap weight row means "repeat sample i w_i times": check against sklearn."""
    from harness.evaluation.metrics import classification_metrics

    if sum(w for *_, w in data) == 0:
        return
    enc = stats.encode(preds([t for t, _, _ in data], [p for _, p, _ in data]), CLS)
    weights = np.array([[w for *_, w in data]], dtype=float)
    got = {k: float(v[0]) for k, v in stats.weighted_metrics(enc, weights).items()}
    true = [t for t, _, w in data for _ in range(w)]
    pred = [p for _, p, w in data for _ in range(w)]
    ref = classification_metrics(true, pred, CLS)
    for k in ("macro_f1", "accuracy", "invalid_rate"):
        assert got[k] == pytest.approx(ref[k])


def test_mcnemar_exact_and_chi2_hand_worked() -> None:
    # b = 1 (only A right), c = 7 (only B right): p = 2 * (C(8,0) + C(8,1)) / 2^8
    a = [True] * 1 + [False] * 7 + [True] * 5
    b = [False] * 1 + [True] * 7 + [True] * 5
    res = stats.mcnemar(a, b)
    assert (res.b, res.c, res.method) == (1, 7, "exact")
    assert res.p_value == pytest.approx(2 * 9 / 256)
    # b = 10, c = 25: chi2 = (|10 - 25| - 1)^2 / 35 = 5.6, p = P(chi2_1 > 5.6)
    a = [True] * 10 + [False] * 25
    res = stats.mcnemar(a, [not x for x in a])
    assert res.method == "chi2-cc" and res.statistic == pytest.approx(5.6)
    assert res.p_value == pytest.approx(math.erfc(math.sqrt(2.8)))
    assert res.p_value == pytest.approx(0.017961, abs=1e-5)
    assert stats.mcnemar([True, False], [True, False]).p_value == 1.0


def test_mcnemar_agrees_with_scipy() -> None:
    sp = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for _ in range(20):
        a, b = rng.random(60) < 0.6, rng.random(60) < 0.7
        ours = stats.mcnemar(a, b, exact=True)
        ref = (
            sp.binomtest(min(ours.b, ours.c), ours.b + ours.c, 0.5).pvalue if ours.b + ours.c else 1
        )
        assert ours.p_value == pytest.approx(ref)
        chi = stats.mcnemar(a, b, exact=False)
        if chi.b + chi.c:
            assert chi.p_value == pytest.approx(sp.chi2.sf(chi.statistic, 1))


def test_bootstrap_ci_is_seeded_and_brackets_the_estimate() -> None:
    values = np.random.default_rng(0).normal(size=50)
    a = stats.bootstrap_ci(values, seed=3)
    assert a == stats.bootstrap_ci(values, seed=3)
    assert a != stats.bootstrap_ci(values, seed=4)
    assert a.estimate == pytest.approx(values.mean())
    assert a.low < a.estimate < a.high
    assert a.n_resamples == 1000
    # the generic path: a metric of several per-sample arrays
    true = ["a", "b"] * 20
    pred = ["a", "b"] * 15 + ["b", "a"] * 5
    ci = stats.bootstrap_ci(
        (true, pred), lambda t, p: float(np.mean(t == p)), n_resamples=300, seed=0
    )
    assert ci.estimate == pytest.approx(0.75) and ci.low < 0.75 < ci.high


def test_bootstrap_ci_covers_the_true_mean_about_95_percent() -> None:
    """Known distribution: Exponential(1) (skewed) draws of n = 100, true mean 1."""
    rng = np.random.default_rng(2024)
    reps = 400
    hits = 0
    for i in range(reps):
        ci = stats.bootstrap_ci(rng.exponential(1.0, size=100), seed=i)
        hits += ci.low <= 1.0 <= ci.high
    coverage = hits / reps
    assert 0.91 <= coverage <= 0.98, coverage


def test_accuracy_interval_covers_the_true_accuracy_about_95_percent() -> None:
    rng = np.random.default_rng(7)
    reps, n, p_true = 300, 150, 0.7
    hits = 0
    for i in range(reps):
        labels = list(rng.choice(CLS, size=n))
        pred = [t if rng.random() < p_true else None for t in labels]
        ci = stats.metric_intervals(stats.encode(preds(labels, pred), CLS), seed=i)["accuracy"]
        hits += ci.low <= p_true <= ci.high
    assert 0.91 <= hits / reps <= 0.98, hits / reps


def test_paired_bootstrap_identical_and_clearly_different() -> None:
    rng = np.random.default_rng(0)
    labels = list(rng.choice(CLS, size=120))
    weak = stats.encode(preds(labels, [t if rng.random() < 0.4 else None for t in labels]), CLS)
    same = stats.paired_bootstrap(weak, weak)
    assert same["accuracy"].estimate == 0 and same["accuracy"].p_value == 1.0
    strong = stats.encode(preds(labels, [t if rng.random() < 0.9 else None for t in labels]), CLS)
    diff = stats.paired_bootstrap(weak, strong)
    assert diff["accuracy"].estimate > 0.3 and diff["accuracy"].p_value < 0.01
    assert diff["macro_f1"].low > 0 and diff["accuracy"].n == 120


def test_paired_bootstrap_uses_only_shared_images_and_checks_labels() -> None:
    a = stats.encode(HAND, CLS)
    b = stats.encode(HAND[1:] + [{"id": "extra", "label": "a", "prediction": "a"}], CLS)
    assert stats.paired_bootstrap(a, b)["accuracy"].n == 4
    bad = stats.encode([{**p, "label": "c"} for p in HAND], CLS)
    with pytest.raises(ValueError, match="different labels"):
        stats.paired_bootstrap(a, bad)


def test_paired_bootstrap_p_values_are_calibrated_under_the_null() -> None:
    """Two equally good, independent configurations: about 5% of p-values below 0.05."""
    rng = np.random.default_rng(11)
    reps, rejections = 200, 0
    for i in range(reps):
        labels = list(rng.choice(CLS, size=150))
        a = [t if rng.random() < 0.6 else None for t in labels]
        b = [t if rng.random() < 0.6 else None for t in labels]
        res = stats.paired_bootstrap(
            stats.encode(preds(labels, a), CLS),
            stats.encode(preds(labels, b), CLS),
            metrics=("accuracy",),
            n_resamples=500,
            seed=i,
        )
        rejections += res["accuracy"].p_value < 0.05
    assert 0.01 <= rejections / reps <= 0.10


def test_seed_summary_and_aggregation() -> None:
    s = seeds.seed_summary([0.5, 0.7, 0.6])
    assert s.mean == pytest.approx(0.6) and s.sd == pytest.approx(0.1) and s.n == 3
    assert seeds.seed_summary([0.4]).sd == 0.0
    rows = [
        {"config_id": f"rslora+none+template@s{s}", "metrics": {"macro_f1": v}}
        for s, v in [(1, 0.5), (2, 0.7), (3, 0.6)]
    ] + [{"config_id": "lora+none+template@s1", "metrics": {"macro_f1": 0.2}}]
    agg = seeds.aggregate_seeds(rows, metrics=("macro_f1",))
    assert agg["rslora+none+template"]["macro_f1"].mean == pytest.approx(0.6)
    assert agg["lora+none+template"]["macro_f1"].n == 1
    assert seeds.recipe_id("base") == "base"
