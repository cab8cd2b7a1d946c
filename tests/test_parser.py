"""harness/evaluation/parser.py: the strict Class:/Explanation: parser, by hand and by property."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.data.labels import ALL_CLASSES, PHANTOM8_CLASSES
from harness.evaluation.parser import ALIASES, normalise, parse_answer

CLASSES = list(PHANTOM8_CLASSES)
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- hand cases ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, label",
    [
        ("Class: Normal\nExplanation: Clear lungs.", "Normal"),
        ("class: normal", "Normal"),
        ("CLASS : LOWER-DENSITY\nExplanation: x", "Lower_Density"),
        (
            "  Class:   inflammatory pneumonia  \nExplanation: consolidation",
            "Inflammatory_Pneumonia",
        ),
        ("Class: **Higher_Density**.", "Higher_Density"),
        ("Class: 'Obstructive'", "Obstructive"),
        ("Some preamble.\nClass: Chest changes\nExplanation: x", "Chest_Changes"),
        ("Class: Mediastinal_Changes\r\nExplanation: widened", "Mediastinal_Changes"),
        ("Class: degenerative-infectious", "Degenerative_Infectious"),
    ],
)
def test_hand_cases_valid(text, label):
    parsed = parse_answer(text, CLASSES)
    assert parsed.label == label
    assert parsed.valid and parsed.reason == ""


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "no 'Class:' line"),
        ("Explanation: the lungs look Normal.", "no 'Class:' line"),
        ("Normal", "no 'Class:' line"),
        ("The class is Normal", "no 'Class:' line"),
        ("Classification: Normal", "no 'Class:' line"),
        ("Subclass: Normal", "no 'Class:' line"),
        ("Class: Normal, Lower_Density", "several"),
        ("Class: " + " | ".join(CLASSES) + "\nExplanation: x", "several"),
        ("Class: one of [" + ", ".join(CLASSES) + "]", "several"),
        ("Class: Normal or Pneumonia", "several"),  # an alias counts as naming its class
        ("Class: Atelectasis", "unknown class"),
        ("Class: Encapsulated_Lesions", "unknown class"),  # not in this benchmark's classes
        ("Class: Normalish", "unknown class"),
        ("Class: Normal (probably)", "unknown class"),
    ],
)
def test_hand_cases_invalid(text, reason):
    parsed = parse_answer(text, CLASSES)
    assert parsed.label is None and not parsed.valid
    assert reason in parsed.reason
    assert parsed.reason


def test_empty_class_line_reason():
    parsed = parse_answer("Class:", CLASSES)
    assert parsed.label is None and parsed.reason == "empty 'Class:' line"
    parsed = parse_answer("Class: ...", CLASSES)
    assert parsed.label is None and parsed.reason == "empty 'Class:' line"


def test_empty_class_line_does_not_read_the_next_line():
    parsed = parse_answer("Class:\nNormal\nExplanation: clear lungs", CLASSES)
    assert parsed.label is None
    assert parsed.reason == "empty 'Class:' line"
    parsed = parse_answer("Class:  \nExplanation: Normal", CLASSES)
    assert parsed.reason == "empty 'Class:' line"


def test_only_the_first_class_line_counts():
    text = "Class: Obstructive\nExplanation: x\nClass: Normal"
    assert parse_answer(text, CLASSES).label == "Obstructive"


def test_label_comes_only_from_the_class_line():
    text = (
        "Class: Lower_Density\n"
        "Explanation: Not Normal; no Inflammatory_Pneumonia or Higher_Density is seen."
    )
    parsed = parse_answer(text, CLASSES)
    assert parsed.label == "Lower_Density"
    assert parsed.explanation.startswith("Not Normal;")


def test_explanation_is_extracted_multiline_and_stripped():
    text = "Class: Normal\nExplanation:   Clear lungs.\nNo effusion.  \n"
    parsed = parse_answer(text, CLASSES)
    assert parsed.explanation == "Clear lungs.\nNo effusion."


def test_explanation_kept_for_invalid_answers():
    parsed = parse_answer("Class: ???\nexplanation: hazy", CLASSES)
    assert parsed.label is None and parsed.explanation == "hazy"


def test_missing_explanation_is_empty():
    assert parse_answer("Class: Normal", CLASSES).explanation == ""


@pytest.mark.parametrize("alias, canonical", sorted(ALIASES.items()))
def test_documented_aliases_map_to_their_class(alias, canonical):
    classes = list(ALL_CLASSES)
    assert canonical in classes
    assert alias == normalise(alias), "ALIASES keys must already be normalised"
    assert parse_answer(f"Class: {alias.title()}\nExplanation: x", classes).label == canonical
    assert parse_answer(f"Class: {alias.upper().replace(' ', '_')}", classes).label == canonical


def test_alias_to_a_class_outside_the_benchmark_is_invalid():
    parsed = parse_answer("Class: encapsulated lesions", CLASSES)
    assert parsed.label is None


def test_alias_never_shadows_a_real_class_name():
    classes = ["Pneumonia", "Inflammatory_Pneumonia"]
    assert parse_answer("Class: pneumonia", classes).label == "Pneumonia"


def test_normalise():
    assert normalise("  Inflammatory__Pneumonia ") == "inflammatory pneumonia"
    assert normalise("LOWER - density.") == "lower density"
    assert normalise("**Normal**") == "normal"


# --- properties ------------------------------------------------------------------------------

separators = st.text(alphabet="_- ", min_size=1, max_size=3)


@st.composite
def class_variant(draw):
    label = draw(st.sampled_from(CLASSES))
    words = label.split("_")
    words = [
        "".join(ch.upper() if draw(st.booleans()) else ch.lower() for ch in word) for word in words
    ]
    text = words[0]
    for word in words[1:]:
        text += draw(separators) + word
    pad_l = draw(st.text(alphabet=" \t", max_size=3))
    pad_r = draw(st.text(alphabet=" \t", max_size=3))
    return label, pad_l + text + pad_r


explanations = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",), blacklist_characters="\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
    ),
    max_size=80,
)


@SETTINGS
@given(class_variant(), explanations, st.sampled_from(["Class", "class", "CLASS", "ClAsS"]))
def test_any_casing_or_separator_variant_parses_to_its_class(variant, explanation, key):
    label, value = variant
    parsed = parse_answer(f"{key}: {value}\nExplanation: {explanation}", CLASSES)
    assert parsed.label == label, parsed.reason
    assert parsed.explanation == explanation.strip()


@SETTINGS
@given(class_variant(), st.sampled_from(CLASSES))
def test_explanation_mentioning_another_class_does_not_change_the_label(variant, other):
    label, value = variant
    text = f"Class: {value}\nExplanation: This is not {other}, nor {other.lower()}."
    assert parse_answer(text, CLASSES).label == label


@SETTINGS
@given(
    st.lists(st.sampled_from(CLASSES), min_size=2, max_size=8, unique=True),
    st.sampled_from([", ", " / ", " or ", " | ", "; ", " and "]),
)
def test_class_line_listing_several_classes_is_invalid(listed, joiner):
    parsed = parse_answer(f"Class: {joiner.join(listed)}\nExplanation: x", CLASSES)
    assert parsed.label is None
    assert "several" in parsed.reason


@SETTINGS
@given(st.text(max_size=200))
def test_text_without_a_class_key_is_invalid(text):
    if "class" in text.lower():
        text = text.lower().replace("class", "klass")
    parsed = parse_answer(text, CLASSES)
    assert parsed.label is None and parsed.reason == "no 'Class:' line"


@SETTINGS
@given(st.text(max_size=300), st.lists(st.sampled_from(list(ALL_CLASSES)), min_size=1, unique=True))
def test_arbitrary_text_never_crashes(text, classes):
    parsed = parse_answer(text, classes)
    assert parsed.label is None or parsed.label in classes
    assert parsed.valid == (parsed.label is not None)
    assert isinstance(parsed.explanation, str)
    if parsed.label is None:
        assert parsed.reason


@SETTINGS
@given(
    st.lists(
        st.sampled_from(["Class:", "Explanation:", " ", "\n", "Normal", "pneumonia", ",", "_"]),
        max_size=40,
    ).map("".join)
)
def test_structured_noise_never_crashes(text):
    parsed = parse_answer(text, CLASSES)
    assert parsed.label in (None, *CLASSES)
