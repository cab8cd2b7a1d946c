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
        border = np.asarray(image.convert("L"))[[0, -1], :].ravel()
        fill = int(np.median(border))
        fillcolor = fill if mode in ("L", "I", "F") else (fill,) * len(mode)
        rotated = image.rotate(angle, resample=Image.BILINEAR, fillcolor=fillcolor)
        arr = np.asarray(rotated).astype(np.float32)
        arr = arr + rng.normal(0.0, opts.noise_std * 255.0, size=arr.shape)
        if mode == "RGBA":  # keep alpha untouched
            arr[..., 3] = np.asarray(rotated)[..., 3]
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode=mode)


@hookimpl
def register_augmenters(register) -> None:
    register(NoAugmenter)
    register(NoiseRotate)
