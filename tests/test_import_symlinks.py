"""A folder import never follows a symlink out of the source tree; symlinks inside it are fine."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from test_manifest import synth

from harness.cli import main
from harness.data.importers import import_folder

SECRET = "root:x:0:0:do-not-read-me"
pytestmark = pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")


@pytest.fixture
def tree(tmp_path):
    """SRC with two real images per class folder, and an OUTSIDE folder next to it."""
    src, outside = tmp_path / "src", tmp_path / "outside"
    for k, folder in enumerate(("Normal", "Obstructive")):
        (src / folder).mkdir(parents=True)
        for i in range(2):
            synth(100 * k + i).save(src / folder / f"{i}.png")
    outside.mkdir()
    synth(999).save(outside / "stray.png")
    (outside / "passwd").write_text(SECRET)
    (outside / "xrays").mkdir()
    synth(998).save(outside / "xrays" / "far.png")
    return src, outside


def _skips(result) -> dict[str, tuple[str, str]]:
    return {s.source: (s.reason, s.detail) for s in result.skipped}


def test_symlinks_to_files_outside_the_source_are_listed_not_imported(tree):
    src, outside = tree
    (src / "Normal" / "stray.png").symlink_to(outside / "stray.png")
    (src / "Normal" / "system.png").symlink_to(outside / "passwd")
    res = import_folder(src)
    assert sorted(r.source for r in res.records) == [
        "Normal/0.png", "Normal/1.png", "Obstructive/0.png", "Obstructive/1.png",
    ]  # fmt: skip
    skips = _skips(res)
    assert skips["Normal/stray.png"][0] == "symlink-outside-source"
    assert skips["Normal/system.png"][0] == "symlink-outside-source"
    assert str(outside / "passwd") in skips["Normal/system.png"][1]  # says where it points


def test_a_report_symlinked_out_of_the_source_is_never_read(tree):
    src, outside = tree
    (src / "Obstructive" / "0.txt").symlink_to(outside / "passwd")
    res = import_folder(src)
    record = next(r for r in res.records if r.source == "Obstructive/0.png")
    assert record.report == ""
    assert SECRET not in repr(res)
    assert _skips(res)["Obstructive/0.txt"][0] == "symlink-outside-source"


def test_a_class_folder_symlinked_out_of_the_source_is_skipped(tree):
    src, outside = tree
    (src / "Higher_Density").symlink_to(outside / "xrays", target_is_directory=True)
    (src / "Normal" / "nested").symlink_to(outside / "xrays", target_is_directory=True)
    res = import_folder(src)
    assert not [r for r in res.records if "far" in r.source]
    assert _skips(res)["Higher_Density"][0] == "symlink-outside-source"


def test_symlinks_inside_the_source_are_imported(tree):
    src, _ = tree
    (src / "shared").mkdir()
    synth(555).save(src / "shared" / "img.png")
    (src / "shared" / "img.txt").write_text("Shared report.")
    (src / "Normal" / "linked.png").symlink_to(src / "shared" / "img.png")
    (src / "Normal" / "linked.txt").symlink_to(os.path.join("..", "shared", "img.txt"))
    res = import_folder(src, label_map={"shared": "Normal"})
    linked = next(r for r in res.records if r.source == "Normal/linked.png")
    assert linked.report == "Shared report." and linked.read().startswith(b"\x89PNG")
    assert not [s for s in res.skipped if s.reason == "symlink-outside-source"]


def test_dangling_or_looping_symlinks_are_listed(tree):
    src, _ = tree
    (src / "Normal" / "gone.png").symlink_to(src / "Normal" / "missing.png")
    (src / "Normal" / "loop_a.png").symlink_to(src / "Normal" / "loop_b.png")
    (src / "Normal" / "loop_b.png").symlink_to(src / "Normal" / "loop_a.png")
    skips = _skips(import_folder(src))
    assert skips["Normal/gone.png"][0] == "broken-symlink"
    assert skips["Normal/loop_a.png"][0] == skips["Normal/loop_b.png"][0] == "broken-symlink"


def test_benchmark_build_lists_the_outside_symlinks_and_never_decodes_them(tree, monkeypatch):
    src, outside = tree
    for folder in ("Normal", "Obstructive"):
        for i in range(2, 8):
            synth(300 + 10 * len(folder) + i).save(src / folder / f"{i}.png")
    (src / "Normal" / "stray.png").symlink_to(outside / "stray.png")
    (src / "Obstructive" / "system.png").symlink_to(outside / "passwd")
    monkeypatch.chdir(src.parent)
    args = ["benchmark", "build", str(src), "--name", "linked", "--root", "built", "--workers", "1"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "skipped symlink-outside-source: Normal/stray.png" in out
    assert "skipped symlink-outside-source: Obstructive/system.png" in out
    assert "not-an-image" not in out  # the system file was never read and decoded
    built = src.parent / "built" / "linked"
    report = json.loads((built / "build_report.json").read_text())
    assert report["skipped_by_reason"] == {"symlink-outside-source": 2}
    meta = json.loads((built / "benchmark.json").read_text())
    assert sum(sum(meta["counts"][s].values()) for s in ("train", "val", "test")) == 16


def _build(src, *extra):
    for folder in ("Normal", "Obstructive"):
        for i in range(2, 8):
            synth(300 + 10 * len(folder) + i).save(src / folder / f"{i}.png")
    args = ["benchmark", "build", str(src), "--name", "b", "--root", str(src.parent / "built")]
    result = CliRunner().invoke(main, [*args, "--workers", "1", *extra], catch_exceptions=False)
    return result, " ".join(result.output.split())


def test_follow_symlinks_imports_an_outside_image_like_a_regular_file(tree):
    src, outside = tree
    (src / "Normal" / "stray.png").symlink_to(outside / "stray.png")
    res = import_folder(src, follow_symlinks=True)
    stray = next(r for r in res.records if r.source == "Normal/stray.png")
    assert stray.label == "Normal" and stray.read().startswith(b"\x89PNG")
    assert not [s for s in res.skipped if s.reason == "symlink-outside-source"]
    result, out = _build(src, "--follow-symlinks")
    assert result.exit_code == 0, result.output
    assert "symlink-outside-source" not in out
    meta = json.loads((src.parent / "built" / "b" / "benchmark.json").read_text())
    assert sum(sum(meta["counts"][s].values()) for s in ("train", "val", "test")) == 17


def test_without_follow_symlinks_the_outside_image_stays_skipped(tree):
    src, outside = tree
    (src / "Normal" / "stray.png").symlink_to(outside / "stray.png")
    result, out = _build(src)
    assert result.exit_code == 0, result.output
    assert "skipped symlink-outside-source: Normal/stray.png" in out


def test_follow_symlinks_still_lists_a_dangling_symlink(tree):
    src, outside = tree
    (src / "Normal" / "gone.png").symlink_to(outside / "missing.png")
    skips = _skips(import_folder(src, follow_symlinks=True))
    assert skips["Normal/gone.png"][0] == "broken-symlink"


def test_an_empty_unmappable_folder_is_listed_and_the_build_goes_on(tree):
    src, _ = tree
    (src / "misc" / "deeper").mkdir(parents=True)
    result, out = _build(src)
    assert result.exit_code == 0, result.output
    assert "skipped empty-folder: misc" in out
    assert _skips(import_folder(src))["misc"][0] == "empty-folder"


def test_a_non_empty_unmappable_folder_is_still_an_error(tree):
    src, _ = tree
    (src / "misc" / "deeper").mkdir(parents=True)
    (src / "misc" / "deeper" / "notes.txt").write_text("x")
    result, out = _build(src)
    assert result.exit_code == 2
    assert "'misc'" in out and "do not map to a class" in out
