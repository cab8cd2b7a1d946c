"""Throughput of the data pipeline: augmentation and hashing images/s on one process vs all
cores (2,000 images of 450x450; best of ``--repeat`` runs each), and the time to de-duplicate
7,000 images from disk (decode + hash + thumbnail + candidates + verification + group).
A measurement script, not a test: it prints a table.

    python perf/data_throughput.py [--workers N] [--n-aug 2000] [--n-dedup 7000] [--repeat 2]
    python perf/data_throughput.py --scores   # near-duplicate verification scores on phantom8
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from cxr_harness_plugins.augmenters.compose import Compose
from harness.core.pool import parallel_map
from harness.data.dedup import DEFAULT_HASH, group_duplicates
from harness.data.images import encode_png
from harness.data.importers import Record
from harness.data.manifest import _analyse
from harness.data.near_dup import thumbnail, verify_scores
from harness.training.balance import augment_images


def synth(seed: int, size: int = 450) -> Image.Image:
    rng = np.random.default_rng(seed)
    low = Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8))
    arr = np.asarray(low.resize((size, size), Image.BICUBIC), dtype=np.float32)
    arr += rng.normal(0, 4, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _write(args: tuple[Path, int]) -> None:
    path, seed = args
    img = synth(seed // 3)  # every third image is a near copy (noise) of the previous
    if seed % 3:
        arr = np.asarray(img, np.float32) + np.random.default_rng(seed).normal(0, 3, (450, 450))
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    path.write_bytes(encode_png(img))


def timed(fn, *args, **kw) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t0, out


def near_copies(img: Image.Image, seed: int) -> dict[str, Image.Image]:
    """Planted near-copies of one image: noise, shift, JPEG, brightness and combinations."""
    import io

    from harness.data.images import decode_image

    def jpeg(im: Image.Image, q: int) -> Image.Image:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=q)
        return decode_image(buf.getvalue(), "x.jpg")

    def noisy(im: Image.Image, sd: float) -> Image.Image:
        rng = np.random.default_rng(seed)
        arr = np.asarray(im, np.float32) + rng.normal(0, sd, (im.height, im.width))
        return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))

    def shifted(im: Image.Image, fx: float, fy: float) -> Image.Image:
        dx, dy = round(fx * im.width), round(fy * im.height)
        fill = int(np.median(np.asarray(im)))
        return im.transform(im.size, Image.AFFINE, (1, 0, -dx, 0, 1, -dy), fillcolor=fill)

    def bright(im: Image.Image, d: int) -> Image.Image:
        return Image.fromarray(np.clip(np.asarray(im, np.int16) + d, 0, 255).astype(np.uint8))

    sx, sy = np.random.default_rng(seed).uniform(-0.05, 0.05, 2)
    return {
        "noise 3": noisy(img, 3),
        "noise 5": noisy(img, 5),
        "noise 8 (beyond design)": noisy(img, 8),
        "shift 2%": shifted(img, 0.02, 0.0),
        "shift 5% diagonal": shifted(img, 0.05 * np.sign(sx), 0.05 * np.sign(sy)),
        "shift random <= 5%": shifted(img, sx, sy),
        "jpeg q90": jpeg(img, 90),
        "jpeg q75": jpeg(img, 75),
        "jpeg q50": jpeg(img, 50),
        "brightness +12": bright(img, 12),
        "brightness -8": bright(img, -8),
        "brightness -12 (clips)": bright(img, -12),
        "shift+noise 4+bright 8+jpeg 75": jpeg(noisy(bright(shifted(img, sx, sy), 8), 4), 75),
        "5% shift+noise 5+jpeg 60": jpeg(noisy(shifted(img, 0.05, -0.05), 5), 60),
    }


def scores(console: Console, workers: int, every: int = 16) -> None:
    """Verification scores of planted near-copies vs all distinct phantom8 pairs."""
    from cxr_harness_plugins.benchmarks.phantom8 import load_phantom8

    b = load_phantom8()
    images = [s.image for s in b.train + b.val + b.test]
    n = len(images)
    kinds, extra, pairs = [], [], []
    for k in range(0, n, every):
        for kind, im in near_copies(images[k], k).items():
            kinds.append(kind)
            pairs.append((k, n + len(extra)))
            extra.append(im)
    thumbs = np.stack([thumbnail(im, DEFAULT_HASH.thumb) for im in images + extra])
    near = verify_scores(thumbs, np.array(pairs), DEFAULT_HASH.max_shift, workers)
    table = Table(title=f"verification score of planted near-copies of {n // every + 1} phantoms")
    for col in ("near-copy", "min", "median", "max"):
        table.add_column(col, justify="right")
    for kind in dict.fromkeys(kinds):
        v = near[np.array(kinds) == kind]
        table.add_row(kind, f"{v.min():.4f}", f"{np.median(v):.4f}", f"{v.max():.4f}")
    console.print(table)
    ii, jj = np.triu_indices(n, 1)
    t, dist = timed(verify_scores, thumbs[:n], np.c_[ii, jj], DEFAULT_HASH.max_shift, workers)
    q = np.quantile(dist, [1e-4, 1e-3, 1e-2, 0.5])
    console.print(
        f"distinct phantoms, all {len(dist):,} pairs ({t:.0f} s): min {dist.min():.4f}, "
        f"0.01% {q[0]:.4f}, 0.1% {q[1]:.4f}, 1% {q[2]:.4f}, median {q[3]:.3f}; "
        f"<= verify {DEFAULT_HASH.verify}: {(dist <= DEFAULT_HASH.verify).sum()}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--n-aug", type=int, default=2000)
    ap.add_argument("--n-dedup", type=int, default=7000)
    ap.add_argument("--repeat", type=int, default=2, help="best of N runs per measurement")
    ap.add_argument("--scores", action="store_true", help="print verification scores and stop")
    args = ap.parse_args()
    console = Console()
    if args.scores:
        return scores(console, args.workers)
    table = Table(title=f"data throughput ({os.cpu_count()} cores, workers={args.workers})")
    for col in ("step", "1 process", f"{args.workers} processes", "speed-up"):
        table.add_column(col, justify="right")
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("generate images", total=args.n_aug)

        def report(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        images = parallel_map(synth, list(range(args.n_aug)), args.workers, report, "generate")
        aug = Compose()  # affine + photometric + crop_pad
        seeds = list(range(len(images)))
        records = [Record(f"{i}.png", "Normal", data=encode_png(im)) for i, im in enumerate(images)]
        jobs = [(r, DEFAULT_HASH, 50_000_000) for r in records]
        for name, fn, items in (
            ("augment (compose)", lambda w: augment_images(aug, images, seeds, w, report), images),
            ("decode + hash", lambda w: parallel_map(_analyse, jobs, w, report, "hash"), jobs),
        ):
            t1 = tn = float("inf")
            for _ in range(args.repeat):  # interleaved, best of N: a noisy machine
                t1 = min(t1, timed(fn, 1)[0])
                tn = min(tn, timed(fn, args.workers)[0])
            table.add_row(
                name,
                f"{len(items) / t1:.0f} img/s",
                f"{len(items) / tn:.0f} img/s",
                f"{t1 / tn:.2f}x",
            )
        with tempfile.TemporaryDirectory() as tmp:
            paths = [(Path(tmp) / f"{i:05d}.png", i) for i in range(args.n_dedup)]
            parallel_map(_write, paths, args.workers, report, "write dedup set")
            recs = [Record(p.name, "Normal", path=p) for p, _ in paths]

            def dedup() -> int:
                infos = parallel_map(
                    _analyse,
                    [(r, DEFAULT_HASH, 50_000_000) for r in recs],
                    args.workers,
                    report,
                    "dedup: decode + hash",
                )
                g = group_duplicates(
                    [i["pixels"] for i in infos],
                    [i["phash"] for i in infos],
                    DEFAULT_HASH,
                    [i["thumb"] for i in infos],
                    args.workers,
                    report,
                )
                return len(g.members())

            t, groups = timed(dedup)
    console.print(table)
    console.print(
        f"de-duplicate {args.n_dedup} images of 450x450 from disk ({args.workers} "
        f"processes): {t:.1f} s -> {groups} groups (expected {-(-args.n_dedup // 3)})"
    )


if __name__ == "__main__":
    main()
