"""The two-stage near-duplicate definition: hash candidates confirmed on thumbnails.

Distinct phantom8 phantoms share one drawn template (the hash puts many within 8 bits); planted
near-copies (noise, shift, JPEG, brightness) must be confirmed and distinct phantoms must not.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from test_manifest import noisy, shifted, synth

from cxr_harness_plugins.benchmarks.phantom8 import load_phantom8
from harness.core.errors import OptionError
from harness.data.dedup import HashConfig, confirm, group_duplicates, image_thumbnail
from harness.data.images import decode_image, parallel_map_images
from harness.data.leakage import check_leakage_samples
from harness.data.near_dup import DEFAULT_VERIFY, thumbnail, verify_scores
from harness.data.phantoms import render_phantom
from harness.data.sample import Sample


def _jpeg(img: Image.Image, q: int = 75) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=q)
    return decode_image(buf.getvalue(), "x.jpg")


def _bright(img: Image.Image, d: int) -> Image.Image:
    return Image.fromarray(np.clip(np.asarray(img, np.int16) + d, 0, 255).astype(np.uint8))


def _score(a: Image.Image, b: Image.Image) -> float:
    return float(verify_scores(np.stack([thumbnail(a), thumbnail(b)]), np.array([[0, 1]]))[0])


PHANTOMS = [
    ("Normal", 1),
    ("Obstructive", 2),
    ("Lower_Density", 3),
    ("Inflammatory_Pneumonia", 4),
]


@pytest.mark.parametrize(("label", "seed"), PHANTOMS)
def test_planted_phantom_near_copies_are_confirmed(label, seed):
    img = render_phantom(label, seed).image
    copies = [
        noisy(img, seed),
        shifted(img, 2, 0),
        shifted(img, 5, -5),  # ~5% of 112 px
        _jpeg(img, 75),
        _jpeg(img, 50),
        _bright(img, 8),
        _jpeg(noisy(_bright(shifted(img, -3, 4), 8), seed), 75),
    ]
    scores = [_score(img, c) for c in copies]
    assert max(scores) <= DEFAULT_VERIFY * 0.8, scores  # a margin below the threshold


def test_distinct_phantoms_are_not_confirmed():
    images = [render_phantom(label, 100 + k).image for k in range(6) for label, _ in PHANTOMS]
    thumbs = np.stack([thumbnail(im) for im in images])
    ii, jj = np.triu_indices(len(images), 1)
    scores = verify_scores(thumbs, np.c_[ii, jj])
    assert scores.min() > DEFAULT_VERIFY * 1.1


def test_verification_is_symmetric_and_exact_copies_score_zero():
    a, b = render_phantom("Normal", 7).image, render_phantom("Normal", 8).image
    thumbs = np.stack([thumbnail(a), thumbnail(b), thumbnail(a)])
    s = verify_scores(thumbs, np.array([[0, 1], [1, 0], [0, 2]]), workers=2)
    assert s[0] == pytest.approx(s[1]) and s[2] == 0.0


def test_confirm_off_keeps_every_candidate_and_grouping_uses_verification():
    imgs = [render_phantom("Normal", k).image for k in range(3)]
    imgs.append(noisy(imgs[0], 1))
    cfg = HashConfig(threshold=63)  # every pair a candidate: verification must decide
    thumbs = [image_thumbnail(im, cfg) for im in imgs]
    digests = [str(k) for k in range(4)]
    hashes = ["0" * 16] * 4
    g = group_duplicates(digests, hashes, cfg, thumbs)
    assert g.members() == {0: [0, 3], 1: [1], 2: [2]} and g.candidates == 6 and g.near_pairs == 1
    off = HashConfig(threshold=63, verify=0)
    assert len(confirm([(0, 1, 5)], [b"", b""], off)) == 1
    assert group_duplicates(digests, hashes, 4).members() == {0: [0, 1, 2, 3]}  # hash only


def test_hash_config_validates_verify():
    with pytest.raises(OptionError, match="--verify"):
        HashConfig(verify=1.5)
    with pytest.raises(OptionError, match="thumbnail"):
        HashConfig(thumb=8)


def test_check_leakage_finds_planted_phantom_copy_across_hand_made_split():
    src = [render_phantom("Normal", k).image for k in range(4)]
    train = [
        Sample(id=f"t{k}", label="Normal", image=im, group=f"t{k}") for k, im in enumerate(src)
    ]
    copy = _jpeg(noisy(src[2], 3), 80)
    test = [
        Sample(id="copy", label="Normal", image=copy, group="c"),
        Sample(id="other", label="Normal", image=render_phantom("Normal", 99).image, group="o"),
    ]
    leak = check_leakage_samples({"train": train, "test": test}, HashConfig(), workers=1)
    assert [(p[1], p[3]) for p in leak.pairs] == [("t2", "copy")]
    assert leak.candidates >= 1 and leak.pairs[0][5] <= DEFAULT_VERIFY


def test_phantom8_has_no_cross_split_near_duplicates():
    """`harness benchmark check-leakage phantom8`: the hash alone finds ~63,000 candidates."""
    b = load_phantom8()
    leak = check_leakage_samples({"train": b.train, "val": b.val, "test": b.test}, workers=2)
    assert leak.candidates > 10_000  # the hash alone cannot tell these phantoms apart
    assert leak.pairs == [] and leak.exact == 0


def test_parallel_map_images_matches_serial_bit_for_bit():
    images = [synth(s, 40) for s in range(30)] + [synth(99, 40).convert("RGB")]

    def grow(im: Image.Image) -> Image.Image:  # larger than its slot: travels back pickled
        return im.resize((im.width * 3, im.height * 3)) if im.mode == "RGB" else im.rotate(7)

    slots = [im.width * im.height for im in images]
    serial = parallel_map_images(grow, images, slots, workers=1)
    parallel = parallel_map_images(grow, images, slots, workers=2)
    for a, b in zip(serial, parallel, strict=True):
        assert (a.mode, a.size, a.tobytes()) == (b.mode, b.size, b.tobytes())
