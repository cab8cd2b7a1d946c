"""Benchmarks: a fixed held-out test split with references, train/val pools, a fingerprint."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.data import Sample
from harness.errors import DataError
from harness.labels import PHANTOM8_CLASSES

PHANTOM8 = "phantom8"
# The embedded benchmark is frozen: its seed and sizes never follow the run's --seed.
PHANTOM8_SEED = 20241125
PHANTOM8_TEST_PER_CLASS = 20
PHANTOM8_VAL_PER_CLASS = 5
PHANTOM8_SIZE = 112


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


def load_phantom8() -> Benchmark:
    """The embedded, procedurally generated benchmark (a machinery test, not a medical result)."""
    from harness.phantoms import phantom8_split

    splits = phantom8_split(
        seed=PHANTOM8_SEED,
        n_train_per_class=None,
        n_test_per_class=PHANTOM8_TEST_PER_CLASS,
        n_val_per_class=PHANTOM8_VAL_PER_CLASS,
        size=PHANTOM8_SIZE,
    )
    bench = Benchmark(
        name=PHANTOM8,
        classes=PHANTOM8_CLASSES,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        fingerprint=fingerprint(splits, PHANTOM8_CLASSES),
        caveats=[
            "phantom8 images are procedurally generated phantoms, not radiographs: "
            "scores test the machinery and are not a medical result.",
            "Reference reports are generated from the phantom's drawn findings (synthetic).",
            "Every phantom is drawn from its own seed, so nothing is de-duplicated; "
            "`harness benchmark check-leakage phantom8` finds no near-duplicate pair across "
            "train and test.",
        ],
    )
    return bench


def check_benchmark(name: str, root: Path | None = None) -> None:
    """Raise DataError (listing what exists) if ``name`` names no benchmark; loads nothing."""
    if name == PHANTOM8:
        return
    from harness.manifest import DEFAULT_ROOT

    base = root if root is not None else DEFAULT_ROOT
    candidate = Path(name) if "/" in name else base / name
    if not candidate.is_dir():
        built = sorted(p.name for p in base.glob("*/benchmark.json") for p in [p.parent])
        raise DataError(
            f"Unknown benchmark {name!r}. Available: {', '.join([PHANTOM8, *built])} "
            f"(built benchmarks live in {base}/NAME; make one with `harness benchmark build`)."
        )


def load_benchmark(name: str, root: Path | None = None) -> Benchmark:
    """``phantom8``, or a benchmark built by ``harness benchmark build`` under ``root/NAME``
    (default ``./benchmarks``; a path containing ``/`` is used as is)."""
    if name == PHANTOM8:
        return load_phantom8()
    from harness.manifest import DEFAULT_ROOT, load_manifest_benchmark

    check_benchmark(name, root)
    base = root if root is not None else DEFAULT_ROOT
    return load_manifest_benchmark(name, base)
