"""Cross-split leakage of a benchmark: near-duplicate pairs across train/val/test.

The definition is the build's (harness.data.dedup: perceptual-hash candidates, then thumbnail
verification), read from a built benchmark's ``benchmark.json``, so a benchmark built by
`harness.data.manifest.build_benchmark` has no cross-split pair. Works on a built benchmark's files
or
on in-memory splits (the embedded phantom8 benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.core.pool import ProgressFn, parallel_map
from harness.data.dedup import (
    DEFAULT_HASH,
    HashConfig,
    cross_split_pairs,
    image_thumbnail,
    perceptual_hash,
    pixel_sha256,
)
from harness.data.images import decode_image
from harness.data.layout import DEFAULT_ROOT, SPLITS, read_manifest, resolve_dir
from harness.data.sample import Sample


@dataclass
class LeakageResult:
    threshold: int
    # split_a, id_a, split_b, id_b, Hamming distance, verification score (0 if exact or off)
    pairs: list[tuple[str, str, str, str, int, float]]
    exact: int  # of those pairs, how many are pixel-identical
    candidates: int = 0  # hash candidates across splits before verification
    config: HashConfig = DEFAULT_HASH


def _hash_file(args: tuple[Path, HashConfig]) -> tuple[str, str, bytes]:
    path, cfg = args
    image = decode_image(path.read_bytes(), str(path), 2**62)
    return pixel_sha256(image), perceptual_hash(image, cfg), image_thumbnail(image, cfg)


def _hash_sample(args: tuple[Sample, HashConfig]) -> tuple[str, str, bytes]:
    sample, cfg = args
    image = sample.image
    return pixel_sha256(image), perceptual_hash(image, cfg), image_thumbnail(image, cfg)


def leakage_config(
    meta: dict[str, Any], threshold: int | None = None, verify: float | None = None
) -> HashConfig:
    """The build's near-duplicate definition from ``benchmark.json`` (a manifest from before the
    verification stage was hash-only: ``verify=0``), with optional overrides."""
    cfg = HashConfig(**{"verify": 0.0, **meta["hash"]})
    changes = {k: v for k, v in (("threshold", threshold), ("verify", verify)) if v is not None}
    return replace(cfg, **changes)  # type: ignore[arg-type]


def check_leakage_dir(
    path: Path,
    threshold: int | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
    verify: float | None = None,
) -> LeakageResult:
    meta, rows = read_manifest(path)
    cfg = leakage_config(meta, threshold, verify)
    jobs = [(path / r["path"], cfg) for r in rows]
    hashed = parallel_map(_hash_file, jobs, workers, progress, "hash for leakage check")
    items = [(r["split"], r["id"], *h) for r, h in zip(rows, hashed, strict=True)]
    return LeakageResult(
        cfg.threshold, *cross_split_pairs(items, cfg, SPLITS, workers, progress), cfg
    )


def check_leakage_samples(
    splits: dict[str, list[Sample]],
    config: HashConfig = DEFAULT_HASH,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> LeakageResult:
    """The same check over in-memory splits (e.g. the embedded phantom8 benchmark)."""
    items = []
    for split, samples in splits.items():
        hashed = parallel_map(
            _hash_sample, [(s, config) for s in samples], workers, progress, f"hash {split}"
        )
        items += [(split, s.id, *h) for s, h in zip(samples, hashed, strict=True)]
    return LeakageResult(
        config.threshold, *cross_split_pairs(items, config, SPLITS, workers, progress), config
    )


def check_leakage(
    name: str,
    root: Path = DEFAULT_ROOT,
    threshold: int | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
    verify: float | None = None,
) -> LeakageResult:
    """Cross-split near-duplicate pairs of a built benchmark, by the definition it was built with
    (``threshold`` / ``verify`` override it; ``verify=0`` checks by hash alone)."""
    return check_leakage_dir(resolve_dir(name, root), threshold, workers, progress, verify)
