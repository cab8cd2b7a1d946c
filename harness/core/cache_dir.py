"""The harness's cache folder: ``$XDG_CACHE_HOME/cxr-harness`` (``~/.cache/cxr-harness``)."""

from __future__ import annotations

import os
from pathlib import Path


def harness_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cxr-harness"
