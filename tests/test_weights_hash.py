"""The checkpoint hash is remembered per folder state, and is always the hash a full read gives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.model import hashing
from harness.model.hashing import weights_hash


@pytest.fixture()
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "ckpt"
    root.mkdir()
    (root / "model-00001.safetensors").write_bytes(b"a" * 3000)
    (root / "model-00002.safetensors").write_bytes(b"b" * 5000)
    (root / "config.json").write_text("{}")
    return root


def test_remembered_hash_equals_a_full_read_and_skips_the_read(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(hashing.HASH_CACHE_ENV, "0")
    full = weights_hash(folder)
    monkeypatch.delenv(hashing.HASH_CACHE_ENV)
    assert weights_hash(folder) == full  # first call reads and remembers
    assert (Path(os.environ["XDG_CACHE_HOME"]) / "cxr-harness" / hashing.CACHE_FILE).is_file()
    reads = []
    real = hashing._read_hash
    monkeypatch.setattr(hashing, "_read_hash", lambda files: reads.append(files) or real(files))
    assert weights_hash(folder) == full and reads == []  # answered from memory


@pytest.mark.parametrize("change", ["rewrite", "add", "remove"])
def test_a_changed_folder_is_read_again(folder: Path, change: str) -> None:
    before = weights_hash(folder)
    target = folder / "model-00002.safetensors"
    if change == "rewrite":  # same size, other bytes, a later mtime
        target.write_bytes(b"c" * 5000)
        st = target.stat()
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    elif change == "add":
        (folder / "model-00003.safetensors").write_bytes(b"d")
    else:
        target.unlink()
    after = weights_hash(folder)
    assert after != before
    os.environ[hashing.HASH_CACHE_ENV] = "0"
    try:
        assert after == weights_hash(folder)  # the full read agrees
    finally:
        del os.environ[hashing.HASH_CACHE_ENV]


def test_a_torn_cache_file_is_ignored(folder: Path) -> None:
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "cxr-harness" / hashing.CACHE_FILE
    cache.parent.mkdir(parents=True)
    cache.write_text('{"trunc')
    assert len(weights_hash(folder)) == 16
    assert weights_hash(folder) == weights_hash(folder)
