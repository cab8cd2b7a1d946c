"""Base classes for the five plugin kinds and their strict options models."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from harness.data.benchmark import Benchmark
    from harness.data.sample import Sample
    from harness.model.loading import ModelSpec
    from harness.results.columns import MetricColumn


class Options(BaseModel):
    """Strict options: unknown keys are errors, values are validated and then frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Component:
    """Common shape of every plugin component: a unique name, a description and Options."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Options: ClassVar[type[Options]] = Options

    def __init__(self, options: Options | None = None) -> None:
        self.options = options if options is not None else self.Options()


class Augmenter(Component):
    """Image augmentation for the train split only. Pure and seeded; never flips."""

    def augment(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        """Return an augmented copy of ``image`` with the same size and mode."""
        raise NotImplementedError


class Synthesizer(Component):
    """Writes report texts for one class (used as training targets)."""

    def synthesize(self, label: str, n: int, rng: np.random.Generator) -> list[str]:
        """Return ``n`` report texts describing class ``label``."""
        raise NotImplementedError

    def check_classes(self, classes: Sequence[str]) -> None:
        """Raise a typed error, before any work, for a class this synthesizer cannot describe.

        The default accepts every class; ontology-driven synthesizers override it.
        """


class BenchmarkSource(Component):
    """A benchmark a plugin builds from code (no files on disk), loadable by its ``name``.

    ``load()`` must be deterministic: the same code always gives the same images, labels,
    reports and splits. The host computes the benchmark's fingerprint from what ``load()``
    returns; ``expected_fingerprint`` records the one the plugin's author built, and
    ``harness benchmark verify NAME`` rebuilds the benchmark and compares the two (empty: the
    plugin records none, so it cannot be verified).
    """

    expected_fingerprint: ClassVar[str] = ""

    def load(self) -> Benchmark:
        """Build and return the benchmark (name, classes, train/val/test samples, caveats)."""
        raise NotImplementedError


@dataclass(frozen=True)
class MetricItem:
    """One test image as a metric sees it: the true and predicted class (None: invalid), the
    generated explanation and the reference report (empty where the image has none)."""

    id: str
    label: str
    prediction: str | None
    explanation: str
    reference: str


class Metric(Component):
    """A leaderboard metric, computed from per-sample sufficient statistics.

    ``statistics`` gives one row of numbers per test image; ``combine`` turns column sums into
    the metric's value. A metric that is the mean of per-image scores uses two columns
    (score, 1); a corpus-level metric (BLEU) sums n-gram counts; Macro-F1 sums per-class
    counts. A bootstrap resample is a weight per image, so every metric gets its interval and
    its paired test from ``combine(weights @ statistics)``: exact for corpus-level metrics too.
    A reference metric (``needs_reference``) has all-zero rows for images without a reference
    report and ``combine`` gives NaN where no reference was drawn.
    """

    title: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True
    needs_reference: ClassVar[bool] = False
    corpus_level: ClassVar[bool] = False
    implementation: ClassVar[str] = "cxr-harness"
    tokenisation: ClassVar[str] = "none (class labels)"
    paired: ClassVar[bool] = True  # tested against base in the leaderboard

    def column(self) -> MetricColumn:
        """This metric's record in the run's metric table (stored in its provenance)."""
        from harness.results.columns import MetricColumn

        cls = type(self)
        return MetricColumn(
            name=self.name,
            title=self.title or self.name,
            higher_is_better=self.higher_is_better,
            needs_reference=self.needs_reference,
            corpus_level=self.corpus_level,
            paired=self.paired,
            implementation=self.implementation,
            version=self.version(),
            tokenisation=self.tokenisation,
            module=cls.__module__,
            cls=cls.__qualname__,
            options=self.options.model_dump(mode="json"),
        )

    def version(self) -> str:
        """The version of the implementation (library) computing the metric."""
        from harness import __version__

        return __version__

    def preflight(self) -> None:
        """Raise a typed error now if the metric cannot be computed here (e.g. needs Java)."""

    def statistics(self, items: Sequence[MetricItem], classes: Sequence[str]) -> np.ndarray:
        """Per-sample sufficient statistics, shape ``(len(items), d)``."""
        raise NotImplementedError

    def combine(self, sums: np.ndarray, classes: Sequence[str]) -> np.ndarray:
        """The metric's value for each row of summed statistics, ``(B, d) -> (B,)``."""
        raise NotImplementedError

    def value(self, items: Sequence[MetricItem], classes: Sequence[str]) -> float:
        """The metric over all ``items`` (NaN for a reference metric without references)."""
        stats = self.statistics(items, classes)
        return float(self.combine(stats.sum(axis=0, keepdims=True), classes)[0])


class MeanMetric(Metric):
    """A metric that is the mean over images of a per-image score in [0, 1]."""

    needs_reference: ClassVar[bool] = True

    def scores(self, items: Sequence[MetricItem]) -> list[float]:
        """One score per item; called only with items that have a reference."""
        raise NotImplementedError

    def statistics(self, items: Sequence[MetricItem], classes: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(items), 2))
        keep = [k for k, it in enumerate(items) if it.reference.strip() or not self.needs_reference]
        if keep:
            out[keep, 0] = self.scores([items[k] for k in keep])
            out[keep, 1] = 1.0
        return out

    def combine(self, sums: np.ndarray, classes: Sequence[str]) -> np.ndarray:
        n = sums[:, 1]
        return np.divide(sums[:, 0], n, out=np.full(len(sums), np.nan), where=n > 0)


@dataclass
class TrainContext:
    """What the runner hands a trainer besides the data.

    ``evaluate(model, processor, samples)`` is the harness's one evaluation runner, bound to the
    benchmark's fixed prompt, class list and generation settings: trainers use it for
    in-training validation, so validation is scored exactly like the final benchmark.
    """

    classes: tuple[str, ...]
    prompt: str
    evaluate: Callable[[Any, Any, list[Sample]], Any]
    # progress(step, total, loss): loss is the latest logged training loss, or None
    progress: Callable[[int, int, float | None], None] | None = None


@dataclass
class TrainResult:
    """What a trainer hands back to the runner."""

    model: Any  # a ready-to-evaluate model (base, or base + adapter)
    processor: Any
    adapter_dir: Path | None = None
    trainable_params: int = 0
    total_params: int = 0
    train_seconds: float = 0.0
    steps: int = 0
    resolved: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer(Component):
    """Turns a base model spec and a training set into an evaluable model."""

    # False for a trainer that only loads a model (``base``, ``adapter``): its configuration
    # has no augmenter, synthesizer or seed in its id, and no train set is built for it.
    trains: ClassVar[bool] = True

    @classmethod
    def model_defaults(cls, family: str) -> dict[str, Any]:
        """Recommended options for a model family (a preset name such as ``tiny`` or
        ``qwen2.5-vl``); explicit options override them. The default recommends nothing."""
        return {}

    def preflight(self) -> None:
        """Raise a typed error now if this trainer cannot run here (e.g. needs CUDA).

        Called for every configuration before any work starts, so a bad combination fails
        in seconds instead of after hours of other configurations.
        """

    def train(
        self,
        model_spec: ModelSpec,
        train_set: list[Sample],
        val_set: list[Sample],
        workdir: Path,
        context: TrainContext,
    ) -> TrainResult:
        """Train (or not) and return an evaluable model.

        ``train_set`` samples carry the training prompt in ``Sample.prompt`` and the target
        report text in ``Sample.report``. ``workdir`` is private to this configuration.
        """
        raise NotImplementedError
