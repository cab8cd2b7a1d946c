"""Duplicate detection: exact (hash of decoded pixels) and near duplicates in two stages.

Near duplicates: the perceptual hash (``imagehash``) within a Hamming ``threshold`` proposes
candidates, and :mod:`harness.data.near_dup` confirms a candidate only if the thumbnails are copies
of
one another (score <= ``verify``; ``verify=0`` keeps every candidate, the hash-only definition).
Build (grouping) and check-leakage (pairs across splits) use this one definition, :func:`confirm`.

Pairs are unioned into groups (union-find), so near-duplicates chain: if a~b and b~c then a, b
and c share one group and therefore one split.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import imagehash
import numpy as np
from PIL import Image

from harness.core.errors import OptionError
from harness.core.pool import ProgressFn
from harness.data.near_dup import (
    DEFAULT_MAX_SHIFT,
    DEFAULT_THUMB,
    DEFAULT_VERIFY,
    thumbnail,
    verify_scores,
)

HASH_KINDS = {
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "ahash": imagehash.average_hash,
    "whash": imagehash.whash,
}


@dataclass(frozen=True)
class HashConfig:
    """The near-duplicate definition: perceptual hash kind and size (bits = size**2), candidate
    Hamming threshold, and the verification stage (score threshold, thumbnail side, max shift).
    """

    kind: str = "whash"
    size: int = 8
    threshold: int = 8  # Hamming distance <= threshold makes a candidate
    verify: float = DEFAULT_VERIFY  # a candidate with score <= verify is a near duplicate; 0: off
    thumb: int = DEFAULT_THUMB
    max_shift: int = DEFAULT_MAX_SHIFT

    def __post_init__(self) -> None:
        if self.kind not in HASH_KINDS:
            raise OptionError(f"--hash {self.kind!r}: expected one of {', '.join(HASH_KINDS)}")
        if self.size < 4 or self.size % 2 or (self.kind == "whash" and self.size & (self.size - 1)):
            raise OptionError(f"--hash-size {self.size}: expected an even size >= 4")
        if not 0 <= self.threshold < self.size * self.size:
            raise OptionError(f"--threshold {self.threshold}: expected 0..{self.size**2 - 1}")
        if not 0 <= self.verify < 1:
            raise OptionError(f"--verify {self.verify}: expected 0 (off) or a score in (0, 1)")
        if not 16 <= self.thumb <= 256 or not 0 <= self.max_shift <= self.thumb // 4:
            raise OptionError(
                f"verification thumbnail {self.thumb} px / max shift {self.max_shift} px: "
                "expected 16..256 px and a shift of at most a quarter of it"
            )

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "size": self.size,
            "threshold": self.threshold,
            "verify": self.verify,
            "thumb": self.thumb,
            "max_shift": self.max_shift,
        }

    def describe(self) -> str:
        rule = f"{self.kind} {self.size**2}-bit, Hamming <= {self.threshold}"
        if self.verify:
            rule += f", verified: thumbnail residual <= {self.verify:g}"
        return rule


DEFAULT_HASH = HashConfig()


def pixel_sha256(image: Image.Image) -> str:
    """SHA-256 over decoded pixels (mode + size + bytes), as
    ``harness.data.benchmark.sample_digest``."""
    digest = hashlib.sha256(f"{image.mode}:{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def perceptual_hash(image: Image.Image, config: HashConfig = DEFAULT_HASH) -> str:
    """The image's perceptual hash as a hex string."""
    if config.kind == "whash":  # wavelets on a 64 px copy: 5x faster, same discrimination
        return str(imagehash.whash(image, hash_size=config.size, image_scale=max(64, config.size)))
    return str(HASH_KINDS[config.kind](image, hash_size=config.size))


def image_thumbnail(image: Image.Image, config: HashConfig = DEFAULT_HASH) -> bytes:
    """The verification thumbnail as raw uint8 bytes (``config.thumb`` squared); empty if off."""
    return thumbnail(image, config.thumb).tobytes() if config.verify else b""


def _thumbs(thumbs: Sequence[bytes], config: HashConfig) -> np.ndarray:
    side = config.thumb
    raw = b"".join(thumbs)
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(thumbs), side, side)


def confirm(
    candidates: Sequence[tuple[int, int, int]],
    thumbs: Sequence[bytes],
    config: HashConfig,
    workers: int | None = 1,
    progress: ProgressFn | None = None,
) -> list[tuple[int, int, int, float]]:
    """The verification stage: keep the candidates ``(i, j, distance)`` whose thumbnails
    ``thumbs[i]``, ``thumbs[j]`` score <= ``config.verify``, as ``(i, j, distance, score)``.

    With ``verify=0`` every candidate is kept (score reported as 0).
    """
    if not config.verify or not candidates:
        return [(i, j, d, 0.0) for i, j, d in candidates]
    pairs = np.array([(i, j) for i, j, _ in candidates], dtype=np.int64)
    scores = verify_scores(_thumbs(thumbs, config), pairs, config.max_shift, workers, progress)
    return [
        (i, j, d, round(float(sc), 4))
        for (i, j, d), sc in zip(candidates, scores.tolist(), strict=True)
        if sc <= config.verify
    ]


def _as_words(hashes: Sequence[str]) -> np.ndarray:
    """Hex hashes -> (n, words) uint64 array (zero-padded to whole words)."""
    if not hashes:
        return np.zeros((0, 1), dtype=np.uint64)
    nbytes = max(len(h) for h in hashes) // 2
    width = -(-nbytes // 8) * 8
    raw = b"".join(bytes.fromhex(h).rjust(width, b"\0") for h in hashes)
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(len(hashes), width // 8)


def near_pairs(
    a: Sequence[str], b: Sequence[str] | None, threshold: int, block: int = 512
) -> list[tuple[int, int, int]]:
    """All (i, j, distance) with Hamming(a[i], b[j]) <= threshold.

    With ``b=None`` the pairs are within ``a`` and only i < j is returned.
    """
    wa = _as_words(a)
    wb = wa if b is None else _as_words(b)
    out: list[tuple[int, int, int]] = []
    for start in range(0, len(wa), block):
        chunk = wa[start : start + block]
        dist = np.bitwise_count(chunk[:, None, :] ^ wb[None, :, :]).sum(axis=2)
        ii, jj = np.nonzero(dist <= threshold)
        for i, j in zip(ii.tolist(), jj.tolist(), strict=True):
            gi = start + i
            if b is None and j <= gi:
                continue
            out.append((gi, j, int(dist[i, j])))
    return out


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class Grouping:
    """Result of :func:`group_duplicates` over n items (indices into the inputs)."""

    group_of: list[int]  # item -> group representative (smallest member index)
    exact_of: dict[int, int] = field(default_factory=dict)  # exact copy -> first identical item
    near_pairs: int = 0  # confirmed near-duplicate pairs
    candidates: int = 0  # hash candidates before verification

    def members(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = defaultdict(list)
        for i, g in enumerate(self.group_of):
            out[g].append(i)
        return dict(out)


def group_duplicates(
    pixel_digests: Sequence[str],
    hashes: Sequence[str],
    threshold: int | HashConfig,
    thumbs: Sequence[bytes] | None = None,
    workers: int | None = 1,
    progress: ProgressFn | None = None,
) -> Grouping:
    """Union exact duplicates (equal pixel digests) and near duplicates.

    ``threshold`` is a Hamming threshold (hash only) or a :class:`HashConfig`, whose
    verification stage then needs every item's ``thumbs`` (:func:`image_thumbnail`).
    """
    if len(pixel_digests) != len(hashes):
        raise ValueError("pixel_digests and hashes must have the same length")
    config = threshold if isinstance(threshold, HashConfig) else None
    if config is not None and config.verify and (thumbs is None or len(thumbs) != len(hashes)):
        raise ValueError("verification needs one thumbnail per item")
    uf = _UnionFind(len(hashes))
    first: dict[str, int] = {}
    exact_of: dict[int, int] = {}
    for i, d in enumerate(pixel_digests):
        if d in first:
            exact_of[i] = first[d]
            uf.union(first[d], i)
        else:
            first[d] = i
    limit = config.threshold if config is not None else int(threshold)  # type: ignore[arg-type]
    candidates = near_pairs(hashes, None, limit)
    pairs = candidates
    if config is not None:
        pairs = confirm(candidates, thumbs or [], config, workers, progress)  # type: ignore[assignment]
    for i, j, *_ in pairs:
        uf.union(i, j)
    return Grouping([uf.find(i) for i in range(len(hashes))], exact_of, len(pairs), len(candidates))


def cross_split_pairs(
    items: Sequence[tuple[str, str, str, str, bytes]],
    config: HashConfig,
    order: Sequence[str] = (),
    workers: int | None = 1,
    progress: ProgressFn | None = None,
) -> tuple[list[tuple[str, str, str, str, int, float]], int, int]:
    """Duplicate pairs across splits among ``items`` (split, id, pixel digest, hash, thumbnail):
    every pixel-identical pair and every hash candidate that :func:`confirm` keeps, as
    ``(split_a, id_a, split_b, id_b, distance, score)``; also the number of pixel-identical pairs
    and of hash candidates. Splits are compared in ``order``, then the others sorted."""
    by_split: dict[str, list[int]] = defaultdict(list)
    for n, item in enumerate(items):
        by_split[item[0]].append(n)
    names = [s for s in order if s in by_split] + sorted(set(by_split) - set(order))
    candidates, exact = [], set()
    for a_i, a in enumerate(names):
        for b in names[a_i + 1 :]:
            A, B = by_split[a], by_split[b]
            found = near_pairs([items[n][3] for n in A], [items[n][3] for n in B], config.threshold)
            candidates += [(A[i], B[j], d) for i, j, d in found]
            pix: dict[str, list[int]] = defaultdict(list)
            for n in A:
                pix[items[n][2]].append(n)
            exact |= {(m, n) for n in B for m in pix.get(items[n][2], [])}
    confirmed = {
        (i, j): (d, sc)
        for i, j, d, sc in confirm(candidates, [x[4] for x in items], config, workers, progress)
    }
    for key in exact:
        confirmed[key] = (confirmed.get(key, (0, 0.0))[0], 0.0)
    pairs = [
        (items[i][0], items[i][1], items[j][0], items[j][1], d, sc)
        for (i, j), (d, sc) in sorted(confirmed.items())
    ]
    return pairs, len(exact), len(candidates)
