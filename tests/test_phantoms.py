import re

import numpy as np
import pytest

from harness.core.rng import derive_seed
from harness.data.labels import PHANTOM8_CLASSES
from harness.data.phantom_text import describe_anatomy, describe_quality
from harness.data.phantoms import TRAIN_COUNTS, Phantom, phantom8_split, render_phantom

FORBIDDEN = [c.lower() for c in PHANTOM8_CLASSES] + [
    c.lower().replace("_", " ") for c in PHANTOM8_CLASSES
]


def _sentences(text: str) -> list[str]:
    return re.split(r"(?<=\.) ", text)


def test_derive_seed_is_stable_63_bit():
    a = derive_seed(1, "train", "Normal", 3)
    assert a == derive_seed(1, "train", "Normal", 3)
    assert 0 <= a < 2**63
    assert a != derive_seed(1, "test", "Normal", 3)
    assert derive_seed(1) != derive_seed("1")


@pytest.mark.parametrize("label", PHANTOM8_CLASSES)
def test_deterministic_and_seed_dependent(label):
    a, b = render_phantom(label, 7), render_phantom(label, 7)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.report == b.report and a.findings == b.findings
    assert render_phantom(label, 8).image.tobytes() != a.image.tobytes()


@pytest.mark.parametrize("size", [112, 224])
@pytest.mark.parametrize("label", PHANTOM8_CLASSES)
def test_renders_every_label(label, size):
    ph = render_phantom(label, 3, size)
    assert isinstance(ph, Phantom) and ph.label == label
    assert ph.image.mode == "L" and ph.image.size == (size, size)
    arr = np.asarray(ph.image)
    assert arr.std() > 20  # anatomy, not a flat field


def test_renders_at_448():
    ph = render_phantom("Chest_Changes", 1, 448)
    assert ph.image.size == (448, 448) and ph.image.mode == "L"


def test_unknown_label_raises():
    with pytest.raises(ValueError, match="Pneumonia"):
        render_phantom("Pneumonia", 0)


@pytest.mark.parametrize("label", PHANTOM8_CLASSES)
def test_descriptions_never_name_a_class(label):
    for seed in range(6):
        ph = render_phantom(label, seed)
        for text in (describe_anatomy(ph.findings), describe_quality(ph.findings)):
            low = text.lower()
            assert text and "class" not in low
            assert not [c for c in FORBIDDEN if c in low], text
        assert len(_sentences(describe_quality(ph.findings))) <= 2


def test_quality_names_no_sign():
    signs = ["consolidation", "effusion", "pneumothorax", "hyperinflation", "reticulonodular",
             "cardiomegaly", "mediastinal", "volume loss", "nodul", "opacity"]  # fmt: skip
    for label in PHANTOM8_CLASSES:
        q = describe_quality(render_phantom(label, 11).findings).lower()
        assert not [s for s in signs if s in q], q


@pytest.mark.parametrize("label", PHANTOM8_CLASSES)
def test_reports_are_well_formed(label):
    for seed in range(6):
        rep = render_phantom(label, seed).report
        assert "  " not in rep and rep == rep.strip()
        sents = _sentences(rep)
        assert 4 <= len(sents) <= 6, rep
        for s in sents:
            assert s[0].isupper() and s.endswith("."), s
            assert s.count(".") == 1, s


def test_reports_name_the_sign_and_side():
    words = {
        "Inflammatory_Pneumonia": "consolidation",
        "Higher_Density": "effusion",
        "Lower_Density": "pneumothorax",
        "Obstructive": "hyperinflation",
        "Degenerative_Infectious": "reticulonodular",
        "Chest_Changes": "volume loss",
    }
    for label, word in words.items():
        ph = render_phantom(label, 5)
        assert word in ph.report
        side = ph.findings["side"]
        if side in ("left", "right"):
            assert side in ph.report
    med = render_phantom("Mediastinal_Changes", 5).report
    assert "mediastinal widening" in med or "cardiomegaly" in med
    assert "clear" in render_phantom("Normal", 5).report


def test_split_sizes_and_disjoint_ids():
    counts = {c: 2 for c in PHANTOM8_CLASSES}
    counts["Normal"] = 3
    sp = phantom8_split(0, counts, n_test_per_class=2, n_val_per_class=1)
    assert len(sp["train"]) == 17 and len(sp["test"]) == 16 and len(sp["val"]) == 8
    ids = {k: {s.id for s in v} for k, v in sp.items()}
    assert not (ids["train"] & ids["test"]) and not (ids["train"] & ids["val"])
    assert not (ids["val"] & ids["test"])
    assert "test-Normal-0001" in ids["test"]
    pix = [s.image.tobytes() for v in sp.values() for s in v]
    assert len(set(pix)) == len(pix)
    s0 = sp["test"][0]
    assert s0.group == s0.id and s0.report and s0.image.size == (112, 112)
    again = phantom8_split(0, counts, 2, 1)
    assert [s.image.tobytes() for s in again["test"]] == [s.image.tobytes() for s in sp["test"]]


def test_default_train_counts(monkeypatch):
    import harness.data.phantoms as ph

    real = ph.render_phantom("Normal", 0, 16)
    monkeypatch.setattr(ph, "render_phantom", lambda label, seed, size=112: real)
    assert sum(TRAIN_COUNTS.values()) == 608 and max(TRAIN_COUNTS, key=TRAIN_COUNTS.get) == "Normal"
    sp = ph.phantom8_split(1, None, n_test_per_class=0, n_val_per_class=0, size=16)
    got = {c: sum(s.label == c for s in sp["train"]) for c in PHANTOM8_CLASSES}
    assert got == TRAIN_COUNTS and sp["test"] == [] and sp["val"] == []


def test_signs_are_discriminable():
    from sklearn.linear_model import RidgeClassifier
    from sklearn.preprocessing import StandardScaler

    def feats(split, n):
        xs, ys = [], []
        for y, label in enumerate(PHANTOM8_CLASSES):
            for i in range(n):
                im = render_phantom(label, derive_seed(split, i)).image.resize((32, 32))
                xs.append(np.asarray(im, dtype=np.float32).ravel() / 255)
                ys.append(y)
        return np.array(xs), np.array(ys)

    xtr, ytr = feats("disc-train", 40)
    xte, yte = feats("disc-test", 20)
    scaler = StandardScaler().fit(xtr)
    clf = RidgeClassifier(alpha=10.0).fit(scaler.transform(xtr), ytr)
    acc = float((clf.predict(scaler.transform(xte)) == yte).mean())
    assert acc >= 0.6, acc
