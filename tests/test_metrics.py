"""harness/evaluation/metrics.py: Macro-F1, accuracy, invalid rate, confusion, ROUGE-L, majority
baseline."""

from __future__ import annotations

import numpy as np
import pytest

from harness.evaluation.metrics import (
    INVALID,
    classification_metrics,
    confusion,
    majority_baseline,
    rouge_l,
)

ABC = ["A", "B", "C"]


def test_three_class_macro_f1_with_an_invalid_prediction_by_hand():
    y_true = ["A", "A", "B", "B", "C", "C"]
    y_pred = ["A", None, "B", "C", "C", "C"]
    # A: TP=1 FP=0 FN=1 (the invalid one) -> P=1   R=1/2 F1=2/3
    # B: TP=1 FP=0 FN=1 (predicted C)     -> P=1   R=1/2 F1=2/3
    # C: TP=2 FP=1 (the B) FN=0           -> P=2/3 R=1   F1=2*(2/3)/(5/3)=4/5
    # The invalid answer is a false negative for A and a false positive for nobody.
    # Macro-F1 = (2/3 + 2/3 + 4/5) / 3 = 32/45 = 0.7111...
    m = classification_metrics(y_true, y_pred, ABC)
    assert m["macro_f1"] == pytest.approx(32 / 45)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["invalid_rate"] == pytest.approx(1 / 6)


def test_invalid_is_wrong_but_adds_no_false_positive():
    y_true = ["A", "A", "B", "B", "C", "C"]
    invalid = classification_metrics(y_true, ["A", None, "B", "C", "C", "C"], ABC)
    # The same answer as a wrong class B instead: B also gains a false positive.
    # B: TP=1 FP=1 FN=1 -> F1=1/2; Macro-F1 = (2/3 + 1/2 + 4/5) / 3 = 59/90
    wrong = classification_metrics(y_true, ["A", "B", "B", "C", "C", "C"], ABC)
    assert wrong["macro_f1"] == pytest.approx(59 / 90)
    assert invalid["macro_f1"] > wrong["macro_f1"]
    assert invalid["accuracy"] == wrong["accuracy"]
    assert (invalid["invalid_rate"], wrong["invalid_rate"]) == (pytest.approx(1 / 6), 0.0)
    # And invalid is strictly worse than the right answer.
    right = classification_metrics(y_true, ["A", "A", "B", "C", "C", "C"], ABC)
    assert right["macro_f1"] > invalid["macro_f1"]


def test_all_correct_and_all_invalid():
    y = ["A", "B", "C", "A"]
    assert classification_metrics(y, y, ABC) == {
        "macro_f1": 1.0,
        "accuracy": 1.0,
        "invalid_rate": 0.0,
    }
    assert classification_metrics(y, [None] * 4, ABC) == {
        "macro_f1": 0.0,
        "accuracy": 0.0,
        "invalid_rate": 1.0,
    }


def test_an_invalid_prediction_never_matches_the_true_label():
    m = classification_metrics(["A", "B"], [None, "B"], ["A", "B"])
    assert m["accuracy"] == 0.5


def test_empty_inputs_and_length_mismatch():
    assert classification_metrics([], [], ABC) == {
        "macro_f1": 0.0,
        "accuracy": 0.0,
        "invalid_rate": 0.0,
    }
    with pytest.raises(ValueError, match="differ in length"):
        classification_metrics(["A"], [], ABC)


def test_metrics_are_plain_floats():
    m = classification_metrics(["A", "B"], ["A", None], ABC)
    assert all(type(v) is float for v in m.values())


def test_confusion_has_an_invalid_column():
    y_true = ["A", "A", "B", "B", "C", "C"]
    y_pred = ["A", None, "B", "C", "C", None]
    cm = confusion(y_true, y_pred, ABC)
    assert cm.shape == (3, 4)  # rows: A B C; columns: A B C invalid
    expected = np.array(
        [
            [1, 0, 0, 1],
            [0, 1, 1, 0],
            [0, 0, 1, 1],
        ]
    )
    np.testing.assert_array_equal(cm, expected)
    assert cm.sum() == len(y_true)
    assert INVALID == "invalid"


def test_rouge_l_identical_disjoint_empty():
    text = "The lungs are clear without focal consolidation."
    assert rouge_l(text, text) == pytest.approx(1.0)
    assert rouge_l("cardiomegaly present", "lungs are clear") == 0.0
    assert rouge_l("", text) == 0.0
    assert rouge_l(text, "") == 0.0
    assert rouge_l("   \n", text) == 0.0
    assert rouge_l("", "") == 0.0


def test_rouge_l_stems_and_ignores_case():
    assert rouge_l("lungs", "lung") == pytest.approx(1.0)
    assert rouge_l("Opacities in both LUNGS", "opacity in both lung") == pytest.approx(1.0)


def test_rouge_l_partial_overlap_by_hand():
    # LCS("clear lungs today", "the lungs are clear") = 1 token in order ("clear" or "lungs")
    # P = 1/3, R = 1/4, F = 2PR/(P+R) = (2/12)/(7/12) = 2/7
    assert rouge_l("clear lungs today", "the lungs are clear") == pytest.approx(2 / 7)


def test_majority_baseline_by_hand():
    train = ["A", "A", "B", "C", "A"]
    y_true = ["A", "B", "C"]
    # Predict A everywhere: A P=1/3 R=1 F1=1/2; B and C F1=0 -> Macro-F1 = 1/6; accuracy 1/3
    m = majority_baseline(train, y_true, ABC)
    assert m["macro_f1"] == pytest.approx(1 / 6)
    assert m["accuracy"] == pytest.approx(1 / 3)
    assert m["invalid_rate"] == 0.0


def test_majority_baseline_uses_train_not_test_labels():
    m = majority_baseline(["C", "C", "A"], ["A", "A", "A", "C"], ABC)
    assert m["accuracy"] == pytest.approx(1 / 4)


def test_metric_plugin_directions():
    from harness.plugins import make_registry

    reg = make_registry()
    info = {
        n: reg.get("metric", n).cls for n in ("macro_f1", "accuracy", "rouge_l", "invalid_rate")
    }
    assert not info["invalid_rate"].higher_is_better
    assert all(info[k].higher_is_better for k in ("macro_f1", "accuracy", "rouge_l"))
