"""CIDEr-D and METEOR 1.5 from pycocoevalcap (the MS-COCO caption evaluation code).

Both are means of per-image scores over the test images with a reference report, the way
pycocoevalcap reports CIDEr. CIDEr-D's document frequencies come from the references of the
images scored together (the whole test set of a configuration); bootstrap resamples keep those
frequencies fixed and resample the per-image scores. pycocoevalcap's METEOR aggregate is
computed by the jar from pooled statistics; the leaderboard reports the mean of the per-image
METEOR scores instead, so that resampling images is a weighted mean.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import shutil
from collections.abc import Sequence
from typing import Any

from harness.components import MeanMetric, MetricItem
from harness.core.errors import BackendUnavailableError
from harness.hookspecs import hookimpl

EXTRA = "pip install 'cxr-harness[textmetrics]'"
_WORD = re.compile(r"[a-z0-9]+")


def _need_pycocoevalcap(metric: str) -> None:
    try:
        import pycocoevalcap  # noqa: F401
    except ImportError:
        raise BackendUnavailableError(
            f"the {metric} metric needs pycocoevalcap, which is not installed: {EXTRA}"
        ) from None


def words(text: str) -> str:
    """CIDEr-D's tokenisation: lower-cased runs of letters and digits, joined by spaces."""
    return " ".join(_WORD.findall(text.lower()))


class _Coco(MeanMetric):
    implementation = "pycocoevalcap"

    def version(self) -> str:
        return md.version("pycocoevalcap")


class CiderD(_Coco):
    name = "cider"
    title = "CIDEr-D"
    description = "CIDEr-D (n ≤ 4, σ = 6, ×10; pycocoevalcap), mean over images"
    tokenisation = "lower-cased alphanumeric words (punctuation dropped)"

    def preflight(self) -> None:
        _need_pycocoevalcap("cider")

    def scores(self, items: Sequence[MetricItem]) -> list[float]:
        _need_pycocoevalcap("cider")
        from pycocoevalcap.cider.cider_scorer import CiderScorer

        scorer = CiderScorer(n=4, sigma=6.0)
        for it in items:
            scorer += (words(it.explanation), [words(it.reference)])
        _, per_image = scorer.compute_score()
        return [float(s) for s in per_image]


class Meteor(_Coco):
    name = "meteor"
    title = "METEOR"
    description = "METEOR 1.5 (English, -norm; pycocoevalcap's jar, needs Java), mean over images"
    tokenisation = "METEOR 1.5 -norm: lower-cased, punctuation split off (English)"

    def preflight(self) -> None:
        _need_pycocoevalcap("meteor")
        if shutil.which("java") is None:
            raise BackendUnavailableError(
                "the meteor metric runs METEOR 1.5's jar and needs a Java runtime, and no "
                "`java` is on PATH: install one (Debian/Ubuntu: apt-get install "
                "default-jre-headless) or drop --metric meteor"
            )

    def scores(self, items: Sequence[MetricItem]) -> list[float]:
        self.preflight()
        from pycocoevalcap.meteor.meteor import Meteor as Jar

        flat = [(" ".join(it.explanation.split()), " ".join(it.reference.split())) for it in items]
        asked = {str(k): ([ref], [hyp]) for k, (hyp, ref) in enumerate(flat) if hyp}
        out = [0.0] * len(items)  # an empty explanation scores 0 (the jar rejects it)
        if asked:
            jar: Any = Jar()
            try:
                gts = {k: v[0] for k, v in asked.items()}
                res = {k: v[1] for k, v in asked.items()}
                _, per_image = jar.compute_score(gts, res)
            finally:
                del jar  # its finaliser closes the jar's pipe and ends the process
            for k, s in zip(asked, per_image, strict=True):
                out[int(k)] = float(s)
        return out


@hookimpl
def register_metrics(register):  # type: ignore[no-untyped-def]
    register(CiderD)
    register(Meteor)
