"""Exact and near-duplicate detection, grouping and the Hamming search."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from test_manifest import noisy, shifted, synth

from harness.core.errors import OptionError
from harness.data.dedup import (
    HashConfig,
    group_duplicates,
    near_pairs,
    perceptual_hash,
    pixel_sha256,
)
from harness.data.images import decode_image, encode_png


def _jpeg(img: Image.Image) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=75)
    return decode_image(buf.getvalue(), "x.jpg")


def _dist(a: Image.Image, b: Image.Image) -> int:
    return near_pairs([perceptual_hash(a)], [perceptual_hash(b)], 64)[0][2]


def test_pixel_hash_ignores_encoding():
    img = synth(1)
    assert pixel_sha256(decode_image(encode_png(img.convert("RGB")), "x")) == pixel_sha256(img)
    assert pixel_sha256(noisy(img, 0)) != pixel_sha256(img)


@pytest.mark.parametrize("seed", range(5))
def test_near_duplicates_within_default_threshold(seed):
    img = synth(100 + seed, 160)
    t = HashConfig().threshold
    for variant in (noisy(img, seed), shifted(img, 3, -2), _jpeg(img)):
        assert _dist(img, variant) <= t


def test_distinct_images_are_not_near_duplicates():
    hashes = [perceptual_hash(synth(s)) for s in range(200, 320)]
    assert near_pairs(hashes, None, HashConfig().threshold) == []


def test_near_pairs_matches_brute_force():
    rng = np.random.default_rng(0)
    hashes = [f"{int(x):016x}" for x in rng.integers(0, 2**63, 300)]
    hashes += [f"{int(h, 16) ^ 0b101:016x}" for h in hashes[:20]]
    fast = near_pairs(hashes, None, 10, block=64)
    brute = [
        (i, j, bin(int(a, 16) ^ int(b, 16)).count("1"))
        for i, a in enumerate(hashes)
        for j, b in enumerate(hashes)
        if i < j and bin(int(a, 16) ^ int(b, 16)).count("1") <= 10
    ]
    assert sorted(fast) == sorted(brute) and len(fast) >= 20


def test_groups_chain_transitively_and_record_exact_copies():
    h = ["0000000000000000", "000000000000000f", "00000000000000ff", "ffffffffffffffff"]
    g = group_duplicates(["a", "b", "c", "a"], h, threshold=4)
    assert g.group_of == [0, 0, 0, 0]  # 0~1, 1~2 by hash; 3 is an exact copy of 0
    assert g.exact_of == {3: 0} and g.near_pairs == 2
    g = group_duplicates(["a", "b", "c", "d"], h, threshold=3)
    assert g.members() == {0: [0], 1: [1], 2: [2], 3: [3]}


def test_hash_config_validates():
    with pytest.raises(OptionError, match="--threshold"):
        HashConfig(threshold=64)
    with pytest.raises(OptionError, match="--hash"):
        HashConfig(kind="md5")
