"""The complete hook surface of cxr-harness.

Plugins (built-in or third-party) implement these with ``@hookimpl`` and are discovered through
the ``cxr_harness`` entry-point group. Every hook is called once per plugin manager, when
``harness.plugins.make_registry()`` builds the registry; none is ``firstresult``.
"""

from collections.abc import Callable

import pluggy

PROJECT = "cxr_harness"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_augmenters(register: Callable[[type], None]) -> None:
    """Register augmenter classes by calling ``register(AugmenterClass)`` once for each.

    Called once when the registry is built. An augmenter subclasses
    ``harness.components.Augmenter``: it has a unique ``name``, a strict ``Options`` model and
    ``augment(image, rng) -> image`` (pure, seeded, same size and mode, never flips). Augmenters
    are applied to the train split only. Returns nothing.
    """


@hookspec
def register_synthesizers(register: Callable[[type], None]) -> None:
    """Register synthesizer classes by calling ``register(SynthesizerClass)`` once for each.

    Called once when the registry is built. A synthesizer subclasses
    ``harness.components.Synthesizer``: a unique ``name``, a strict ``Options`` model and
    ``synthesize(label, n, rng) -> list[str]`` producing report texts for one class. Returns
    nothing.
    """


@hookspec
def register_trainers(register: Callable[[type], None]) -> None:
    """Register trainer classes by calling ``register(TrainerClass)`` once for each.

    Called once when the registry is built. A trainer subclasses ``harness.components.Trainer``:
    a unique ``name``, a strict ``Options`` model and
    ``train(model_spec, train_set, val_set, workdir, context) -> TrainResult`` where ``context``
    (a ``TrainContext``) carries the class list, the fixed prompt and the evaluation runner.
    Returns nothing.
    """


@hookspec
def register_benchmarks(register: Callable[[type], None]) -> None:
    """Register benchmark classes by calling ``register(BenchmarkClass)`` once for each.

    Called once when the registry is built. A benchmark subclasses
    ``harness.components.BenchmarkSource``: a unique ``name`` (what ``--benchmark NAME`` and
    ``harness benchmark verify|check-leakage|build NAME`` accept), a strict ``Options`` model,
    ``load() -> Benchmark`` (deterministic; the host computes its fingerprint) and
    ``expected_fingerprint``, the fingerprint ``harness benchmark verify`` checks a rebuild
    against. A registered name takes precedence over a built benchmark folder of that name.
    Returns nothing.
    """


@hookspec
def register_metrics(register: Callable[[type], None]) -> None:
    """Register metric classes by calling ``register(MetricClass)`` once for each.

    Called once when the registry is built. A metric subclasses ``harness.components.Metric``:
    a unique ``name`` (what ``--metric NAME`` and ``metrics = [...]`` accept), a strict
    ``Options`` model, the class attributes ``title`` (column heading), ``higher_is_better``,
    ``needs_reference`` (scored only on test images with a reference report, with coverage),
    ``corpus_level``, ``implementation`` and ``tokenisation`` (recorded in provenance), and
    ``statistics(items, classes) -> (n, d) array`` of per-sample sufficient statistics with
    ``combine(sums, classes) -> (B,) array``, the metric's value from summed statistics. Summing
    weighted rows is what gives every metric its bootstrap intervals and paired tests. Importing
    the plugin module must stay cheap: import heavy libraries inside the methods. Returns
    nothing.
    """
