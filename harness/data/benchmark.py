"""A benchmark's splits as one record, and the fingerprint over its images, labels and reports."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from harness.data.sample import Sample


@dataclass
class Benchmark:
    name: str
    classes: tuple[str, ...]
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    fingerprint: str = ""
    caveats: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "classes": list(self.classes),
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "train_counts": dict(Counter(s.label for s in self.train)),
            "test_counts": dict(Counter(s.label for s in self.test)),
        }


def sample_digest(sample: Sample) -> str:
    """SHA-256 over decoded pixels (mode + size + bytes); independent of file encoding."""
    img = sample.image
    digest = hashlib.sha256(f"{img.mode}:{img.size}".encode())
    digest.update(img.tobytes())
    return digest.hexdigest()


def fingerprint(splits: dict[str, list[Sample]], classes: tuple[str, ...]) -> str:
    """A hash over every image's bytes, label, reference report and split membership."""
    digest = hashlib.sha256(json.dumps(list(classes)).encode())
    for split in sorted(splits):
        for s in splits[split]:
            row = [split, s.id, s.label, sample_digest(s), s.report]
            digest.update(json.dumps(row).encode())
    return digest.hexdigest()[:16]
