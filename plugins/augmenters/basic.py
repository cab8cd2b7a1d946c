"""Built-in augmenters: ``none`` and ``noise_rotate``. Applied to the train split only."""

from __future__ import annotations

import numpy as np
from PIL import Image
from pydantic import Field

from harness.components import Augmenter, Options
from harness.hookspecs import hookimpl


class NoAugmenter(Augmenter):
    name = "none"
    description = "Identity: train on the original images only."

    def augment(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        return image.copy()


class NoiseRotateOptions(Options):
    max_deg: float = Field(10.0, ge=0.0, le=45.0, description="Rotation drawn from ±max_deg.")
    noise_std: float = Field(
        0.03, ge=0.0, le=0.5, description="Gaussian noise std, as a fraction of full scale."
    )


class NoiseRotate(Augmenter):
    name = "noise_rotate"
    description = "Gaussian noise plus a rotation of up to ±max_deg degrees; never flips."
    Options = NoiseRotateOptions

    def augment(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        opts: NoiseRotateOptions = self.options  # type: ignore[assignment]
        mode = image.mode
        angle = float(rng.uniform(-opts.max_deg, opts.max_deg))
        src = np.asarray(image)
        border = np.concatenate([src[0].ravel(), src[-1].ravel()])
        if src.ndim == 3:  # multi-band: a fill colour per band
            fillcolor = tuple(int(v) for v in np.median(src[[0, -1]].reshape(-1, src.shape[2]), 0))
        else:
            med = np.median(border)
            fillcolor = float(med) if mode == "F" else int(med)
        # Pillow's bilinear rotate squeezes 'I;16' into 8-bit values: rotate 16-bit as 32-bit 'I'.
        work = image.convert("I") if mode.startswith("I;16") else image
        rotated = np.asarray(work.rotate(angle, resample=Image.BILINEAR, fillcolor=fillcolor))
        if mode.startswith("I;16"):
            rotated = np.clip(rotated, 0, 65535).astype(np.uint16)
        dtype = rotated.dtype
        if np.issubdtype(dtype, np.integer) and dtype.itemsize <= 2:
            lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
        else:  # 32-bit int / float images: use the image's own range as full scale
            lo, hi = float(src.min()), float(src.max())
        scale = (hi - lo) or 1.0
        arr = rotated.astype(np.float64) + rng.normal(0.0, opts.noise_std * scale, rotated.shape)
        if mode in ("RGBA", "LA"):  # keep alpha untouched
            arr[..., -1] = rotated[..., -1]
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            arr = np.clip(np.rint(arr), info.min, info.max)
        out = Image.fromarray(arr.astype(dtype))
        return out if out.mode == mode else out.convert(mode)


@hookimpl
def register_augmenters(register) -> None:
    register(NoAugmenter)
    register(NoiseRotate)
