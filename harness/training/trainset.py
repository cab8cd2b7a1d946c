"""Builds one configuration's training set: train split -> synthesizer text -> augmentation.

Everything here touches the benchmark's train split only; the test split never enters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from harness.components import Augmenter, Synthesizer
from harness.core.rng import derive_seed
from harness.data.sample import Sample
from harness.training.balance import augment_images


def attach_texts(
    samples: Sequence[Sample], synthesizer: Synthesizer | None, seed: int, prompt: str
) -> list[Sample]:
    """Give each train sample a target report from the synthesizer (by class) and a prompt.

    With ``synthesizer=None`` the sample keeps its own reference report.
    """
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        by_class[s.label].append(i)
    out = [s.with_(prompt=prompt) for s in samples]
    if synthesizer is None:
        return out
    for label, idx in sorted(by_class.items()):
        rng = np.random.default_rng(derive_seed("synth", synthesizer.name, label, seed))
        texts = synthesizer.synthesize(label, len(idx), rng)
        for i, text in zip(idx, texts, strict=True):
            out[i] = out[i].with_(report=text)
    return out


def augment(
    samples: Sequence[Sample], augmenter: Augmenter, copies: int, seed: int
) -> list[Sample]:
    """Originals plus ``copies`` augmented copies of each, seeded per (seed, image id, copy)."""
    out = list(samples)
    if augmenter.name == "none" or copies <= 0:
        return out
    pairs = [(s, c) for s in samples for c in range(copies)]
    images = augment_images(
        augmenter,
        [s.image for s, _ in pairs],
        [derive_seed("augment", augmenter.name, seed, s.id, c) for s, c in pairs],
    )
    out += [
        s.with_(id=f"{s.id}~aug{c}", image=im) for (s, c), im in zip(pairs, images, strict=True)
    ]
    return out
