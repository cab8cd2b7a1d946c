"""Second stage of near-duplicate detection: verify perceptual-hash candidates on thumbnails.

The perceptual hash (``harness.data.dedup``) is the candidate stage: cheap and maintained, but
blind to
images that share one global layout, as chest radiographs do (independently drawn phantom8
phantoms come as close as 0 bits of 64). A candidate pair is confirmed only if one image is a copy
of the other up to pixel noise, re-encoding, a small shift and a brightness/contrast change:

1. every image gets a ``thumb`` x ``thumb`` uint8 grayscale thumbnail (antialiased bilinear),
   computed in the same worker pass as its hashes;
2. thumbnails are smoothed (Gaussian, ``SMOOTH_SIGMA`` px): that averages pixel noise and JPEG
   artefacts away but keeps each image's own structure (lung texture, vessels);
3. the centre of one thumbnail is aligned in the other: the best normalised cross-correlation over
   integer shifts of up to ``max_shift`` px, refined to sub-pixel precision (a parabola through
   the peak, then bilinear resampling; the better of the integer and the refined alignment);
4. the score is the **median absolute residual** after a least-squares gain fit, over the RMS of
   the centred template, ``median|a - alpha b| / rms(a)``, the smaller of both directions. A copy
   leaves only noise behind; a different image that merely shares the anatomy leaves its own
   texture behind over most of the image. Edges, where a correlation score is dominated by the
   anatomy every chest shares, hardly move a median.

A candidate is a near duplicate iff ``score <= verify``. ``DEFAULT_VERIFY`` comes from phantom8,
the hardest case (one drawn template, 112 px, little detail), measured with
``python perf/data_throughput.py --scores`` (max score over 51 phantoms of every class per kind):

    planted near-copies  noise s.d. 3 / 5: 0.007 / 0.011   JPEG q90 / 75 / 50: 0.003 / 0.005 /
    0.009   shift 2% / 5% / random <= 5%: 0.005 / 0.011 / 0.009   brightness +12 / -8: 0.0002 /
    0.012   shift + noise 4 + brightness 8 + JPEG 75: 0.013   5% shift + noise 5 + JPEG 60: 0.017
    distinct phantoms    all 326,028 pairs: min 0.0226, 0.01% quantile 0.0275, median 0.24
    beyond the design    noise s.d. 8: 0.018; brightness -12 (clips the black border): 0.020

``DEFAULT_VERIFY = 0.02`` sits between them. Scores scale with the noise a copy carries relative
to the image's own detail; radiographs of several hundred pixels keep far more detail than a
112 px phantom, so distinct real images are expected to score higher still (measure
yours: build with `--verify 0` and compare).
"""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from harness.core.pool import ProgressFn, parallel_map, resolve_workers

DEFAULT_THUMB = 64
DEFAULT_MAX_SHIFT = 5  # px of the thumbnail (8% of 64): shifts up to 5% plus a margin
DEFAULT_VERIFY = 0.02
SMOOTH_SIGMA = 1.5
_CHUNK = 2048  # pairs per task and per residual batch (memory: CHUNK x thumb^2 floats)

# Set before a fork-based parallel_map: the workers inherit them instead of receiving copies.
_SMOOTHED: np.ndarray = np.zeros((0, 1, 1), np.float32)
_TASKS: list[tuple[np.ndarray, np.ndarray]] = []
_STATE = [DEFAULT_MAX_SHIFT, 1]  # max shift, workers


def thumbnail(image: Image.Image, size: int = DEFAULT_THUMB) -> np.ndarray:
    """A ``size`` x ``size`` uint8 grayscale thumbnail (aspect ratio not kept)."""
    gray = image if image.mode == "L" else image.convert("L")
    return np.asarray(gray.resize((size, size), Image.BILINEAR), dtype=np.uint8)


def _gauss_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) matrix applying a 1-D Gaussian blur with mirrored edges."""
    radius = max(1, int(round(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = np.zeros((n, n))
    for i in range(n):
        for k, w in zip(range(i - radius, i + radius + 1), taps, strict=True):
            j = -k - 1 if k < 0 else (2 * n - k - 1 if k >= n else k)
            out[i, min(max(j, 0), n - 1)] += w
    return out


def smooth(thumbs: np.ndarray) -> np.ndarray:
    """(N, T, T) uint8 thumbnails -> Gaussian-smoothed float32 copies."""
    g = _gauss_matrix(thumbs.shape[-1], SMOOTH_SIGMA).astype(np.float32)
    return np.einsum("ij,njk,lk->nil", g, thumbs.astype(np.float32), g, optimize=True)


def _one_way(s: np.ndarray, ii: np.ndarray, jj: np.ndarray, shift: int) -> np.ndarray:
    """Score of each template ``s[ii]`` (its centre) found in ``s[jj]``; pairs sorted by ``jj``."""
    t = s.shape[-1]
    m, k1 = t - 2 * shift, 2 * shift + 1
    used = np.unique(ii)
    cen = s[used, shift : t - shift, shift : t - shift].reshape(len(used), m * m)
    cen = cen - cen.mean(axis=1, keepdims=True)
    cnorm = np.sqrt((cen * cen).sum(axis=1))
    row_of = np.searchsorted(used, ii)
    out = np.empty(len(ii))
    bounds = [*np.flatnonzero(np.r_[True, jj[1:] != jj[:-1]]).tolist(), len(jj)]
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        views = sliding_window_view(s[jj[start]], (m, m))  # (k1, k1, m, m)
        win = views.reshape(k1 * k1, m * m)
        win = win - win.mean(axis=1, keepdims=True)
        wnorm = np.sqrt((win * win).sum(axis=1))
        for a in range(start, stop, _CHUNK):
            rows = row_of[a : min(a + _CHUNK, stop)]
            out[a : a + len(rows)] = _match(cen[rows], cnorm[rows], views, win, wnorm)
    return out


def _match(
    cen: np.ndarray, cnorm: np.ndarray, views: np.ndarray, win: np.ndarray, wnorm: np.ndarray
) -> np.ndarray:
    """Align templates ``cen`` in one image's windows ``views``; return their scores."""
    k1 = views.shape[0]
    ncc = (cen @ win.T) / np.maximum(cnorm[:, None] * wnorm[None, :], 1e-12)
    oy, ox = np.divmod(ncc.argmax(axis=1), k1)
    grid = ncc.reshape(len(cen), k1, k1)
    r = np.arange(len(cen))
    py = oy + _vertex(grid[r, :, ox], r, oy, k1)
    px = ox + _vertex(grid[r, oy, :], r, ox, k1)
    by = np.minimum(py.astype(np.int64), k1 - 2)
    bx = np.minimum(px.astype(np.int64), k1 - 2)
    wy = (py - by).astype(np.float32)[:, None, None]
    wx = (px - bx).astype(np.float32)[:, None, None]
    win_f = (1 - wy) * ((1 - wx) * views[by, bx] + wx * views[by, bx + 1]) + wy * (
        (1 - wx) * views[by + 1, bx] + wx * views[by + 1, bx + 1]
    )
    sub = _residual(cen, cnorm, win_f.reshape(len(cen), -1))
    return np.minimum(sub, _residual(cen, cnorm, views[oy, ox].reshape(len(cen), -1)))


def _vertex(line: np.ndarray, r: np.ndarray, o: np.ndarray, k1: int) -> np.ndarray:
    """Sub-pixel offset of the peak ``line[r, o]`` (parabola through 3 points), in -0.5..0.5."""
    a = line[r, np.maximum(o - 1, 0)]
    b = line[r, o]
    c = line[r, np.minimum(o + 1, k1 - 1)]
    den = a - 2 * b + c
    inner = (o > 0) & (o < k1 - 1) & (den < 0)
    frac = np.where(inner, 0.5 * (a - c) / np.where(inner, den, -1.0), 0.0)
    return np.clip(frac, -0.5, 0.5)


def _residual(cen: np.ndarray, cnorm: np.ndarray, win: np.ndarray) -> np.ndarray:
    """``median|a - alpha w| / rms(a)``; 0 for two flat images, 1 for a flat and a textured one."""
    win = win - win.mean(axis=1, keepdims=True)
    ww = (win * win).sum(axis=1)
    alpha = (cen * win).sum(axis=1) / np.maximum(ww, 1e-12)
    res = np.median(np.abs(cen - alpha[:, None] * win), axis=1)
    flat_a, flat_w = cnorm <= 1e-3, ww <= 1e-6
    score = res * np.sqrt(cen.shape[1]) / np.where(flat_a, 1.0, cnorm)
    return np.where(flat_a, np.where(flat_w, 0.0, 1.0), score)


def _run_task(k: int) -> np.ndarray:
    ii, jj = _TASKS[k]
    if _STATE[1] == 1:
        return _one_way(_SMOOTHED, ii, jj, _STATE[0])
    from threadpoolctl import threadpool_limits  # via scikit-learn

    with threadpool_limits(1):  # one BLAS thread per worker process: no oversubscription
        return _one_way(_SMOOTHED, ii, jj, _STATE[0])


def verify_scores(
    thumbs: np.ndarray,
    pairs: np.ndarray,
    max_shift: int = DEFAULT_MAX_SHIFT,
    workers: int | None = 1,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """Score (lower: more alike) of each pair ``(i, j)`` of ``thumbs`` (N, T, T) uint8.

    A pair's score depends only on its two thumbnails and ``max_shift`` (up to float32
    rounding). ``workers`` > 1 shares the work between forked processes (where the platform
    cannot fork, it runs in this process).
    """
    global _SMOOTHED, _TASKS
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if not len(pairs):
        return np.zeros(0)
    if "fork" not in mp.get_all_start_methods():
        workers = 1
    tasks, where = [], []
    for d in (0, 1):  # both directions; each sorted by the image whose windows are searched
        order = np.argsort(pairs[:, 1 - d], kind="stable")
        for a in range(0, len(order), _CHUNK):
            idx = order[a : a + _CHUNK]
            tasks.append((pairs[idx, d], pairs[idx, 1 - d]))
            where.append((d, idx))
    workers = min(resolve_workers(workers), len(tasks))
    _SMOOTHED, _TASKS, _STATE[:] = smooth(np.asarray(thumbs)), tasks, [max_shift, workers]
    try:
        results = parallel_map(
            _run_task, range(len(tasks)), workers, progress, "verify near duplicates", 1
        )
    finally:
        _SMOOTHED, _TASKS = np.zeros((0, 1, 1), np.float32), []
    both = np.full((2, len(pairs)), np.inf)
    for (d, idx), res in zip(where, results, strict=True):
        both[d, idx] = res
    return both.min(axis=0)
