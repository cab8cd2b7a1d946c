"""Photometric augmenters: ``photometric`` and ``equalize``. Alpha is left untouched."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from pydantic import Field

from harness.components import Augmenter, Options
from harness.core.errors import DataError
from harness.hookspecs import hookimpl

_SUPPORTED = ("L", "LA", "RGB", "RGBA")


def on_colour(image: Image.Image, fn: Callable[[Image.Image], Image.Image]) -> Image.Image:
    """Apply ``fn`` to the L/RGB bands and re-attach alpha, so size and mode are preserved."""
    if image.mode not in _SUPPORTED:
        raise DataError(f"photometric augmenters support {', '.join(_SUPPORTED)}, not {image.mode}")
    if image.mode in ("L", "RGB"):
        return fn(image)
    *bands, alpha = image.split()
    colour = fn(Image.merge("RGB", bands) if len(bands) == 3 else bands[0])
    return Image.merge(image.mode, (*colour.split(), alpha))


class PhotometricOptions(Options):
    brightness: float = Field(0.15, ge=0.0, le=0.9, description="Brightness factor 1±this.")
    contrast: float = Field(0.15, ge=0.0, le=0.9, description="Contrast factor 1±this.")
    sharpness: float = Field(0.5, ge=0.0, le=0.9, description="Sharpness factor 1±this.")
    blur_p: float = Field(0.3, ge=0.0, le=1.0, description="Probability of a Gaussian blur.")
    blur_max: float = Field(1.0, ge=0.0, le=5.0, description="Largest blur radius, in pixels.")


class Photometric(Augmenter):
    name = "photometric"
    description = "Random brightness, contrast and sharpness, and an occasional slight blur."
    Options = PhotometricOptions

    def augment(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        o: PhotometricOptions = self.options  # type: ignore[assignment]
        factors = [
            float(rng.uniform(1 - r, 1 + r)) for r in (o.brightness, o.contrast, o.sharpness)
        ]
        blur = float(rng.uniform(0.0, o.blur_max)) if rng.random() < o.blur_p else 0.0

        def apply(img: Image.Image) -> Image.Image:
            for enhancer, f in zip(
                (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Sharpness),
                factors,
                strict=True,
            ):
                img = enhancer(img).enhance(f)
            return img.filter(ImageFilter.GaussianBlur(blur)) if blur > 0 else img

        return on_colour(image, apply)


class EqualizeOptions(Options):
    method: Literal["equalize", "autocontrast"] = Field(
        "autocontrast", description="Histogram equalisation, or a linear autocontrast stretch."
    )
    cutoff: float = Field(
        1.0, ge=0.0, le=20.0, description="autocontrast: percent clipped from each end."
    )
    p: float = Field(1.0, ge=0.0, le=1.0, description="Probability of applying it.")


class Equalize(Augmenter):
    name = "equalize"
    description = "Histogram equalisation or autocontrast (applied with probability p)."
    Options = EqualizeOptions

    def augment(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        o: EqualizeOptions = self.options  # type: ignore[assignment]
        if rng.random() >= o.p:
            return image.copy()
        if o.method == "equalize":
            return on_colour(image, ImageOps.equalize)
        return on_colour(image, lambda img: ImageOps.autocontrast(img, cutoff=o.cutoff))


@hookimpl
def register_augmenters(register) -> None:
    register(Photometric)
    register(Equalize)
