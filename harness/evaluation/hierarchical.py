"""A bootstrap over training seeds and test images together, for recipes run with several seeds.

A recipe's spread has two sources: which test images were drawn, and which training seed was
drawn. The per-seed mean ± sd covers only the second, a single row's CI only the first. Each
resample here draws both, in two stages:

1. draw ``S`` seeds with replacement from the recipe's ``S`` seed rows;
2. draw ``n`` test images with replacement from the ``n`` images every seed row answered;
   the same image draw applies to every drawn seed (the seeds were scored on one test set);

and the resampled value is the mean over the drawn seeds of each seed's metric on the drawn
images. The interval is the percentile interval of these values; the estimate is the mean of
the seeds' metrics on the shared images. Both stages take their random numbers from one
generator seeded with ``seed``, so the interval is reproducible.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from harness.evaluation.seeds import HEADLINE
from harness.evaluation.stats import (
    DEFAULT_RESAMPLES,
    Encoded,
    Interval,
    bootstrap_weights,
    percentile_interval,
    point_metrics,
    weighted_metrics,
)

METHOD = "hierarchical bootstrap: seeds, then test images"


def _shared(encs: Sequence[Encoded]) -> list[str]:
    common = set(encs[0].ids)
    for e in encs[1:]:
        common &= set(e.ids)
    return [i for i in encs[0].ids if i in common]


def seed_image_intervals(
    encs: Sequence[Encoded],
    metrics: Iterable[str] = (*HEADLINE, "invalid_rate"),
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Interval]:
    """Intervals of each metric's seed mean, resampling seeds and shared test images together."""
    if len(encs) < 2:
        raise ValueError("a bootstrap over seeds needs at least two seed rows")
    ids = _shared(encs)
    if not ids:
        raise ValueError("the seed rows share no test images")
    subs = [e.subset(ids) for e in encs]
    if any(not np.array_equal(subs[0].true, s.true) for s in subs[1:]):
        raise ValueError("the seed rows carry different labels for the same test images")
    rng = np.random.default_rng(seed)
    n_seeds = len(subs)
    picks = rng.integers(0, n_seeds, size=(n_resamples, n_seeds))
    counts = np.stack([(picks == s).sum(axis=1) for s in range(n_seeds)], axis=1)  # (B, S)
    image_weights = bootstrap_weights(len(ids), n_resamples, int(rng.integers(0, 2**31 - 1)))
    per_seed = [weighted_metrics(s, image_weights) for s in subs]
    points = [point_metrics(s) for s in subs]
    out = {}
    for m in metrics:
        if any(m not in b for b in per_seed):
            continue
        values = np.stack([b[m] for b in per_seed], axis=1)  # (B, S)
        drawn = np.where(counts > 0, values, 0.0)  # a seed not drawn adds nothing, NaN included
        boot = (counts * drawn).sum(axis=1) / n_seeds
        boot[_drew_nan(counts, values)] = np.nan
        estimate = float(np.mean([p[m] for p in points]))
        out[m] = percentile_interval(boot, estimate, confidence)
    return out


def _drew_nan(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Resamples in which a drawn seed's metric is undefined (no reference among the images)."""
    return ((counts > 0) & np.isnan(values)).any(axis=1)
