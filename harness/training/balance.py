"""Dynamic class balancing of the train split: undersample large classes, fill small ones with
augmented copies. Run it after the split, on the train split only.

Every augmented copy keeps its source's group and has the id ``SOURCE_ID~balK`` (K = copy
number), so it can always be traced to, and never separated from, its source image.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
from PIL import Image

from harness.components import Augmenter
from harness.core.errors import OptionError
from harness.core.pool import ProgressFn
from harness.core.rng import derive_seed
from harness.data.images import parallel_map_images
from harness.data.sample import Sample

Policy = int | str  # a number, "max" or "median"
AUG_MARK = "~"


def parse_policy(value: str | int) -> Policy:
    """``"max"``, ``"median"`` or a positive integer (as int or text); OptionError otherwise."""
    if isinstance(value, str) and value.strip().lower() in ("max", "median"):
        return value.strip().lower()
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or (isinstance(value, float) and not float(value).is_integer()):
        raise OptionError(
            f"balance policy {value!r}: expected a positive number, 'max' or 'median'"
        )
    return n


def target_count(counts: dict[str, int], policy: Policy) -> int:
    policy = parse_policy(policy)
    if not counts:
        return 0
    if policy == "max":
        return max(counts.values())
    if policy == "median":
        return int(round(statistics.median(counts.values())))
    return int(policy)


def source_id(sample: Sample) -> str:
    """The original image's id of an augmented copy (the id itself for an original)."""
    return sample.id.split(AUG_MARK, 1)[0]


def _augment_one(job: tuple[Augmenter, Image.Image, int]) -> Image.Image:
    augmenter, image, seed = job
    return augmenter.augment(image, np.random.default_rng(seed))


def augment_images(
    augmenter: Augmenter,
    images: Sequence[Image.Image],
    seeds: Sequence[int],
    workers: int | None = 1,
    progress: ProgressFn | None = None,
) -> list[Image.Image]:
    """Augment each image with its own seed, over ``workers`` processes (None: all cores).

    The workers inherit the images (fork) and write the augmented pixels into shared memory
    (:func:`harness.data.images.parallel_map_images`): nothing is pickled per image either way.
    """
    jobs = [(augmenter, im, s) for im, s in zip(images, seeds, strict=True)]
    slots = [4 * im.width * im.height for im in images]  # any mode up to 32 bits per pixel
    return parallel_map_images(
        _augment_one, jobs, slots, workers, progress, f"augment ({augmenter.name})"
    )


def balance(
    samples: Sequence[Sample],
    policy: Policy,
    augmenter: Augmenter,
    seed: int,
    workers: int | None = 1,
    progress: ProgressFn | None = None,
) -> tuple[list[Sample], dict[str, int]]:
    """Return (balanced train samples, resulting per-class counts).

    Classes above the target are undersampled (a seeded subset, original order kept); classes
    below it get augmented copies of their images, cycled in a seeded order, each seeded per
    (seed, source id, copy number). Augmented samples keep their source's group.
    """
    if any(AUG_MARK in s.id for s in samples):
        raise OptionError("balance: the input already holds augmented copies; balance originals")
    by_label: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_label[s.label].append(s)
    target = target_count({k: len(v) for k, v in by_label.items()}, policy)
    out: list[Sample] = []
    todo: list[tuple[Sample, int]] = []
    for label in sorted(by_label):
        items = by_label[label]
        rng = np.random.default_rng(derive_seed("balance", seed, label))
        if len(items) >= target:
            keep = sorted(rng.choice(len(items), size=target, replace=False).tolist())
            out.extend(items[i] for i in keep)
            continue
        out.extend(items)
        order = rng.permutation(len(items)).tolist()
        todo.extend(
            (items[order[k % len(items)]], k // len(items)) for k in range(target - len(items))
        )
    seeds = [derive_seed("augment", augmenter.name, seed, s.id, "bal", c) for s, c in todo]
    images = augment_images(augmenter, [s.image for s, _ in todo], seeds, workers, progress)
    for (src, c), image in zip(todo, images, strict=True):
        out.append(src.with_(id=f"{src.id}{AUG_MARK}bal{c}", image=image, group=src.group))
    counts = dict(sorted(Counter(s.label for s in out).items()))
    return out, counts
