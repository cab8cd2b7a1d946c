"""BLEU-1..4 and chrF from sacrebleu, corpus-level, on the explanation vs the reference report.

sacrebleu's per-segment sufficient statistics (n-gram matches and totals, lengths; character
and word n-gram counts for chrF) are summed, so the leaderboard value is sacrebleu's corpus
score and each bootstrap resample recomputes that corpus score exactly. Scores are reported on
[0, 1] (sacrebleu prints them ×100). Only test images with a reference report take part.
"""

from __future__ import annotations

import importlib.metadata as md
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from harness.components import Metric, MetricItem, Options
from harness.core.errors import BackendUnavailableError
from harness.hookspecs import hookimpl

EXTRA = "pip install 'cxr-harness[textmetrics]'"


def _sacrebleu() -> Any:
    try:
        import sacrebleu
    except ImportError:
        raise BackendUnavailableError(
            f"the BLEU and chrF metrics need sacrebleu, which is not installed: {EXTRA}"
        ) from None
    return sacrebleu


class _Sacre(Metric):
    needs_reference: ClassVar[bool] = True
    corpus_level: ClassVar[bool] = True
    implementation = "sacrebleu"

    def version(self) -> str:
        return md.version("sacrebleu")

    def preflight(self) -> None:
        _sacrebleu()

    def scorer(self) -> Any:
        raise NotImplementedError

    def statistics(self, items: Sequence[MetricItem], classes: Sequence[str]) -> np.ndarray:
        scorer = self.scorer()
        width = len(scorer._extract_corpus_statistics(["a"], [["a"]])[0])
        out = np.zeros((len(items), width + 1))  # last column: has a reference
        keep = [k for k, it in enumerate(items) if it.reference.strip()]
        if keep:
            hyps = [" ".join(items[k].explanation.split()) for k in keep]
            refs = [[" ".join(items[k].reference.split()) for k in keep]]
            out[keep, :width] = np.asarray(scorer._extract_corpus_statistics(hyps, refs), float)
            out[keep, width] = 1.0
        return out

    def combine(self, sums: np.ndarray, classes: Sequence[str]) -> np.ndarray:
        scorer = self.scorer()
        out = np.full(len(sums), np.nan)
        for row, stats in enumerate(sums):
            if stats[-1] > 0:
                score = scorer._compute_score_from_stats([int(round(x)) for x in stats[:-1]])
                out[row] = score.score / 100.0
        return out


class BleuOptions(Options):
    tokenize: Literal["13a", "none", "intl", "char"] = Field(
        "13a", description="sacrebleu tokenizer"
    )
    lowercase: bool = Field(True, description="lower-case both texts first")


class _Bleu(_Sacre):
    order: ClassVar[int] = 4
    Options = BleuOptions

    @property
    def tokenisation(self) -> str:  # type: ignore[override]
        o = self.options
        return f"sacrebleu tokenizer {o.tokenize}" + (", lower-cased" if o.lowercase else "")

    def scorer(self) -> Any:
        o = self.options
        return _sacrebleu().BLEU(
            max_ngram_order=self.order, tokenize=o.tokenize, lowercase=o.lowercase, force=True
        )


class Bleu1(_Bleu):
    name, title, order = "bleu1", "BLEU-1", 1
    description = "Corpus BLEU with unigrams (sacrebleu)"


class Bleu2(_Bleu):
    name, title, order = "bleu2", "BLEU-2", 2
    description = "Corpus BLEU with n-grams up to 2 (sacrebleu, exp smoothing)"


class Bleu3(_Bleu):
    name, title, order = "bleu3", "BLEU-3", 3
    description = "Corpus BLEU with n-grams up to 3 (sacrebleu, exp smoothing)"


class Bleu4(_Bleu):
    name, title, order = "bleu4", "BLEU-4", 4
    description = "Corpus BLEU with n-grams up to 4 (sacrebleu, exp smoothing)"


BLEU = (Bleu1, Bleu2, Bleu3, Bleu4)


class ChrfOptions(Options):
    word_order: int = Field(0, ge=0, le=2, description="0: chrF, 2: chrF++")
    lowercase: bool = Field(True, description="lower-case both texts first")


class Chrf(_Sacre):
    name = "chrf"
    title = "chrF"
    description = "Corpus chrF (character 6-grams, beta 2; sacrebleu)"
    Options = ChrfOptions

    @property
    def tokenisation(self) -> str:  # type: ignore[override]
        o = self.options
        words = f", word {o.word_order}-grams" if o.word_order else ""
        return "characters (whitespace removed)" + words + (", lower-cased" if o.lowercase else "")

    def scorer(self) -> Any:
        o = self.options
        return _sacrebleu().CHRF(word_order=o.word_order, lowercase=o.lowercase)


@hookimpl
def register_metrics(register):  # type: ignore[no-untyped-def]
    for cls in (*BLEU, Chrf):
        register(cls)
