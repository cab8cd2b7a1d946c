"""BERTScore F1 of the explanation vs the reference report, over a local transformers encoder.

The score follows Zhang et al. (2020): both texts are encoded, special tokens dropped, token
embeddings L2-normalised; precision is the mean over the explanation's tokens of the best
cosine similarity with a reference token, recall the same the other way round, and the score
is their harmonic mean. No IDF weighting and no baseline rescaling. It is a mean of per-image
scores over the images with a reference, so its CIs and paired tests resample images.

No weights are downloaded: ``model`` is a local directory (``save_pretrained`` layout) or a hub
id already in the local cache. Without them, the plan fails before any work with
:class:`MissingWeightsError` naming the weights.
"""

from __future__ import annotations

import importlib.metadata as md
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field

from harness.components import MeanMetric, MetricItem, Options
from harness.core.errors import BackendUnavailableError
from harness.hookspecs import hookimpl


class MissingWeightsError(BackendUnavailableError):
    """A model-based metric's weights are neither a local directory nor in the hub cache."""


class BertScoreOptions(Options):
    model: str = Field(
        "roberta-large",
        description="encoder weights: a local save_pretrained directory or a cached hub id",
    )
    layer: int = Field(17, description="hidden layer whose token embeddings are compared")
    batch_size: int = Field(16, ge=1, description="texts encoded per forward")
    max_length: int = Field(512, ge=8, description="tokens kept per text")


def resolve_weights(model: str) -> Path:
    """The local directory holding ``model``'s weights, or MissingWeightsError naming them."""
    path = Path(model).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return path
        raise MissingWeightsError(
            f"metric bertscore: {path} has no config.json (expected a save_pretrained directory)"
        )
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception:  # noqa: BLE001 - any miss of the offline cache means: not here
        raise MissingWeightsError(
            f"metric bertscore: the encoder weights {model!r} are not on this machine (neither "
            "a directory nor in the Hugging Face cache) and are never downloaded; set "
            '[options.metric.bertscore] model = "/path/to/encoder" in the experiment file'
        ) from None


class BertScore(MeanMetric):
    name = "bertscore"
    title = "BERTScore"
    description = "BERTScore F1 (no IDF, no rescaling) of the explanation vs the reference"
    implementation = "cxr-harness over transformers AutoModel"
    Options = BertScoreOptions

    @property
    def tokenisation(self) -> str:  # type: ignore[override]
        return f"the encoder's own tokenizer ({self.options.model}), special tokens dropped"

    def version(self) -> str:
        return f"transformers {md.version('transformers')}, layer {self.options.layer}"

    def preflight(self) -> None:
        resolve_weights(self.options.model)

    @cached_property
    def encoder(self) -> tuple[Any, Any]:
        from transformers import AutoModel, AutoTokenizer

        path = resolve_weights(self.options.model)
        model = AutoModel.from_pretrained(path).eval()
        return AutoTokenizer.from_pretrained(path), model

    def embed(self, texts: Sequence[str]) -> list[Any]:
        """Normalised token embeddings of each text, special tokens dropped."""
        import torch

        tok, model = self.encoder
        out = []
        for start in range(0, len(texts), self.options.batch_size):
            batch = list(texts[start : start + self.options.batch_size])
            enc = tok(
                batch,
                padding=True,
                truncation=True,
                max_length=self.options.max_length,
                return_tensors="pt",
                return_special_tokens_mask=True,
            )
            special = enc.pop("special_tokens_mask").bool()
            with torch.inference_mode():
                hidden = model(**enc, output_hidden_states=True).hidden_states
            layer = hidden[min(self.options.layer, len(hidden) - 1)]
            keep = enc["attention_mask"].bool() & ~special
            for row in range(len(batch)):
                vecs = layer[row][keep[row]].double()
                out.append(torch.nn.functional.normalize(vecs, dim=-1))
        return out

    def scores(self, items: Sequence[MetricItem]) -> list[float]:
        cands = self.embed([it.explanation for it in items])
        refs = self.embed([it.reference for it in items])
        result = []
        for c, r in zip(cands, refs, strict=True):
            if not len(c) or not len(r):
                result.append(0.0)
                continue
            sim = c @ r.T
            p, rec = float(sim.max(dim=1).values.mean()), float(sim.max(dim=0).values.mean())
            result.append(2 * p * rec / (p + rec) if p + rec > 0 else 0.0)
        return result


@hookimpl
def register_metrics(register):  # type: ignore[no-untyped-def]
    register(BertScore)
