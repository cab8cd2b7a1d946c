"""A built benchmark's folder: its file names, its splits, and reading its manifest back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.core.errors import DataError

MANIFEST, META, REPORT, IMAGES = "manifest.jsonl", "benchmark.json", "build_report.json", "images"
SPLITS = ("train", "val", "test")
DEFAULT_ROOT = Path("benchmarks")


def resolve_dir(name: str, root: Path = DEFAULT_ROOT) -> Path:
    path = Path(name) if ("/" in name or Path(name).is_absolute()) else Path(root) / name
    if not (path / MANIFEST).is_file() or not (path / META).is_file():
        raise DataError(f"Unknown benchmark {name!r}: no {MANIFEST} + {META} in {path}")
    return path


def read_manifest(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
        rows = [json.loads(x) for x in (path / MANIFEST).read_text("utf-8").splitlines() if x]
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable manifest ({exc})") from None
    return meta, rows
