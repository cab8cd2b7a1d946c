"""Uncertainty for small held-out sets: bootstrap CIs, paired tests, McNemar (seeds:
harness.evaluation.seeds; over seeds and images: harness.evaluation.hierarchical; correction for
many comparisons: harness.evaluation.correction; everything for one grid:
harness.evaluation.analysis).

Every resampling function is seeded and vectorised: a bootstrap is a ``(B, n)`` matrix of
multinomial resample counts, and each metric is a weighted sum over samples, so Macro-F1 over
1,000 resamples of 1,000 images costs a few matrix products rather than 1,000 sklearn calls.
Invalid answers (``prediction is None``) count as wrong, exactly as in
``harness.evaluation.metrics``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from harness.evaluation.seeds import HEADLINE

DEFAULT_RESAMPLES = 1000


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    confidence: float = 0.95
    n_resamples: int = DEFAULT_RESAMPLES

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class PairedResult:
    """``estimate`` = metric(b) - metric(a) on the shared images, with a bootstrap CI and p.

    ``p_adjusted`` is ``p_value`` corrected for the grid's many comparisons with base
    (harness.evaluation.correction), set once every comparison of the grid is known.
    """

    metric: str
    estimate: float
    low: float
    high: float
    p_value: float
    n: int
    n_resamples: int = DEFAULT_RESAMPLES
    p_adjusted: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class McNemarResult:
    """``b``: only A correct, ``c``: only B correct (discordant pairs)."""

    b: int
    c: int
    statistic: float
    p_value: float
    method: str
    p_adjusted: float | None = None  # corrected across the grid, as PairedResult.p_adjusted

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- resampling primitives


def bootstrap_weights(n: int, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """A ``(n_resamples, n)`` float matrix: how often each sample is drawn in each resample."""
    if n <= 0:
        raise ValueError("cannot bootstrap an empty sample")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    offsets = (np.arange(n_resamples) * n)[:, None]
    counts = np.bincount((idx + offsets).ravel(), minlength=n_resamples * n)
    return counts.reshape(n_resamples, n).astype(np.float64)


def percentile_interval(boot: np.ndarray, estimate: float, confidence: float) -> Interval:
    tail = (1 - confidence) / 2 * 100
    kept = boot[~np.isnan(boot)]  # a resample without any reference has no ROUGE-L
    if not kept.size:
        return Interval(float(estimate), float("nan"), float("nan"), confidence, 0)
    lo, hi = np.percentile(kept, [tail, 100 - tail])
    return Interval(float(estimate), float(lo), float(hi), confidence, int(kept.shape[0]))


def bootstrap_ci(
    data: Sequence[float] | np.ndarray | tuple[Sequence[Any], ...],
    metric_fn: Callable[..., float] | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> Interval:
    """Percentile bootstrap CI of ``metric_fn`` over per-sample data.

    ``data`` is one per-sample array (``metric_fn`` defaults to the mean, computed vectorised) or
    a tuple of equal-length arrays, passed resampled to ``metric_fn(*arrays)`` (e.g.
    ``(y_true, y_pred)`` with a Macro-F1 function).
    """
    if isinstance(data, tuple):
        arrays = [np.asarray(a, dtype=object if _is_text(a) else None) for a in data]
    else:
        arrays = [np.asarray(data)]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError("per-sample arrays differ in length")
    if metric_fn is None:
        if len(arrays) != 1:
            raise ValueError("metric_fn is required with several per-sample arrays")
        values = arrays[0].astype(np.float64)
        weights = bootstrap_weights(n, n_resamples, seed)
        return percentile_interval(weights @ values / n, float(values.mean()), confidence)
    rng = np.random.default_rng(seed)
    boot = np.empty(n_resamples)
    for i in range(n_resamples):
        idx = rng.integers(0, n, size=n)
        boot[i] = metric_fn(*(a[idx] for a in arrays))
    return percentile_interval(boot, float(metric_fn(*arrays)), confidence)


def _is_text(values: Sequence[Any]) -> bool:
    return any(isinstance(v, str) or v is None for v in list(values)[:50])


# ---------------------------------------------------------------- encoded predictions


@dataclass
class Encoded:
    """Predictions of one configuration as arrays; column ``len(classes)`` means invalid."""

    ids: list[str]
    classes: tuple[str, ...]
    true: np.ndarray  # (n,) int class index
    pred: np.ndarray  # (n,) int class index, len(classes) for invalid
    rouge: np.ndarray  # (n,) float, 0 where no reference
    has_ref: np.ndarray | None = None  # (n,) bool; None means every image has a reference
    # plugin metrics: name -> (n, d) per-sample statistics, and their combine functions
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    combiners: dict[str, Callable[[np.ndarray], np.ndarray]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.ids)

    def subset(self, ids: Sequence[str]) -> Encoded:
        pos = {i: k for k, i in enumerate(self.ids)}
        take = np.array([pos[i] for i in ids], dtype=np.int64)
        ref = self.reference_mask()[take]
        return Encoded(
            list(ids),
            self.classes,
            self.true[take],
            self.pred[take],
            self.rouge[take],
            ref,
            {m: s[take] for m, s in self.extra.items()},
            self.combiners,
        )

    def reference_mask(self) -> np.ndarray:
        if self.has_ref is None:
            return np.ones(self.n, dtype=bool)
        return self.has_ref


def encode(
    predictions: Sequence[Mapping[str, Any]],
    classes: Sequence[str],
    extra: Mapping[str, Sequence[Sequence[float]]] | None = None,
    combiners: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None,
) -> Encoded:
    """Encode prediction dicts (``id``, ``label``, ``prediction``, ``rouge_l``) as arrays;
    ``extra`` holds plugin metrics' per-sample statistics (in prediction order) and
    ``combiners`` their combine functions.

    A label outside ``classes`` is appended to the class list so nothing is dropped silently;
    a predicted label outside the list counts as wrong for every class, like an invalid one.
    """
    cls = list(classes)
    for p in predictions:
        if p["label"] not in cls:
            cls.append(p["label"])
    index = {c: k for k, c in enumerate(cls)}
    invalid = len(cls)
    true = np.array([index[p["label"]] for p in predictions], dtype=np.int64)
    pred = np.array(
        [
            index.get(p["prediction"], invalid) if p.get("prediction") else invalid
            for p in predictions
        ],
        dtype=np.int64,
    )
    rouge = np.array([float(p.get("rouge_l") or 0.0) for p in predictions], dtype=np.float64)
    has_ref = np.array([p.get("rouge_l") is not None for p in predictions], dtype=bool)
    ids = [str(p["id"]) for p in predictions]
    combiners = combiners or {}
    tables = {
        m: np.asarray(rows, dtype=np.float64).reshape(len(predictions), -1)
        for m, rows in (extra or {}).items()
        if m in combiners and len(rows) == len(predictions)
    }
    return Encoded(ids, tuple(cls), true, pred, rouge, has_ref, tables, dict(combiners))


def _one_hot(index: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((len(index), width))
    out[np.arange(len(index)), index] = 1.0
    return out


def _design(enc: Encoded) -> np.ndarray:
    """Per-sample columns whose weighted sums give every metric: TP, support and predicted
    count per class, then correct, ROUGE-L, invalid, one and has-a-reference."""
    k = len(enc.classes)
    t = _one_hot(enc.true, k)
    p = _one_hot(enc.pred, k + 1)[:, :k]
    ref = enc.reference_mask()
    extra = np.stack(
        [(enc.true == enc.pred), enc.rouge * ref, enc.pred == k, np.ones(enc.n), ref], axis=1
    ).astype(np.float64)
    return np.concatenate([t * p, t, p, extra], axis=1)


def weighted_metrics(enc: Encoded, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Headline metrics + invalid rate for each row of a ``(B, n)`` weight matrix.

    One matrix product: a weight row means "sample i drawn w_i times", so every count is a
    weighted sum over samples.
    """
    k = len(enc.classes)
    sums = weights @ _design(enc)
    tp, support, predicted = sums[:, :k], sums[:, k : 2 * k], sums[:, 2 * k : 3 * k]
    correct, rouge, invalid, total, with_ref = sums[:, 3 * k :].T
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    plugins = {m: np.asarray(enc.combiners[m](weights @ s), float) for m, s in enc.extra.items()}
    return plugins | {
        "macro_f1": f1.mean(axis=1),
        "accuracy": correct / total,
        # ROUGE-L over the (resampled) images that have a reference report only
        "rouge_l": np.divide(rouge, with_ref, out=np.full_like(rouge, np.nan), where=with_ref > 0),
        "invalid_rate": invalid / total,
    }


def point_metrics(enc: Encoded) -> dict[str, float]:
    return {k: float(v[0]) for k, v in weighted_metrics(enc, np.ones((1, enc.n))).items()}


def metric_intervals(
    enc: Encoded,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
    weights: np.ndarray | None = None,
) -> dict[str, Interval]:
    """Bootstrap CIs for macro_f1, accuracy, rouge_l and invalid_rate of one configuration."""
    w = weights if weights is not None else bootstrap_weights(enc.n, n_resamples, seed)
    boot = weighted_metrics(enc, w)
    point = point_metrics(enc)
    return {m: percentile_interval(boot[m], point[m], confidence) for m in boot}


# ---------------------------------------------------------------- paired tests


def shared_ids(a: Encoded, b: Encoded) -> list[str]:
    """Test images both configurations answered, in ``a``'s order."""
    other = set(b.ids)
    return [i for i in a.ids if i in other]


def paired_bootstrap(
    a: Encoded,
    b: Encoded,
    metrics: Iterable[str] = HEADLINE,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
    weights: np.ndarray | None = None,
) -> dict[str, PairedResult]:
    """Bootstrap of ``metric(b) - metric(a)`` resampling the shared images jointly.

    The two-sided p-value tests "no difference" by shifting the bootstrap distribution to the
    null: ``p = (1 + #{|d* - d| >= |d|}) / (B + 1)``. ``weights`` (``(B, n_shared)``) may be
    passed to reuse one resampling across many comparisons.
    """
    ids = shared_ids(a, b)
    if not ids:
        raise ValueError("the two configurations share no test images")
    a, b = a.subset(ids), b.subset(ids)
    if not np.array_equal(a.true, b.true):
        raise ValueError("the shared test images carry different labels")
    w = weights if weights is not None else bootstrap_weights(len(ids), n_resamples, seed)
    n_resamples = w.shape[0]
    ba, bb = weighted_metrics(a, w), weighted_metrics(b, w)
    pa, pb = point_metrics(a), point_metrics(b)
    tail = (1 - confidence) / 2 * 100
    out = {}
    for m in metrics:
        d = pb[m] - pa[m]
        boot = bb[m] - ba[m]
        boot = boot[~np.isnan(boot)]  # resamples that drew no reference (ROUGE-L)
        if not boot.size or np.isnan(d):
            continue
        lo, hi = np.percentile(boot, [tail, 100 - tail])
        extreme = np.sum(np.abs(boot - d) >= abs(d) - 1e-12)
        p = float(min(1.0, (1 + extreme) / (boot.size + 1)))
        out[m] = PairedResult(m, float(d), float(lo), float(hi), p, len(ids), int(boot.size))
    return out


def mcnemar(
    correct_a: Sequence[bool] | np.ndarray,
    correct_b: Sequence[bool] | np.ndarray,
    exact: bool | None = None,
) -> McNemarResult:
    """McNemar's test on paired correctness; exact binomial when fewer than 25 discordant pairs.

    The chi-square variant uses the continuity correction ``(|b - c| - 1)^2 / (b + c)``.
    """
    ca = np.asarray(correct_a, dtype=bool)
    cb = np.asarray(correct_b, dtype=bool)
    if ca.shape != cb.shape:
        raise ValueError("paired correctness arrays differ in length")
    b = int(np.sum(ca & ~cb))
    c = int(np.sum(~ca & cb))
    n = b + c
    if n == 0:
        return McNemarResult(b, c, 0.0, 1.0, "exact")
    if exact if exact is not None else n < 25:
        k = min(b, c)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
        return McNemarResult(b, c, float(k), min(1.0, 2 * tail), "exact")
    stat = (abs(b - c) - 1) ** 2 / n
    return McNemarResult(b, c, float(stat), math.erfc(math.sqrt(stat / 2)), "chi2-cc")


def mcnemar_encoded(a: Encoded, b: Encoded) -> McNemarResult:
    ids = shared_ids(a, b)
    a, b = a.subset(ids), b.subset(ids)
    return mcnemar(a.true == a.pred, b.true == b.pred)
