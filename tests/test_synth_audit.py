"""harness.text.audit: per-class counts, uniqueness, lengths and cross-class keyword leakage."""

from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.table import Table

from cxr_harness_plugins.synthesizers.template import TemplateSynthesizer
from harness.data.labels import ALL_CLASSES
from harness.text.audit import (
    audit_texts,
    find_keywords,
    other_class_keywords,
    render_audit_table,
)

KW = {"A": {"pneumonia", "lobar consolidation"}, "B": {"pneumothorax"}, "C": {"lucency"}}


def test_find_keywords_is_whole_word_and_case_insensitive() -> None:
    kws = {"pneumonia", "lobar consolidation", "copd"}
    assert find_keywords("Right LOBAR  consolidation; COPD.", kws) == [
        "copd",
        "lobar consolidation",
    ]
    assert find_keywords("Bronchopneumonia and non-pneumonia.", kws) == []
    assert find_keywords("", kws) == []


def test_other_class_keywords_ignores_own_and_shared() -> None:
    kws = {"A": {"mass", "nodule"}, "B": {"mass", "effusion"}}
    assert other_class_keywords("A mass with effusion.", "A", kws) == ["effusion"]
    assert other_class_keywords("A mass.", "A", kws) == []  # shared with its own class
    assert other_class_keywords("A nodule.", "B", kws) == ["nodule"]


def test_audit_counts_uniqueness_lengths_and_leaks() -> None:
    texts = {
        "A": [
            "Lobar consolidation on the right.",
            "lobar  consolidation on the RIGHT.",  # duplicate after normalisation
            "Pneumonia with a pneumothorax and lucency.",
            "Pneumonia.",
        ],
        "B": [],
    }
    audit = audit_texts(texts, KW)
    a = audit["A"]
    assert a["count"] == 4 and a["unique"] == 3 and a["uniqueness"] == 0.75
    assert a["words"] == {"min": 1, "median": 5.0, "max": 6}
    assert a["leaky"] == 1 and a["leak_share"] == 0.25
    assert a["leak_keywords"] == {"lucency": 1, "pneumothorax": 1}
    b = audit["B"]
    assert b["count"] == 0 and b["uniqueness"] == 0.0 and b["leak_share"] == 0.0
    assert b["words"] == {"min": 0, "median": 0.0, "max": 0}


def test_default_keywords_come_from_ontology() -> None:
    audit = audit_texts({"Higher_Density": ["A pleural effusion and a pneumothorax."]})
    assert audit["Higher_Density"]["leak_keywords"] == {"pneumothorax": 1}
    synth = TemplateSynthesizer()
    rng = np.random.default_rng(0)
    clean = audit_texts({label: synth.synthesize(label, 50, rng) for label in ALL_CLASSES})
    assert all(row["leak_share"] == 0.0 and row["count"] == 50 for row in clean.values())
    assert all(row["uniqueness"] == 1.0 for row in clean.values())
    assert all(20 <= row["words"]["median"] <= 60 for row in clean.values())


def test_render_audit_table() -> None:
    audit = audit_texts({"A": ["Pneumonia and pneumothorax.", "Pneumonia only here."]}, KW)
    table = render_audit_table(audit)
    assert isinstance(table, Table) and table.row_count == 1
    console = Console(width=160, record=True)
    console.print(table)
    out = console.export_text()
    assert "A" in out and "50.0%" in out and "pneumothorax (1)" in out and "3/3/3" in out
