"""Built-in augmenters (plugins/augmenters/basic.py): seeded, shape-preserving, never flip."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cxr_harness_plugins.augmenters.basic import NoAugmenter, NoiseRotate, NoiseRotateOptions
from harness.core.errors import OptionError
from harness.registry import Registry

W, H = 64, 48


def _registry() -> Registry:
    reg = Registry()
    for cls in (NoAugmenter, NoiseRotate):
        reg.add("augmenter", cls, cls.__module__, "cxr-harness", "0")
    return reg


def _noise_rotate(**opts) -> NoiseRotate:
    return _registry().create("augmenter", "noise_rotate", opts)


def _asymmetric(mode: str = "L", w: int = W, h: int = H) -> Image.Image:
    """Dark background with a bright block in the top-left quadrant (a flip moves it)."""
    arr = np.full((h, w), 20, np.uint8)
    arr[h // 8 : h // 2 - 2, w // 8 : w // 2 - 4] = 230
    img = Image.fromarray(arr)
    if mode == "RGBA":
        rgba = np.dstack([arr, arr // 2, arr, np.full_like(arr, 200)])
        rgba[0, 0, 3] = 7  # a distinctive alpha value to check it is untouched
        return Image.fromarray(rgba)
    return img if mode == "L" else img.convert(mode)


def _centroid(img: Image.Image) -> tuple[float, float]:
    arr = np.asarray(img.convert("L")).astype(np.float64)
    arr = np.clip(arr - np.median(arr), 0, None)  # mass above the background
    ys, xs = np.indices(arr.shape)
    total = arr.sum()
    return float((xs * arr).sum() / total), float((ys * arr).sum() / total)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_same_size_and_mode(mode):
    img = _asymmetric(mode)
    out = _noise_rotate().augment(img, np.random.default_rng(3))
    assert out.size == img.size and out.mode == img.mode


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_deterministic_per_seed_and_different_across_seeds(mode):
    img = _asymmetric(mode)
    aug = _noise_rotate()
    a = np.asarray(aug.augment(img, np.random.default_rng(11)))
    b = np.asarray(aug.augment(img, np.random.default_rng(11)))
    c = np.asarray(aug.augment(img, np.random.default_rng(12)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, np.asarray(img))  # it does augment


def test_input_image_is_not_modified():
    img = _asymmetric("RGB")
    before = np.asarray(img).copy()
    _noise_rotate().augment(img, np.random.default_rng(0))
    np.testing.assert_array_equal(np.asarray(img), before)


def test_rgba_alpha_is_untouched():
    img = _asymmetric("RGBA")
    out = _noise_rotate(max_deg=0.0, noise_std=0.2).augment(img, np.random.default_rng(0))
    np.testing.assert_array_equal(np.asarray(out)[..., 3], np.asarray(img)[..., 3])


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_zero_rotation_and_zero_noise_is_the_identity(mode):
    img = _asymmetric(mode)
    out = _noise_rotate(max_deg=0.0, noise_std=0.0).augment(img, np.random.default_rng(5))
    np.testing.assert_array_equal(np.asarray(out), np.asarray(img))
    arr = np.asarray(out.convert("L")).astype(np.int64)
    left, right = arr[:, : W // 2].sum(), arr[:, W // 2 :].sum()
    top, bottom = arr[: H // 2].sum(), arr[H // 2 :].sum()
    assert left > 2 * right and top > 2 * bottom  # the mass stays top-left


@pytest.mark.parametrize("seed", range(20))
def test_rotation_never_flips_the_block_to_the_other_side(seed):
    img = _asymmetric("L")
    x0, y0 = _centroid(img)
    assert x0 < W / 2 - 8 and y0 < H / 2 - 4
    out = _noise_rotate(max_deg=10.0).augment(img, np.random.default_rng(seed))
    x, y = _centroid(out)
    assert x < W / 2 and y < H / 2, (seed, x, y)
    assert abs(x - x0) < 6 and abs(y - y0) < 6  # a small rotation, not a mirror


@pytest.mark.parametrize("seed", range(10))
def test_even_the_largest_rotation_keeps_left_on_the_left(seed):
    img = _asymmetric("L")
    arr = np.asarray(img).copy()
    arr[:] = 20
    arr[H // 2 - 6 : H // 2 + 6, 4:20] = 230  # a block at mid-height on the left edge
    img = Image.fromarray(arr)
    out = _noise_rotate(max_deg=45.0).augment(img, np.random.default_rng(seed))
    x, _ = _centroid(out)
    assert x < W / 2 - 5, (seed, x)


def test_rotation_fills_with_the_border_median_not_black():
    img = Image.fromarray(np.full((H, W), 128, np.uint8))
    aug = _noise_rotate(max_deg=45.0, noise_std=0.0)
    out = np.asarray(aug.augment(img, np.random.default_rng(1)))
    assert np.abs(out.astype(int) - 128).max() <= 1


def test_no_augmenter_returns_an_equal_copy():
    img = _asymmetric("RGB")
    out = _registry().create("augmenter", "none").augment(img, np.random.default_rng(0))
    assert out is not img
    np.testing.assert_array_equal(np.asarray(out), np.asarray(img))


@pytest.mark.parametrize(
    "opts, name",
    [
        ({"max_deg": 100}, "augmenter.max_deg"),
        ({"max_deg": -1}, "augmenter.max_deg"),
        ({"noise_std": 0.9}, "augmenter.noise_std"),
        ({"flip": True}, "augmenter.flip"),
    ],
)
def test_options_are_strict(opts, name):
    with pytest.raises(OptionError, match=name.replace(".", r"\.")):
        _noise_rotate(**opts)


def test_options_defaults():
    assert NoiseRotateOptions() == NoiseRotateOptions(max_deg=10.0, noise_std=0.03)


@pytest.mark.parametrize("mode", ["I", "F", "I;16"])
def test_high_depth_modes_keep_their_mode_and_range(mode):
    """16-bit/32-bit X-rays (e.g. 16-bit PNG) keep mode and dynamic range (no uint8 cast)."""
    base = np.asarray(_asymmetric("L")).astype(np.uint16) * 200  # up to 46000
    if mode == "I;16":
        img = Image.fromarray(base)
    elif mode == "I":
        img = Image.fromarray(base.astype(np.int32))
    else:
        img = Image.fromarray(base.astype(np.float32))
    assert img.mode == mode
    out = _noise_rotate(max_deg=5.0, noise_std=0.01).augment(img, np.random.default_rng(0))
    assert out.mode == mode and out.size == img.size
    arr = np.asarray(out).astype(np.float64)
    assert arr.max() > 30000  # not squashed into 0..255
    assert arr[:, : W // 2].sum() > 2 * arr[:, W // 2 :].sum()
