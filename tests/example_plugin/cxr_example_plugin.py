"""An example third-party cxr-harness plugin: the ``example_invert_noise`` augmenter and the
``example_length_ratio`` metric.

Installed as the distribution ``cxr-harness-example-plugin``; it registers through the
``cxr_harness`` entry-point group exactly as the built-ins do.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from pydantic import Field

from harness.components import Augmenter, MeanMetric, MetricItem, Options
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


class LengthRatio(MeanMetric):
    """Per image: min(words of explanation, words of reference) / max(both); 1 = same length."""

    name = "example_length_ratio"
    title = "Length ratio"
    description = "Example plugin: word-count ratio of explanation and reference (1 = equal)"
    implementation = "cxr-harness-example-plugin"
    tokenisation = "whitespace words"

    def version(self) -> str:
        return "0.3.1"

    def scores(self, items: list[MetricItem]) -> list[float]:
        out = []
        for it in items:
            a, b = len(it.explanation.split()), len(it.reference.split())
            out.append(min(a, b) / max(a, b) if max(a, b) else 1.0)
        return out


@hookimpl
def register_metrics(register) -> None:
    register(LengthRatio)
