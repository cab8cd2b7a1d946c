"""Content hashes of checkpoint and adapter folders (for provenance and the prediction cache).

A 3B checkpoint is ~7.5 GB of safetensors: hashing it costs seconds at every run. A folder's hash
is therefore remembered in ``<cache>/weights-hashes.json``, keyed by each file's absolute path,
size, modification time (ns) and inode: a file added, removed or rewritten in any way a
filesystem records is read again. The value is the one a full read gives (a remembered hash is
never a different hash). ``CXR_HARNESS_HASH_CACHE=0`` turns the memory off.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from harness.core.atomic import write_text_atomic
from harness.core.cache_dir import harness_cache_dir

HASH_CACHE_ENV = "CXR_HARNESS_HASH_CACHE"
CACHE_FILE = "weights-hashes.json"
MAX_ENTRIES = 4096


def _file_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"


def _load(cache: Path) -> dict[str, str]:
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # absent or torn: hash again
    return data if isinstance(data, dict) else {}


def _read_hash(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def weights_hash(path: str | Path) -> str:
    """A short hash of a folder's ``*.safetensors`` files: their names and contents, in name
    order ("" for a missing folder)."""
    root = Path(path)
    if not root.exists():
        return ""
    files = sorted(root.glob("*.safetensors"))
    if os.environ.get(HASH_CACHE_ENV, "1") == "0":
        return _read_hash(files)
    key = hashlib.sha256("\n".join(_file_key(f) for f in files).encode()).hexdigest()
    cache = harness_cache_dir() / CACHE_FILE
    known = _load(cache)
    if key in known:
        return known[key]
    value = _read_hash(files)
    known[key] = value
    try:
        write_text_atomic(cache, json.dumps(dict(list(known.items())[-MAX_ENTRIES:])))
    except OSError:
        pass  # a read-only home: the hash is still right, only not remembered
    return value
