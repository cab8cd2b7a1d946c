"""Geometric augmenters: ``affine`` and ``crop_pad``. Seeded, never flip, same size and mode."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from pydantic import Field, model_validator

from harness.components import Augmenter, Options
from harness.hookspecs import hookimpl


def border_fill(image: Image.Image) -> int | tuple[int, ...]:
    """Per-band median of the top and bottom rows (opaque for alpha): a neutral padding colour."""
    arr = np.asarray(image)
    rows = arr[[0, -1]].reshape(-1, 1 if arr.ndim == 2 else arr.shape[2])
    fill = [int(v) for v in np.median(rows, axis=0)]
    if image.mode in ("RGBA", "LA"):
        fill[-1] = 255
    return fill[0] if len(fill) == 1 else tuple(fill)


class AffineOptions(Options):
    max_deg: float = Field(10.0, ge=0.0, le=45.0, description="Rotation drawn from ±max_deg.")
    max_translate: float = Field(
        0.05, ge=0.0, le=0.25, description="Shift per axis, as a fraction of the image size."
    )
    scale_min: float = Field(0.95, gt=0.5, le=1.0, description="Smallest zoom factor.")
    scale_max: float = Field(1.05, ge=1.0, lt=2.0, description="Largest zoom factor.")


class Affine(Augmenter):
    name = "affine"
    description = (
        "Rotation (±10°), translation (≤5%) and scale (0.95-1.05) about the centre; never flips."
    )
    Options = AffineOptions

    def augment(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        o: AffineOptions = self.options  # type: ignore[assignment]
        w, h = image.size
        angle = math.radians(float(rng.uniform(-o.max_deg, o.max_deg)))
        scale = float(rng.uniform(o.scale_min, o.scale_max))
        tx, ty = (float(rng.uniform(-o.max_translate, o.max_translate)) * d for d in (w, h))
        cx, cy = w / 2.0, h / 2.0
        # Output pixel (x, y) samples input R(-angle)/scale * (x - c - t) + c.
        c, s = math.cos(angle) / scale, math.sin(angle) / scale
        a, b, d, e = c, s, -s, c
        matrix = (
            a,
            b,
            cx - a * (cx + tx) - b * (cy + ty),
            d,
            e,
            cy - d * (cx + tx) - e * (cy + ty),
        )
        return image.transform(
            image.size, Image.AFFINE, matrix, resample=Image.BILINEAR, fillcolor=border_fill(image)
        )


class CropPadOptions(Options):
    max_frac: float = Field(
        0.08, ge=0.0, le=0.3, description="Crop up to this fraction of each side."
    )
    min_frac: float = Field(0.0, ge=0.0, le=0.3, description="Crop at least this fraction.")

    @model_validator(mode="after")
    def _ordered(self) -> CropPadOptions:
        if self.min_frac > self.max_frac:
            raise ValueError("min_frac must not exceed max_frac")
        return self


class CropPad(Augmenter):
    name = "crop_pad"
    description = (
        "Crops up to max_frac from each side and pads back to the original size with the border "
        "colour at a random offset (no rescaling, no flipping)."
    )
    Options = CropPadOptions

    def augment(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        o: CropPadOptions = self.options  # type: ignore[assignment]
        w, h = image.size
        left, right = (int(rng.uniform(o.min_frac, o.max_frac) * w) for _ in range(2))
        top, bottom = (int(rng.uniform(o.min_frac, o.max_frac) * h) for _ in range(2))
        box = (left, top, max(left + 1, w - right), max(top + 1, h - bottom))
        crop = image.crop(box)
        canvas = Image.new(image.mode, image.size, border_fill(image))
        ox = int(rng.integers(0, w - crop.size[0] + 1))
        oy = int(rng.integers(0, h - crop.size[1] + 1))
        canvas.paste(crop, (ox, oy))
        return canvas


@hookimpl
def register_augmenters(register) -> None:
    register(Affine)
    register(CropPad)
