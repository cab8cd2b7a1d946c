"""The new augmenters: seeded, never flip, same size and mode out as in; compose chains them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from test_manifest import synth

from cxr_harness_plugins.augmenters.compose import Compose, ComposeOptions, _registry
from cxr_harness_plugins.augmenters.geometric import Affine, AffineOptions, CropPad
from cxr_harness_plugins.augmenters.photometric import Equalize, EqualizeOptions, Photometric
from harness.core.errors import OptionError

NAMES = ("affine", "crop_pad", "photometric", "equalize", "compose", "noise_rotate")


def _image(mode: str) -> Image.Image:
    base = synth(5, 64).crop((0, 0, 64, 48))
    if mode == "RGBA":
        img = base.convert("RGBA")
        img.putalpha(Image.linear_gradient("L").resize(base.size))
        return img
    return base.convert(mode)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_size_mode_and_seeding(name, mode):
    aug = _registry().create("augmenter", name)
    img = _image(mode)
    a = aug.augment(img, np.random.default_rng(7))
    b = aug.augment(img, np.random.default_rng(7))
    assert a.size == img.size and a.mode == img.mode
    assert np.array_equal(np.asarray(a), np.asarray(b))
    if mode == "RGBA" and name in ("photometric", "equalize"):
        assert np.array_equal(np.asarray(a)[..., 3], np.asarray(img)[..., 3])


def test_registered_with_descriptions():
    reg = _registry()
    for name in NAMES:
        assert reg.get("augmenter", name).cls.description


def test_affine_never_flips():
    """A left-bright image stays left-bright under the largest affine draws."""
    arr = np.zeros((64, 64), np.uint8)
    arr[:, :20] = 255
    img = Image.fromarray(arr)
    aug = Affine(AffineOptions(max_deg=10, max_translate=0.05))
    for seed in range(20):
        out = np.asarray(aug.augment(img, np.random.default_rng(seed)), np.float32)
        assert out[:, :32].mean() > out[:, 32:].mean() + 50


def test_crop_pad_keeps_scale():
    img = synth(9, 80)
    out = CropPad().augment(img, np.random.default_rng(0))
    assert out.size == img.size


def test_photometric_changes_pixels_and_equalize_stretches():
    img = Image.fromarray((np.asarray(synth(3)) // 4 + 60).astype(np.uint8))
    out = Photometric().augment(img, np.random.default_rng(1))
    assert not np.array_equal(np.asarray(out), np.asarray(img))
    eq = np.asarray(
        Equalize(EqualizeOptions(method="equalize")).augment(img, np.random.default_rng(0))
    )
    assert eq.max() - eq.min() > np.ptp(np.asarray(img))


def test_compose_short_form_probabilities_and_errors():
    opts = ComposeOptions.model_validate({"steps": "affine:0.5,equalize"})
    assert [(s.name, s.p) for s in opts.steps] == [("affine", 0.5), ("equalize", 1.0)]
    never = Compose(ComposeOptions.model_validate({"steps": "affine:0"}))
    img = synth(2)
    assert np.array_equal(np.asarray(never.augment(img, np.random.default_rng(0))), np.asarray(img))
    nested = Compose(
        ComposeOptions.model_validate(
            {"steps": [{"name": "compose", "options": {"steps": "photometric"}}]}
        )
    )
    assert nested.augment(img, np.random.default_rng(0)).size == img.size
    with pytest.raises(OptionError, match=r"steps\[0\].*max_deg"):
        _registry().create(
            "augmenter", "compose", {"steps": [{"name": "affine", "options": {"max_deg": 99}}]}
        )
    with pytest.raises(OptionError, match="afine"):
        Compose(ComposeOptions.model_validate({"steps": "afine"}))
