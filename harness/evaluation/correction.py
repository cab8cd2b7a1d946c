"""Multiple-comparison correction of the p-values of a grid's comparisons with base.

A grid compares every configuration with the same base row, so with ten configurations one of
them reaches p < 0.05 by chance far more often than one time in twenty. The family is "every
configuration compared with base" for one metric (each seed row is its own comparison):

- ``holm``: Holm's step-down correction, controlling the family-wise error rate;
- ``bh``: Benjamini–Hochberg, controlling the false discovery rate (less conservative);
- ``none``: the raw p-values.

Adjusted p-values are monotone in the raw ones and never exceed 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from harness.core.errors import OptionError

CORRECTIONS: tuple[str, ...] = ("holm", "bh", "none")
DEFAULT_CORRECTION = "holm"
LABELS = {"holm": "Holm", "bh": "BH", "none": "uncorrected"}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in the input order.

    With the raw p sorted ascending, ``p_(1) <= ... <= p_(m)``, the adjusted value of the i-th
    smallest is ``max_{j <= i} min(1, (m - j + 1) * p_(j))``.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        out[i] = running
    return out


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (q-values), in the input order.

    With the raw p sorted ascending, the adjusted value of the i-th smallest is
    ``min_{j >= i} min(1, m / j * p_(j))``.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i], reverse=True)
    out = [0.0] * m
    running = 1.0
    for k, i in enumerate(order):
        rank = m - k  # 1-based rank in ascending order
        running = min(running, min(1.0, m / rank * float(p_values[i])))
        out[i] = running
    return out


def check_correction(method: str) -> str:
    """``method`` if it names a correction, else an OptionError naming ``--correction``."""
    if method not in CORRECTIONS:
        raise OptionError(f"--correction {method!r}: expected one of {', '.join(CORRECTIONS)}")
    return method


def adjust(p_values: Sequence[float], method: str = DEFAULT_CORRECTION) -> list[float]:
    """Adjusted p-values by ``method``; NaN entries stay NaN and do not count in the family."""
    check_correction(method)
    kept = [i for i, p in enumerate(p_values) if not math.isnan(p)]
    raw = [float(p_values[i]) for i in kept]
    if method == "holm":
        adjusted = holm(raw)
    elif method == "bh":
        adjusted = benjamini_hochberg(raw)
    else:
        adjusted = raw
    out = [float("nan")] * len(p_values)
    for i, a in zip(kept, adjusted, strict=True):
        out[i] = a
    return out
