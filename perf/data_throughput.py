"""Throughput of the data pipeline: augmentation and hashing images/s on one process vs all
cores (2,000 images of 450x450), and the time to de-duplicate 7,000 images from disk
(decode + hash + group). A measurement script, not a test: it prints a table.

    python perf/data_throughput.py [--workers N] [--n-aug 2000] [--n-dedup 7000]
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
from harness.balance import augment_images
from harness.dedup import DEFAULT_HASH, group_duplicates
from harness.images import encode_png, parallel_map
from harness.importers import Record
from harness.manifest import _analyse


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--n-aug", type=int, default=2000)
    ap.add_argument("--n-dedup", type=int, default=7000)
    args = ap.parse_args()
    console = Console()
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
            t1, _ = timed(fn, 1)
            tn, _ = timed(fn, args.workers)
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
                    DEFAULT_HASH.threshold,
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
