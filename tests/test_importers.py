"""Importers: folder tree (Kaggle names), saved HF dataset, CSV/JSONL manifest -> same records."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from test_manifest import synth

from harness.core.errors import DataError, OptionError
from harness.data.images import ImageLoadError, decode_image, encode_png, to_canonical
from harness.data.importers import (
    canonical_label,
    import_folder,
    import_hf,
    import_manifest,
    import_source,
)


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("00 Anatomia Normal", "Normal"),
        ("01 Processos Inflamatórios Pulmonares (Pneumonia)", "Inflammatory_Pneumonia"),
        ("06 Lesões Encapsuladas", "Encapsulated_Lesions"),
        ("08 Alterações do Tórax", "Chest_Changes"),
        ("higher density", "Higher_Density"),
        ("Lower_Density", "Lower_Density"),
        ("99 Unknown", None),
    ],
)
def test_canonical_label(name, label):
    assert canonical_label(name) == label


def test_label_map_overrides():
    assert canonical_label("xrays-ok", {"xrays-ok": "normal"}) == "Normal"


def _tree(root):
    for folder, n in (("00 Anatomia Normal", 2), ("Obstructive", 1), ("06 Lesões", 1)):
        for i in range(n):
            (root / folder).mkdir(parents=True, exist_ok=True)
            synth(i + 10 * len(folder)).save(root / folder / f"{i}.png")
    (root / "Obstructive" / "0.txt").write_text("Hyperinflated lungs.")
    return root


def test_folder_import_reports_and_encapsulated_option(tmp_path):
    res = import_folder(_tree(tmp_path))
    assert sorted(r.label for r in res.records) == ["Normal", "Normal", "Obstructive"]
    assert res.excluded == {"Encapsulated_Lesions": 1}
    assert next(r for r in res.records if r.label == "Obstructive").report == "Hyperinflated lungs."
    res = import_folder(tmp_path, include_encapsulated=True)
    assert "Encapsulated_Lesions" in res.classes


def test_folder_import_unknown_folder_names_it(tmp_path):
    (tmp_path / "misc").mkdir()
    (tmp_path / "misc" / "notes.txt").write_text("not an image")  # an empty one is only listed
    with pytest.raises(DataError, match="'misc'.*--map"):
        import_folder(tmp_path)
    assert import_folder(tmp_path, {"misc": "Normal"}).empty_classes == ["misc (Normal)"]


def test_three_importers_give_the_same_records(tmp_path):
    import datasets

    src = _tree(tmp_path / "tree")
    folder = import_folder(src)
    rows = [
        {"path": f"tree/{r.source}", "label": r.label, "report": r.report} for r in folder.records
    ]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lines = ["path,label,report"] + [f'{r["path"]},{r["label"]},"{r["report"]}"' for r in rows]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    ds = datasets.Dataset.from_dict(
        {
            "img": [Image.open(r.path) for r in folder.records],
            "caption": [r.report for r in folder.records],
            "__class__": [r.label for r in folder.records],
        },
        features=datasets.Features(
            {
                "img": datasets.Image(),
                "caption": datasets.Value("string"),
                "__class__": datasets.ClassLabel(names=sorted({r.label for r in folder.records})),
            }
        ),
    )
    ds.save_to_disk(str(tmp_path / "hf"))
    hf = import_source(str(tmp_path / "hf"), image_column="img", text_column="caption")
    for other in (import_manifest(tmp_path / "m.jsonl"), import_manifest(tmp_path / "m.csv"), hf):
        assert [(r.label, r.report) for r in other.records] == [
            (r.label, r.report) for r in folder.records
        ]
        pixels = [np.asarray(decode_image(r.read(), r.source)) for r in other.records]
        for a, r in zip(pixels, folder.records, strict=True):
            assert np.array_equal(a, np.asarray(decode_image(r.read(), r.source)))
    with pytest.raises(OptionError, match="--image-column 'image'"):
        import_hf(tmp_path / "hf")


def test_manifest_missing_file_is_listed_and_bad_row_named(tmp_path):
    (tmp_path / "m.csv").write_text("path,label\nnope.png,Normal\n")
    res = import_manifest(tmp_path / "m.csv")
    assert [(s.source, s.reason) for s in res.skipped] == [("nope.png", "missing")]
    (tmp_path / "b.jsonl").write_text('{"path": "x.png"}\n')
    with pytest.raises(DataError, match="b.jsonl:1"):
        import_manifest(tmp_path / "b.jsonl")


def test_sixteen_bit_is_rescaled_not_clipped():
    arr = np.linspace(1000, 4000, 64 * 64).reshape(64, 64).astype(np.uint16)
    img = decode_image(encode_png(Image.fromarray(arr)), "x")
    out = np.asarray(img)
    assert img.mode == "L" and out.min() == 0 and out.max() == 255
    assert len(np.unique(out)) > 200  # not clipped to white


def test_modes_are_canonicalised():
    base = synth(3)
    for mode in ("RGB", "RGBA", "CMYK", "P", "LA", "1"):
        assert to_canonical(base.convert(mode)).mode == "L"
    assert np.array_equal(np.asarray(to_canonical(base.convert("RGB"))), np.asarray(base))


@pytest.mark.parametrize(("data", "reason"), [(b"", "empty"), (b"hello", "not-an-image")])
def test_bad_bytes_raise_typed_error(data, reason):
    with pytest.raises(ImageLoadError) as info:
        decode_image(data, "f.png")
    assert info.value.reason == reason and "f.png" in str(info.value)


def test_a_report_file_without_an_image_is_listed_as_skipped(tmp_path) -> None:
    from PIL import Image

    from harness.data.importers import import_folder

    folder = tmp_path / "Normal"
    folder.mkdir()
    Image.new("L", (32, 32), 128).save(folder / "a.png")
    (folder / "a.txt").write_text("Clear lungs.")
    (folder / "notes.txt").write_text("not a report of any image")
    result = import_folder(tmp_path)
    assert [r.report for r in result.records] == ["Clear lungs."]
    assert [(s.source, s.reason) for s in result.skipped] == [
        ("Normal/notes.txt", "report-without-image")
    ]
