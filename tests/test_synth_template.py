"""The template and prompts synthesizers: ontology, report rules, determinism, options."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cxr_harness_plugins.synthesizers import prompts as prompts_mod
from cxr_harness_plugins.synthesizers import template as template_mod
from cxr_harness_plugins.synthesizers.prompts import PromptSynthesizer, synthesize_prompts
from cxr_harness_plugins.synthesizers.template import TemplateSynthesizer, oracle_report
from harness.core.errors import OptionError, SynthesisError
from harness.data.labels import ALL_CLASSES, PHANTOM8_CLASSES
from harness.text.audit import other_class_keywords
from harness.text.ontology import (
    class_keywords,
    default_ontology,
    keywords_by_class,
    load_ontology,
)

SENTENCE = re.compile(r"[^.]+\.")
SINGLE_LOBE = re.compile(r"\b(right|left) (upper|middle|lower) lobe\b")


def sentences(report: str) -> list[str]:
    return [s.strip() for s in SENTENCE.findall(report)]


def check_rules(report: str, lo: int = 4, hi: int = 7) -> None:
    parts = sentences(report)
    assert " ".join(parts) == report  # nothing outside sentences, single spaces
    assert lo <= len(parts) <= hi, report
    for s in parts:
        assert s[0].isupper() and s.endswith(".") and not s.endswith(".."), s
    assert "  " not in report and "{" not in report and "}" not in report
    assert not re.search(r"\bleft middle lobe|\bmiddle lobes\b", report), report
    if "bilateral" in report.lower():
        assert not SINGLE_LOBE.search(report), report
    sides = set(
        re.findall(r"\b(right|left) (?:upper|middle|lower|mid|apical) (?:lobe|zone)", report)
    )
    assert len(sides) <= 1, report  # one consistent side per report


def test_hook_registers_each_synthesizer() -> None:
    for module, cls in (
        (template_mod, TemplateSynthesizer),
        (prompts_mod, PromptSynthesizer),
    ):
        got: list[type] = []
        module.register_synthesizers(got.append)
        assert got == [cls]
    assert (TemplateSynthesizer.name, PromptSynthesizer.name) == ("template", "prompts")


def test_ontology_covers_all_classes() -> None:
    onto = default_ontology()
    assert set(onto.classes) == set(ALL_CLASSES)
    for entry in onto.classes.values():
        assert entry.group and len(entry.synonyms) >= 2 and len(entry.findings) >= 7
        assert entry.locations and entry.subtypes
    assert len(onto.templates) >= 12 and len(onto.confidence) >= 5
    first = [t[0] for t in onto.templates]
    assert any(s == "{finding}" for s in first) and any("{synonym}" in s for s in first)
    assert sum(any("{synonym2}" in s for s in t) for t in onto.templates) >= 2
    placeholders = " ".join(f for e in onto.classes.values() for f in e.findings)
    assert all(p in placeholders for p in ("{laterality}", "{lobe}", "{zone}"))


@pytest.mark.parametrize("label", ALL_CLASSES)
def test_reports_follow_rules_and_stay_in_class(label: str) -> None:
    synth = TemplateSynthesizer()
    reports = synth.synthesize(label, 150, np.random.default_rng(1))
    keywords = keywords_by_class()
    entry = default_ontology().classes[label]
    synonym_res = [
        re.compile(re.escape(s).replace(r"\{laterality\}", "(right|left|bilateral)"), re.I)
        for s in entry.synonyms
    ]
    for report in reports:
        check_rules(report)
        assert other_class_keywords(report, label, keywords) == [], report
        assert any(r.search(report) for r in synonym_res), report
    assert len(set(reports)) >= 140
    counts = {len(sentences(r)) for r in reports}
    assert counts == {4, 5, 6, 7}


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), label=st.sampled_from(ALL_CLASSES))
def test_rules_hold_for_any_seed(seed: int, label: str) -> None:
    report = TemplateSynthesizer().synthesize(label, 1, np.random.default_rng(seed))[0]
    check_rules(report)
    assert report == TemplateSynthesizer().synthesize(label, 1, np.random.default_rng(seed))[0]


def test_deterministic_per_seed_and_varies_across_seeds() -> None:
    synth = TemplateSynthesizer()
    a = synth.synthesize("Lower_Density", 20, np.random.default_rng(7))
    b = synth.synthesize("Lower_Density", 20, np.random.default_rng(7))
    c = synth.synthesize("Lower_Density", 20, np.random.default_rng(8))
    assert a == b and a != c


def test_middle_lobe_only_on_right() -> None:
    reports = TemplateSynthesizer().synthesize(
        "Inflammatory_Pneumonia", 400, np.random.default_rng(3)
    )
    text = " ".join(reports)
    assert "right middle lobe" in text and "left middle lobe" not in text
    assert "lower lobes bilaterally" in text


def test_sentence_bounds_option() -> None:
    synth = TemplateSynthesizer(TemplateSynthesizer.Options(min_sentences=5, max_sentences=5))
    for report in synth.synthesize("Obstructive", 40, np.random.default_rng(0)):
        check_rules(report, 5, 5)
    with pytest.raises(ValidationError):
        TemplateSynthesizer.Options(min_sentences=6, max_sentences=4)
    with pytest.raises(ValidationError):
        TemplateSynthesizer.Options(sentences=4)


def test_two_synonyms_are_distinct(tmp_path: Path) -> None:
    onto = {
        "shared": {"templates": [["{finding}", "{synonym} here.", "Or {synonym2}."]]},
        "classes": {
            "Thing": {
                "group": "thing",
                "synonyms": ["alpha thing", "beta thing"],
                "findings": ["A finding.", "Another finding."],
                "locations": ["Somewhere."],
            }
        },
    }
    path = tmp_path / "onto.json"
    path.write_text(json.dumps(onto))
    synth = TemplateSynthesizer(TemplateSynthesizer.Options(ontology=str(path), min_sentences=3))
    for report in synth.synthesize("Thing", 30, np.random.default_rng(0)):
        assert (
            "Alpha thing here." in report
            and "Or beta thing." in report
            or ("Beta thing here." in report and "Or alpha thing." in report)
        )


def test_user_toml_ontology_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "mine.toml"
    good.write_text(
        '[classes.Normal]\ngroup = "clear chest"\nsynonyms = ["a clear chest", "clear lungs"]\n'
        'findings = ["Lungs clear.", "Heart fine.", "Bones fine.", "Pleura fine."]\n'
        'locations = ["Both sides look alike."]\n'
    )
    synth = TemplateSynthesizer(TemplateSynthesizer.Options(ontology=str(good)))
    report = synth.synthesize("Normal", 1, np.random.default_rng(0))[0]
    check_rules(report, 4, 6)
    assert synth.class_keywords("Normal") == {"clear chest"}
    with pytest.raises(SynthesisError, match="Higher_Density"):
        synth.synthesize("Higher_Density", 1, np.random.default_rng(0))

    missing = tmp_path / "nope.toml"
    with pytest.raises(OptionError, match=re.escape(str(missing))):
        TemplateSynthesizer(TemplateSynthesizer.Options(ontology=str(missing)))
    broken = tmp_path / "broken.toml"
    broken.write_text("[classes.Normal\n")
    with pytest.raises(OptionError, match="broken.toml"):
        load_ontology(broken)
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[classes.X]\ngroup = "x"\nsynonyms = ["a", "b"]\nfindings = ["In the {lobe}."]\n'
        'locations = ["Here."]\n'
    )
    with pytest.raises(OptionError, match="placeholders"):
        load_ontology(bad)


def test_class_keywords_and_oracle() -> None:
    assert class_keywords("Lower_Density") >= {"pneumothorax", "reduced density"}
    assert all(k == k.lower() for label in ALL_CLASSES for k in class_keywords(label))
    oracles = {label: oracle_report(label) for label in ALL_CLASSES}
    assert len(set(oracles.values())) == len(ALL_CLASSES)
    for label, report in oracles.items():
        check_rules(report, 4, 4)
        assert report == oracle_report(label)
    assert "right" in oracles["Inflammatory_Pneumonia"]


def test_prompts_keep_class_list_and_contract() -> None:
    out = synthesize_prompts(PHANTOM8_CLASSES, 60, np.random.default_rng(0))
    assert len(out) == 60 and len(set(out)) == 60
    joined = ", ".join(PHANTOM8_CLASSES)
    for prompt in out:
        lines = prompt.split("\n")
        assert joined in prompt
        assert lines[-2] == "Class: <category>"
        assert lines[-1].startswith("Explanation: <") and lines[-1].endswith(">")
    short = [p for p in out if len(p.split("\n")[0].split(". ")) == 1 and "?" in p]
    long = [p for p in out if len(p.split("\n")[0].split(". ")) >= 3]
    assert short and long
    assert out == synthesize_prompts(PHANTOM8_CLASSES, 60, np.random.default_rng(0))


@settings(max_examples=60, deadline=None)
@given(
    classes=st.lists(
        st.text(alphabet="ABCxyz_ -", min_size=1, max_size=12).map(str.strip).filter(bool),
        min_size=1,
        max_size=9,
        unique=True,
    ),
    n=st.integers(0, 30),
    seed=st.integers(0, 1000),
)
def test_any_class_list_is_kept_intact(classes: list[str], n: int, seed: int) -> None:
    out = synthesize_prompts(classes, n, np.random.default_rng(seed))
    assert len(out) == n
    for prompt in out:
        assert ", ".join(classes) in prompt
        assert "\nClass: <category>\nExplanation: " in prompt


def test_prompt_synthesizer_ignores_label() -> None:
    synth = PromptSynthesizer(PromptSynthesizer.Options(classes=("A", "B")))
    a = synth.synthesize("Normal", 5, np.random.default_rng(4))
    b = synth.synthesize("anything", 5, np.random.default_rng(4))
    assert a == b and all("A, B" in p for p in a)
    assert PromptSynthesizer().options.classes == PHANTOM8_CLASSES
    with pytest.raises(SynthesisError):
        synthesize_prompts([], 3, np.random.default_rng(0))


def test_check_classes_names_a_class_missing_from_the_ontology() -> None:
    from cxr_harness_plugins.synthesizers.template import TemplateSynthesizer
    from harness.core.errors import SynthesisError
    from harness.data.labels import PHANTOM8_CLASSES

    synth = TemplateSynthesizer()
    synth.check_classes(PHANTOM8_CLASSES)  # all present
    with pytest.raises(SynthesisError, match="Pneumonia"):
        synth.check_classes([*PHANTOM8_CLASSES, "Pneumonia"])
