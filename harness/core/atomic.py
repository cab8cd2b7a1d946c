"""Atomic file writes: write to a temp file in the same folder, fsync, then rename.

``tempfile`` creates its files 0600 and folders 0700, and safetensors saves weights 0600; the
harness gives everything it creates the mode an ordinary ``open()``/``mkdir`` would (0666/0777
less the umask), so colleagues on a shared machine can read reports, benchmarks and adapters
whenever the umask lets them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(path: Path | str) -> None:
    """Set ``path`` (a file, or a folder and everything below it) to 0666/0777 less the umask."""
    mask, path = _umask(), Path(path)
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            os.chmod(root, 0o777 & ~mask)
            for name in files:
                os.chmod(os.path.join(root, name), 0o666 & ~mask)
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o777 & ~mask)
    else:
        os.chmod(path, 0o666 & ~mask)


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
