"""harness.text.negation / findings / finding_scores: the finding extractor and its scores."""

from __future__ import annotations

import numpy as np
import pytest

from harness.core.errors import OptionError, SynthesisError
from harness.text.audit import audit_texts, foreign_mentions
from harness.text.finding_scores import (
    finding_count_rows,
    finding_f1,
    finding_f1_scores,
    finding_f1_table,
    label_consistency,
    label_consistency_scores,
    macro_finding_f1,
)
from harness.text.findings import extract_findings, finding_statuses, positive_findings
from harness.text.negation import Status, TermMatcher, assess
from harness.text.ontology import load_ontology

P, N, U = Status.POSITIVE, Status.NEGATED, Status.UNCERTAIN


def st(text: str) -> dict[str, Status]:
    return finding_statuses(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("No pneumothorax or pleural effusion.", {"pneumothorax": N, "pleural_effusion": N}),
        ("There is no evidence of pneumothorax.", {"pneumothorax": N}),
        ("Negative for consolidation.", {"consolidation": N}),
        ("Lungs are clear without effusion.", {"pleural_effusion": N}),
        ("Pleural effusion is not seen.", {"pleural_effusion": N}),
        ("The previously seen pneumothorax has resolved.", {"pneumothorax": N}),
        (
            "No focal airspace consolidation, pleural effusion, or pneumothorax.",
            {"consolidation": N, "pleural_effusion": N, "pneumothorax": N},
        ),
    ],
)
def test_negation_before_and_after(text: str, expected: dict[str, Status]) -> None:
    assert st(text) == expected


@pytest.mark.parametrize(
    ("text", "finding"),
    [
        ("Cannot exclude a small effusion.", "pleural_effusion"),
        ("A small pneumothorax cannot be excluded.", "pneumothorax"),
        ("Possible right lower lobe pneumonia.", "pneumonia"),
        ("Opacity which may represent pneumonia.", "pneumonia"),
        ("Airspace disease concerning for pneumonia.", "pneumonia"),
        ("Hyperexpanded lungs suggesting emphysema.", "emphysema"),
        ("Atelectasis versus consolidation.", "consolidation"),
    ],
)
def test_uncertainty(text: str, finding: str) -> None:
    assert st(text)[finding] is U


def test_probable_and_consistent_with_are_positive() -> None:
    assert st("Probable small left effusion.") == {"pleural_effusion": P}
    assert st("Findings consistent with pneumonia.") == {"pneumonia": P}


def test_scope_ends_at_terminators_and_clauses() -> None:
    assert st("No effusion, but a small pneumothorax.") == {
        "pleural_effusion": N,
        "pneumothorax": P,
    }
    assert st("No effusion; there is a small pneumothorax.")["pneumothorax"] is P
    assert st("No pneumonia. Cardiomegaly.") == {"pneumonia": N, "cardiomegaly": P}


def test_scope_is_bounded_in_words() -> None:
    far = "No " + "very " * 20 + "pneumothorax."
    assert st(far) == {"pneumothorax": P}


def test_pseudo_negations_assert() -> None:
    assert st("No change in the cardiomegaly.") == {"cardiomegaly": P}
    assert st("No increase in the small right pleural effusion.") == {"pleural_effusion": P}
    assert st("No interval change of the emphysema.") == {"emphysema": P}


def test_multi_sentence_report_folds_to_positive_over_uncertain_over_negated() -> None:
    report = "No right effusion. Small left effusion. Possible pneumonia. No pneumothorax."
    assert st(report) == {"pleural_effusion": P, "pneumonia": U, "pneumothorax": N}
    assert positive_findings(report) == {"pleural_effusion"}
    mentions = extract_findings(report)
    assert [m.status for m in mentions] == [N, P, U, N]
    first = mentions[0]
    assert report[first.span[0] : first.span[1]] == first.term == "effusion"
    assert first.trigger == "no"


def test_longest_term_wins_and_patterns_and_plurals() -> None:
    assert st("Small pericardial effusion.") == {"pericardial_effusion": P}
    assert st("Subcutaneous emphysema in the neck.") == {"subcutaneous_emphysema": P}
    assert st("The heart is mildly enlarged.") == {"cardiomegaly": P}
    assert st("Bilateral pleural effusions.") == {"pleural_effusion": P}
    assert st("The heart is not enlarged.") == {}  # no pattern allows a negation inside


def test_whole_word_matching() -> None:
    assert st("Bronchopneumonia.") == {"pneumonia": P}  # its own term, not "pneumonia"
    matcher = TermMatcher({"pn": ["pneumonia"]})
    assert assess("Bronchopneumonia and non-pneumonia.", matcher) == []


def test_trigger_inside_a_term_is_part_of_the_term() -> None:
    matcher = TermMatcher({"normal": ["no acute cardiopulmonary abnormality"]})
    (mention,) = assess("No acute cardiopulmonary abnormality.", matcher)
    assert mention.status is P and mention.trigger is None


def test_audit_counts_only_positive_foreign_mentions_and_hedged_apart() -> None:
    kw = {"Normal": {"normal study"}, "B": {"pneumothorax"}, "C": {"pleural effusion"}}
    texts = {
        "Normal": [
            "No pneumothorax or pleural effusion.",
            "A small pneumothorax.",
            "A pleural effusion cannot be excluded.",
            "Clear lungs.",
        ]
    }
    row = audit_texts(texts, kw)["Normal"]
    assert row["leaky"] == 1 and row["leak_share"] == 0.25
    assert row["leak_keywords"] == {"pneumothorax": 1}
    assert row["uncertain"] == 1 and row["uncertain_keywords"] == {"pleural effusion": 1}
    assert row["negated"] == 1
    found = foreign_mentions("No pneumothorax; possible pleural effusion.", "Normal", kw)
    assert (found.positive, found.uncertain, found.negated) == (
        [],
        ["pleural effusion"],
        ["pneumothorax"],
    )


def test_finding_f1_per_sample_and_table() -> None:
    same = finding_f1("Small left effusion. No pneumothorax.", "Left pleural effusion.")
    assert same.f1 == 1.0
    half = finding_f1("Effusion and cardiomegaly.", "Effusion.")
    assert half.f1 == pytest.approx(2 / 3)
    assert finding_f1("Clear lungs.", "No effusion.").f1 == 1.0  # neither states a finding
    assert finding_f1("Possible effusion.", "Effusion.").f1 == 0.0  # hedged is not positive
    assert finding_f1_scores(["Effusion.", "Effusion."], ["Effusion.", None]) == [1.0, None]
    table = finding_f1_table([same, half])
    by = {f.finding: f for f in table.findings}
    assert (by["pleural_effusion"].tp, by["cardiomegaly"].fp) == (2, 1)
    assert by["cardiomegaly"].f1 == 0.0 and by["pleural_effusion"].f1 == 1.0
    assert table.macro_f1 == 0.5 and table.samples == 2
    assert finding_f1_table([]).macro_f1 is None
    keys = ["cardiomegaly", "pleural_effusion", "pneumothorax"]
    rows = finding_count_rows([same, half, None], keys)
    assert rows.shape == (3, 9) and not rows[2].any()
    assert macro_finding_f1(rows.sum(axis=0, keepdims=True))[0] == pytest.approx(0.5)
    # a resample that draws `same` twice: only the effusion occurs, F1 1.0; none drawn: NaN
    weighted = np.array([[2.0, 0.0, 1.0], [0.0, 0.0, 3.0]]) @ rows
    assert macro_finding_f1(weighted)[0] == 1.0 and np.isnan(macro_finding_f1(weighted)[1])
    with pytest.raises(ValueError):
        finding_f1_scores(["a"], [])


def test_label_consistency() -> None:
    ok = label_consistency("No pneumothorax or pleural effusion. Clear lungs.", "Normal")
    assert ok.consistent and ok.score == 1.0
    bad = label_consistency("Right pleural effusion.", "Normal")
    assert not bad.consistent and bad.foreign == {"pleural_effusion"}
    hd = label_consistency("Right pleural effusion; no pneumothorax.", "Higher_Density")
    assert hd.consistent and hd.supporting == {"pleural_effusion"}
    wrong = label_consistency("Large right pneumothorax.", "Higher_Density")
    assert not wrong.consistent and wrong.foreign == {"pneumothorax"}
    assert label_consistency_scores(
        ["Emphysema.", None, "Emphysema."], ["Obstructive", "Normal", None]
    ) == [1.0, None, None]
    with pytest.raises(SynthesisError):
        label_consistency("Effusion.", "No_Such_Class")


def test_user_ontology_findings(tmp_path) -> None:
    path = tmp_path / "onto.toml"
    path.write_text('[classes]\n[findings.x]\nname = "x"\nterms = ["zebra sign"]\nclasses = []\n')
    onto = load_ontology(path)
    assert set(onto.findings) == {"x"}
    assert positive_findings("A zebra sign. No effusion.", onto) == {"x"}
    path.write_text('[classes]\n[findings.x]\nname = "x"\npatterns = ["(unclosed"]\n')
    with pytest.raises(OptionError, match="bad regex"):
        load_ontology(path)
