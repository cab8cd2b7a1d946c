"""Robust image decoding for user data sets, and a process pool that shares decoded pixels.

Every decoded image is converted to one canonical form, 8-bit grayscale (``L``):

* 16-bit / 32-bit grayscale (``I;16``, ``I``, ``F``) is min-max *rescaled* to 0..255, never
  clipped (``convert("L")`` would turn most of a 16-bit radiograph white);
* palette, CMYK, YCbCr and RGB images are converted; images with alpha are composited onto black;
* EXIF orientation is honoured.

Zero-byte, non-image, corrupt and truncated files, and images over a decompression-bomb pixel
limit, raise :class:`ImageLoadError` (a ``DataError``) with a short ``reason`` so callers can
skip, count and list them.
"""

from __future__ import annotations

import io
import mmap
import multiprocessing as mp
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from harness.core.errors import DataError
from harness.core.pool import ProgressFn, parallel_map, resolve_workers

CANONICAL_MODE = "L"
# Refuse anything over 50 megapixels (a 7,000 x 7,000 radiograph): a decompression-bomb guard.
DEFAULT_MAX_PIXELS = 50_000_000
T = TypeVar("T")


class ImageLoadError(DataError):
    """One file could not be turned into an image; ``reason`` is a short category."""

    def __init__(self, name: str, reason: str, detail: str = "") -> None:
        self.name, self.reason, self.detail = name, reason, detail
        super().__init__(f"{name}: {reason}" + (f" ({detail})" if detail else ""))


def _rescale(arr: np.ndarray) -> np.ndarray:
    arr = arr.astype(np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.full(arr.shape, 0 if hi <= 0 else 255, dtype=np.uint8)
    return np.round((arr - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def to_canonical(image: Image.Image) -> Image.Image:
    """Convert any PIL image to 8-bit grayscale, rescaling high bit depths and dropping alpha."""
    mode = image.mode
    if mode == CANONICAL_MODE:
        return image
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_rescale(np.asarray(image)), mode="L")
    if mode in ("P", "PA"):
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("LA", "La", "RGBa", "RGBA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("L")
    if mode != "RGB":
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, 1
    return image.convert("L")


def decode_image(data: bytes, name: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``data`` (a whole file) into a canonical image; ImageLoadError names ``name``."""
    if not data:
        raise ImageLoadError(name, "empty", "zero-byte file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageLoadError(
                    name, "too-large", f"{width}x{height} exceeds {max_pixels:,} pixels"
                )
            image.load()
            image = ImageOps.exif_transpose(image) or image
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(name, "too-large", str(exc)) from None
    except UnidentifiedImageError:
        raise ImageLoadError(name, "not-an-image", "unrecognised image format") from None
    except Exception as exc:  # one bad file must never crash a build: name it and move on
        raise ImageLoadError(name, "corrupt", f"{type(exc).__name__}: {exc}") from None
    if image.size[0] == 0 or image.size[1] == 0:
        raise ImageLoadError(name, "corrupt", "zero-sized image")
    return to_canonical(image)


def load_image(path: os.PathLike[str] | str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read and decode one file (see :func:`decode_image`)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ImageLoadError(str(path), "unreadable", str(exc)) from None
    return decode_image(data, str(path), max_pixels)


def encode_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


# Set before the pool forks in parallel_map_images; the workers inherit them.
_IMAGE_JOB: dict[str, Any] = {}


def _image_to_slot(i: int) -> Any:
    """Worker: run the image function on item ``i`` and write its pixels into slot ``i`` of the
    shared buffer; only (mode, size, length, info) travels back. An image that does not fit its
    slot (or carries a palette) travels back pickled."""
    job = _IMAGE_JOB
    image = job["fn"](job["items"][i])
    raw = image.tobytes() if image.mode not in ("P", "PA", "1") else None
    start, cap = job["offsets"][i], job["caps"][i]
    if raw is None or len(raw) > cap:
        return image
    job["buf"][start : start + len(raw)] = raw
    return (image.mode, image.size, len(raw), image.info or None)


def parallel_map_images(
    fn: Callable[[T], Image.Image],
    items: Sequence[T],
    slot_bytes: Sequence[int],
    workers: int | None = None,
    progress: ProgressFn | None = None,
    stage: str = "working",
) -> list[Image.Image]:
    """``[fn(x) for x in items]`` for a function that returns images, over a process pool.

    Workers write each result's raw pixels into a shared anonymous memory map (``slot_bytes[i]``
    reserved for item ``i``; pages cost memory only once written), so images are never pickled
    back: this process rebuilds them with one copy each. Results equal the serial path's bit
    for bit. Without ``fork`` (or with one worker) this is :func:`parallel_map`.
    """
    n = len(items)
    workers = min(resolve_workers(workers), max(1, n))
    if workers <= 1 or "fork" not in mp.get_all_start_methods() or n == 0:
        return parallel_map(fn, items, workers, progress, stage)
    caps = [max(1, int(c)) for c in slot_bytes]
    if len(caps) != n:
        raise ValueError("slot_bytes needs one size per item")
    offsets = np.concatenate([[0], np.cumsum(caps)[:-1]]).tolist()
    buf = mmap.mmap(-1, sum(caps))
    _IMAGE_JOB.update(fn=fn, items=items, offsets=offsets, caps=caps, buf=buf)
    try:
        chunk = max(1, min(16, n // (workers * 16) or 1))
        out = parallel_map(_image_to_slot, range(n), workers, progress, stage, chunk)
        view = memoryview(buf)
        try:
            for i, res in enumerate(out):
                if isinstance(res, tuple):
                    mode, size, length, info = res
                    image = Image.frombytes(mode, size, view[offsets[i] : offsets[i] + length])
                    image.info.update(info or {})
                    out[i] = image
        finally:
            view.release()
    finally:
        _IMAGE_JOB.clear()
        buf.close()
    return out
