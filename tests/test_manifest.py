"""End to end: a generated tree with planted duplicates, a conflict and bad files -> frozen
benchmark -> verify -> check-leakage -> load. ``make_tree`` is shared with other test modules."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.benchmarks import load_benchmark
from harness.core.errors import DataError, OptionError
from harness.data.dedup import HashConfig
from harness.data.importers import import_folder
from harness.data.leakage import check_leakage, check_leakage_samples
from harness.data.manifest import (
    build_benchmark,
    load_manifest_benchmark,
    split_groups,
    verify,
)

CLASSES = {
    "00 Anatomia Normal": "Normal",
    "01 Pneumonia": "Inflammatory_Pneumonia",
    "02 Maior Densidade": "Higher_Density",
    "08 Alterações do Tórax": "Chest_Changes",
}
MAX_PIXELS = 1_000_000


def synth(seed: int, size: int = 96) -> Image.Image:
    """A distinct smooth random grayscale image (no two seeds are perceptually alike)."""
    rng = np.random.default_rng(seed)
    low = Image.fromarray((rng.random((6, 6)) * 255).astype(np.uint8))
    arr = np.asarray(low.resize((size, size), Image.BICUBIC), dtype=np.float32)
    arr += rng.normal(0, 3, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def shifted(img: Image.Image, dx: int, dy: int) -> Image.Image:
    fill = int(np.median(np.asarray(img)))
    return img.transform(img.size, Image.AFFINE, (1, 0, -dx, 0, 1, -dy), fillcolor=fill)


def noisy(img: Image.Image, seed: int) -> Image.Image:
    arr = np.asarray(img, dtype=np.float32)
    arr = arr + np.random.default_rng(seed).normal(0, 4, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _save(img: Image.Image, path: Path, fmt: str = "PNG", **kw: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt, **kw)


def make_tree(root: Path, per_class: int = 12) -> dict[str, object]:
    """Write a Kaggle-style tree; return what was planted (paths relative to root)."""
    planted: dict[str, object] = {"dup_sets": [], "bad": [], "conflict": [], "odd_good": []}
    seed = 1000
    for folder in CLASSES:
        for i in range(per_class):
            seed += 1
            _save(synth(seed), root / folder / f"img{i:03d}.png")
    n0, n1 = "00 Anatomia Normal", "01 Pneumonia"
    base = synth(7)
    _save(base, root / n0 / "dup_base.png")
    (root / n0 / "dup_exact.png").write_bytes((root / n0 / "dup_base.png").read_bytes())
    _save(base.convert("RGB"), root / n0 / "dup_rgb.png")  # same pixels, other encoding
    _save(noisy(base, 1), root / n0 / "dup_noise.png")
    _save(shifted(base, 2, 1), root / n0 / "dup_shift.png")
    _save(base, root / n0 / "sub" / "dup_jpeg.jpg", "JPEG", quality=80)
    planted["dup_sets"].append(
        [
            f"{n0}/{n}"
            for n in (
                "dup_base.png",
                "dup_exact.png",
                "dup_rgb.png",
                "dup_noise.png",
                "dup_shift.png",
                "sub/dup_jpeg.jpg",
            )
        ]
    )
    other = synth(8)
    _save(other, root / n1 / "pair_a.png")
    _save(noisy(other, 2), root / n1 / "pair_b.png")
    planted["dup_sets"].append([f"{n1}/pair_a.png", f"{n1}/pair_b.png"])
    clash = synth(9)
    _save(clash, root / n0 / "clash.png")
    _save(clash, root / n1 / "clash.png")
    planted["conflict"] = [f"{n0}/clash.png", f"{n1}/clash.png"]
    good = io.BytesIO()
    synth(10).save(good, format="PNG")
    bad = {
        f"{n0}/zero.png": b"",
        f"{n0}/notes.md": b"not an image",
        f"{n1}/truncated.png": good.getvalue()[: len(good.getvalue()) // 2],
        f"{n1}/garbage.jpg": bytes(np.random.default_rng(0).integers(0, 256, 500, np.uint8)),
    }
    for rel, data in bad.items():
        (root / rel).write_bytes(data)
    _save(Image.new("L", (1200, 1000)), root / n1 / "bomb.png")  # 1.2 MP > MAX_PIXELS
    planted["bad"] = sorted([*bad, f"{n1}/bomb.png"])
    # Unusual but good files: 16-bit, CMYK, RGBA, EXIF-rotated.
    a16 = (np.asarray(synth(11), dtype=np.uint16) * 200).astype(np.uint16)  # up to ~51000
    _save(Image.fromarray(a16), root / n0 / "deep16.png")
    _save(synth(12).convert("CMYK"), root / n1 / "cmyk.jpg", "JPEG")
    rgba = synth(13).convert("RGBA")
    rgba.putalpha(255)
    _save(rgba, root / n1 / "rgba.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 on display
    _save(synth(14, 64).crop((0, 0, 64, 40)), root / n0 / "exif.jpg", "JPEG", exif=exif)
    planted["odd_good"] = [f"{n0}/deep16.png", f"{n1}/cmyk.jpg", f"{n1}/rgba.png", f"{n0}/exif.jpg"]
    (root / "06 Lesões Encapsuladas").mkdir()
    _save(synth(15), root / "06 Lesões Encapsuladas" / "lesion.png")
    (root / "07 Alterações de Mediastino").mkdir()  # empty class folder
    return planted


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tree")
    planted = make_tree(tmp / "src")
    imported = import_folder(tmp / "src")
    res = build_benchmark(
        imported, "planted", tmp / "benchmarks", seed=3, max_pixels=MAX_PIXELS, workers=2
    )
    rows = [json.loads(x) for x in (res.path / "manifest.jsonl").read_text().splitlines()]
    return tmp, planted, res, rows


def test_planted_duplicates_share_one_group_and_split(built):
    _, planted, res, rows = built
    by_source = {r["source"]: r for r in rows}
    dropped = {d["source"] for d in res.report["exact_duplicates_dropped"]}
    for dup_set in planted["dup_sets"]:
        kept = [by_source[s] for s in dup_set if s in by_source]
        assert {s for s in dup_set if s not in by_source} <= dropped
        assert len({r["group"] for r in kept}) == 1, dup_set
        assert len({r["split"] for r in kept}) == 1
    assert len(res.report["exact_duplicates_dropped"]) == 2  # byte copy + re-encoded copy


def test_conflict_excluded_and_bad_files_listed(built):
    _, planted, res, rows = built
    sources = {r["source"] for r in rows}
    assert not set(planted["conflict"]) & sources
    (conflict,) = res.report["label_conflicts"]
    assert sorted(m[0] for m in conflict["members"]) == planted["conflict"]
    listed = {s["source"]: s["reason"] for s in res.report["skipped"]}
    assert sorted(listed) == planted["bad"]
    assert listed["00 Anatomia Normal/zero.png"] == "empty"
    assert listed["01 Pneumonia/bomb.png"] == "too-large"
    assert set(planted["odd_good"]) <= sources  # never silently lose a good one
    assert res.report["empty_classes"] == ["07 Alterações de Mediastino (Mediastinal_Changes)"]
    assert res.report["excluded_by_option"] == {"Encapsulated_Lesions": 1}
    n_good = 4 * 12 + 6 + 2 + 4  # originals + dup set + pair + odd formats
    assert len(rows) + len(res.report["exact_duplicates_dropped"]) == n_good


def test_zero_leakage_and_stratified_counts(built):
    tmp, _, res, rows = built
    assert res.leakage_pairs == 0
    leak = check_leakage("planted", tmp / "benchmarks", workers=1)
    assert leak.pairs == [] and leak.exact == 0
    for label in {r["label"] for r in rows}:
        splits = [r["split"] for r in rows if r["label"] == label]
        assert splits.count("test") >= 2 and splits.count("train") > splits.count("test")


def test_verify_reports_changed_missing_extra(built, tmp_path):
    tmp, _, res, rows = built
    import shutil

    copy = tmp_path / "b" / "planted"
    shutil.copytree(res.path, copy)
    assert verify("planted", tmp_path / "b").ok
    (copy / rows[0]["path"]).write_bytes(b"tampered")
    (copy / rows[1]["path"]).unlink()
    (copy / "images" / "Normal" / "stray.png").write_bytes(b"x")
    v = verify("planted", tmp_path / "b", workers=1)
    assert v.changed == [rows[0]["path"]] and v.missing == [rows[1]["path"]]
    assert v.extra == ["images/Normal/stray.png"] and v.fingerprint_ok and not v.ok
    with pytest.raises(DataError, match="changed since build|missing"):
        load_manifest_benchmark("planted", tmp_path / "b", workers=1)


def test_load_benchmark_by_name_and_fingerprint_is_stable(built, monkeypatch):
    tmp, _, res, rows = built
    monkeypatch.chdir(tmp)  # load_benchmark looks in ./benchmarks
    bench = load_benchmark("planted")
    assert bench.fingerprint == res.fingerprint
    assert len(bench.train) + len(bench.val) + len(bench.test) == len(rows)
    assert all(s.image.mode == "L" for s in bench.test)
    assert "de-duplicated" in bench.caveats[0]
    exif = next(s for s in bench.train + bench.val + bench.test if "exif" in s.id)
    assert exif.image.size == (40, 64)  # EXIF orientation honoured
    deep = next(s for s in bench.train + bench.val + bench.test if "deep16" in s.id)
    assert np.asarray(deep.image).max() == 255 and np.asarray(deep.image).min() == 0
    again = build_benchmark(
        import_folder(tmp / "src"),
        "again",
        tmp / "benchmarks",
        seed=3,
        max_pixels=MAX_PIXELS,
        workers=1,
    )
    assert again.fingerprint == res.fingerprint


def test_build_refuses_existing_name_and_bad_fractions(built):
    tmp, _, _, _ = built
    with pytest.raises(OptionError, match="already exists"):
        build_benchmark(import_folder(tmp / "src"), "planted", tmp / "benchmarks")
    with pytest.raises(OptionError, match="--val"):
        split_groups({"g": ("Normal", 1)}, 0.5, 0.5, 0)


def test_split_groups_keeps_groups_whole_and_stratifies():
    groups = {f"g{i}": ("A" if i % 2 else "B", 1 + i % 3) for i in range(200)}
    out = split_groups(groups, 0.1, 0.2, seed=0)
    for label in "AB":
        total = sum(n for g, (lab, n) in groups.items() if lab == label)
        test = sum(n for g, (lab, n) in groups.items() if lab == label and out[g] == "test")
        assert abs(test / total - 0.2) < 0.03


def test_check_leakage_finds_planted_cross_split_copy():
    a, b = synth(1), synth(2)
    splits = {"train": [_sample("t1", a), _sample("t2", b)], "test": [_sample("x1", noisy(a, 5))]}
    leak = check_leakage_samples(splits, HashConfig(), workers=1)
    assert [(p[1], p[3]) for p in leak.pairs] == [("t1", "x1")]


def _sample(sid: str, img: Image.Image):
    from harness.data.sample import Sample

    return Sample(id=sid, label="Normal", image=img, group=sid)
