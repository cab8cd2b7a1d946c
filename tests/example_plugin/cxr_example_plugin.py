"""An example third-party cxr-harness plugin: the ``example_invert_noise`` augmenter.

Installed as the distribution ``cxr-harness-example-plugin``; it registers through the
``cxr_harness`` entry-point group exactly as the built-ins do.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from pydantic import Field

from harness.components import Augmenter, Options
from harness.hookspecs import hookimpl


class InvertNoiseOptions(Options):
    strength: float = Field(0.05, ge=0.0, le=1.0, description="Noise std as a share of 255.")


class InvertNoise(Augmenter):
    name = "example_invert_noise"
    description = "Example plugin: invert intensities, then add Gaussian noise. Never flips."
    Options = InvertNoiseOptions

    def augment(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        opts: InvertNoiseOptions = self.options  # type: ignore[assignment]
        src = np.asarray(image)
        arr = 255.0 - src.astype(np.float32)
        arr = arr + rng.normal(0.0, opts.strength * 255.0, size=arr.shape)
        if image.mode in ("RGBA", "LA"):  # keep alpha untouched
            arr[..., -1] = src[..., -1]
        out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        return out if out.mode == image.mode else out.convert(image.mode)


@hookimpl
def register_augmenters(register) -> None:
    register(InvertNoise)
