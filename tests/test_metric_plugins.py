"""The built-in metric plugins: registration and known values."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from harness.components import Metric, MetricItem
from harness.core.errors import BackendUnavailableError, PluginError
from harness.plugins import make_registry
from harness.registry import Registry

CLASSES = ("a", "b", "c")
HYP = ["the heart is enlarged", "no effusion seen here", "lungs are clear"]
REF = ["the heart is mildly enlarged", "no pleural effusion seen", "the lungs are clear"]


def items(hyps=HYP, refs=REF, labels=None, preds=None):
    labels = labels or ["a"] * len(hyps)
    preds = preds or labels
    return [
        MetricItem(str(k), t, p, h, r)
        for k, (h, r, t, p) in enumerate(zip(hyps, refs, labels, preds, strict=True))
    ]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return make_registry()


def metric(registry: Registry, name: str, **options) -> Metric:
    return registry.create("metric", name, options)


def test_every_builtin_metric_is_registered_with_its_metadata(registry):
    names = set(registry.names("metric"))
    assert {"macro_f1", "accuracy", "invalid_rate", "rouge_l"} <= names
    assert {"bleu1", "bleu2", "bleu3", "bleu4", "chrf", "cider", "meteor"} <= names
    for name in names:
        m = metric(registry, name)
        assert m.title and m.implementation and m.tokenisation and m.version()
    assert not metric(registry, "invalid_rate").higher_is_better
    assert metric(registry, "bleu4").corpus_level and metric(registry, "bleu4").needs_reference
    assert not metric(registry, "macro_f1").needs_reference


def test_a_metric_must_subclass_metric():
    reg = Registry()
    with pytest.raises(PluginError, match="not a subclass"):
        reg.add("metric", dict, "x", "d", "1")


def test_classification_plugins_match_scikit_learn(registry):
    from harness.evaluation.metrics import classification_metrics

    rng = np.random.default_rng(3)
    truth = [CLASSES[i] for i in rng.integers(0, 3, 60)]
    pred = [None if k % 7 == 0 else CLASSES[i] for k, i in enumerate(rng.integers(0, 3, 60))]
    its = [
        MetricItem(str(k), t, p, "", "") for k, (t, p) in enumerate(zip(truth, pred, strict=True))
    ]
    want = classification_metrics(truth, pred, CLASSES)
    for name in ("macro_f1", "accuracy", "invalid_rate"):
        assert metric(registry, name).value(its, CLASSES) == pytest.approx(want[name], abs=1e-12)


def test_macro_f1_known_value(registry):
    # a: tp 1 of support 2, predicted 1 -> F1 2/3; b: tp 1, support 1, predicted 2 -> 2/3;
    # c: support 0, predicted 0 -> 0 (zero division)
    its = items(["", "", ""], ["", "", ""], ["a", "a", "b"], ["a", "b", "b"])
    assert metric(registry, "macro_f1").value(its, CLASSES) == pytest.approx((2 / 3 + 2 / 3) / 3)


def test_rouge_l_averages_only_images_with_a_reference(registry):
    its = items(["same words", "other text"], ["same words", ""])
    m = metric(registry, "rouge_l")
    assert m.value(its, CLASSES) == pytest.approx(1.0)
    assert m.statistics(its, CLASSES)[:, 1].tolist() == [1.0, 0.0]
    assert math.isnan(m.value(items(["x"], [""]), CLASSES))


def test_bleu_and_chrf_equal_sacrebleu_corpus_scores(registry):
    import sacrebleu

    its = items() + items(["unscored"], [""])  # an image without reference takes no part
    for n in (1, 2, 3, 4):
        want = sacrebleu.BLEU(max_ngram_order=n, lowercase=True).corpus_score(HYP, [REF])
        assert metric(registry, f"bleu{n}").value(its, CLASSES) == pytest.approx(want.score / 100)
    want = sacrebleu.CHRF(lowercase=True).corpus_score(HYP, [REF]).score / 100
    assert metric(registry, "chrf").value(its, CLASSES) == pytest.approx(want)


def test_bleu4_hand_computed():
    # hypothesis == reference, 5 tokens: every precision is 1 and the brevity penalty 1.
    from cxr_harness_plugins.metrics.sacrebleu_metrics import BLEU

    its = items(["a b c d e"], ["a b c d e"])
    assert BLEU[3]().value(its, CLASSES) == pytest.approx(1.0)
    # 2 of 4 unigrams, 0 bigrams matched (exp smoothing), shorter than the reference
    its = items(["a x b y"], ["a b c d e"])
    bp = math.exp(1 - 5 / 4)
    assert BLEU[0]().value(its, CLASSES) == pytest.approx(bp * 0.5)


def test_bleu_options_are_strict(registry):
    from harness.core.errors import OptionError

    with pytest.raises(OptionError, match="metric.tokenise"):
        metric(registry, "bleu4", tokenise="13a")
    assert "lower-cased" in metric(registry, "bleu4").tokenisation
    assert "lower-cased" not in metric(registry, "bleu4", lowercase=False).tokenisation


def test_cider_d_hand_computed_and_equal_to_pycocoevalcap(registry):
    # Two images, hypothesis == reference, no n-gram shared across images: every n-gram has
    # document frequency 1 and IDF log(2), each n-gram order present gives cosine 1, an order
    # the text is too short for gives 0, no length penalty: CIDEr-D = 10 * (orders present) / 4.
    its = items(["left effusion", "heart normal size"], ["left effusion", "heart normal size"])
    m = metric(registry, "cider")
    assert m.statistics(its, CLASSES)[:, 0].tolist() == pytest.approx([5.0, 7.5])
    its = items(["a b c d", "e f g h i"], ["a b c d", "e f g h i"])
    assert m.statistics(its, CLASSES)[:, 0].tolist() == pytest.approx([10.0, 10.0])
    from pycocoevalcap.cider.cider import Cider

    gts = {
        str(k): [r]
        for k, r in enumerate(
            ["the heart is mildly enlarged", "no pleural effusion seen", "the lungs are clear"]
        )
    }
    res = {str(k): [h] for k, h in enumerate(HYP)}
    want, _ = Cider().compute_score(gts, res)
    assert m.value(items(), CLASSES) == pytest.approx(want)


def test_cider_d_length_penalty_hand_computed(registry):
    # Image 1's hypothesis repeats its reference's one unigram; unigram tf-idf vectors are
    # parallel (cosine 1) and clipped, higher orders give 0; the Gaussian length penalty is
    # exp(-(2-1)^2 / (2 * 36)). Image 2 is exact with unigrams and bigrams only: 10 * 2 / 4.
    its = items(["pneumothorax pneumothorax", "heart normal"], ["pneumothorax", "heart normal"])
    got = metric(registry, "cider").statistics(its, CLASSES)[:, 0]
    # clipped numerator min(2w, w) * w = w^2 vs norms 2w and w: 1/2 of unigram, ×10 / 4 orders
    assert got[0] == pytest.approx(10 * 0.5 * math.exp(-1 / 72) / 4)
    assert got[1] == pytest.approx(5.0)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs a Java runtime")
def test_meteor_scores_identity_high_and_disjoint_zero(registry):
    its = items(["the heart is enlarged", "apple", ""], ["the heart is enlarged", "lung", "x"])
    got = metric(registry, "meteor").statistics(its, CLASSES)[:, 0]
    assert got[0] > 0.9 and got[1] == 0.0 and got[2] == 0.0


def test_meteor_without_java_names_the_runtime_and_package(registry, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(BackendUnavailableError, match="default-jre-headless"):
        metric(registry, "meteor").preflight()


def test_finding_f1_is_the_macro_over_findings_with_negation(registry):
    # image 1: effusion in both (tp); the explanation's "no pneumothorax" is not a finding.
    # image 2: reference cardiomegaly missed (fn), explanation states pneumothorax (fp).
    # image 3: no reference: left out. Macro over occurring findings: effusion 1, cardiomegaly
    # 0, pneumothorax 0 -> 1/3.
    its = items(
        ["Small left pleural effusion. No pneumothorax.", "Right pneumothorax.", "Effusion."],
        ["Left pleural effusion.", "Cardiomegaly.", ""],
    )
    m = metric(registry, "finding_f1")
    assert m.value(its, CLASSES) == pytest.approx(1 / 3)
    assert m.needs_reference and m.corpus_level
    assert m.value(its[:1], CLASSES) == pytest.approx(1.0)
    assert math.isnan(m.value(its[2:], CLASSES))


def test_label_consistency_over_valid_answers(registry):
    from harness.text.ontology import default_ontology

    onto = default_ontology()
    normal = next(c for c in onto.classes if not onto.class_findings(c))
    effusion = next(c for c in onto.classes if "pleural_effusion" in onto.class_findings(c))
    its = [
        MetricItem("a", normal, normal, "No pleural effusion or pneumothorax.", ""),  # consistent
        MetricItem("b", normal, normal, "Large right pleural effusion.", ""),  # not
        MetricItem("c", effusion, effusion, "Left pleural effusion.", ""),  # consistent
        MetricItem("d", effusion, None, "Left pleural effusion.", ""),  # invalid: left out
    ]
    assert metric(registry, "label_consistency").value(its, list(onto.classes)) == pytest.approx(
        2 / 3
    )
