"""Benchmarks by name: a benchmark plugin's splits (fingerprinted by the host), else one built by
``harness benchmark build``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.errors import DataError, PluginError
from harness.data.benchmark import Benchmark, fingerprint

if TYPE_CHECKING:
    from harness.registry import Registry

# What runs use unless told otherwise: the built-in benchmark plugin
# (cxr_harness_plugins.benchmarks.phantom8). No other code treats this name specially.
DEFAULT_BENCHMARK = "phantom8"


@dataclass(frozen=True)
class PluginVerifyResult:
    """A plugin benchmark rebuilt: its fingerprint against the one its plugin records."""

    name: str
    expected: str
    rebuilt: str

    @property
    def ok(self) -> bool:
        return bool(self.expected) and self.expected == self.rebuilt


def _registry(registry: Registry | None) -> Registry:
    if registry is not None:
        return registry
    from harness.plugins import make_registry

    return make_registry()


def plugin_benchmark(name: str, registry: Registry | None = None) -> Benchmark | None:
    """Build the benchmark a plugin registers as ``name`` (None if none does).

    The host computes the fingerprint from the returned splits; a plugin that returns another
    name, something that is not a Benchmark, or a fingerprint of its own that differs, is a
    PluginError.
    """
    registry = _registry(registry)
    if name not in registry.names("benchmark"):
        return None
    entry = registry.get("benchmark", name)
    bench = registry.create("benchmark", name).load()
    where = f"benchmark {name!r} ({entry.plugin})"
    if not isinstance(bench, Benchmark):
        raise PluginError(f"{where}: load() returned {type(bench).__name__}, not a Benchmark")
    if bench.name != name:
        raise PluginError(f"{where}: load() returned a benchmark named {bench.name!r}")
    splits = {"train": bench.train, "val": bench.val, "test": bench.test}
    computed = fingerprint(splits, tuple(bench.classes))
    if bench.fingerprint and bench.fingerprint != computed:
        raise PluginError(
            f"{where}: load() reports fingerprint {bench.fingerprint}, "
            f"its splits hash to {computed}"
        )
    bench.fingerprint = computed
    return bench


def verify_plugin_benchmark(
    name: str, registry: Registry | None = None
) -> PluginVerifyResult | None:
    """Rebuild plugin benchmark ``name`` and compare its fingerprint with the recorded one
    (None if no plugin registers ``name``)."""
    registry = _registry(registry)
    bench = plugin_benchmark(name, registry)
    if bench is None:
        return None
    expected = registry.get("benchmark", name).cls.expected_fingerprint
    return PluginVerifyResult(name, expected, bench.fingerprint)


def check_benchmark(name: str, root: Path | None = None, registry: Registry | None = None) -> None:
    """Raise DataError (listing what exists) if ``name`` names no registered benchmark and no
    built one; loads nothing."""
    registry = _registry(registry)
    registered = registry.names("benchmark")
    if name in registered:
        return
    from harness.data.layout import DEFAULT_ROOT

    base = root if root is not None else DEFAULT_ROOT
    candidate = Path(name) if "/" in name else base / name
    if not candidate.is_dir():
        built = sorted(p.name for p in base.glob("*/benchmark.json") for p in [p.parent])
        raise DataError(
            f"Unknown benchmark {name!r}. Registered by plugins: "
            f"{', '.join(registered) or 'none'}; built in {base}: {', '.join(built) or 'none'} "
            f"(make one with `harness benchmark build`; list plugins with `harness plugins`)."
        )


def load_benchmark(
    name: str, root: Path | None = None, registry: Registry | None = None
) -> Benchmark:
    """The benchmark a plugin registers as ``name``, else one built by ``harness benchmark build``
    under ``root/NAME`` (default ``./benchmarks``; a path containing ``/`` is used as is).

    ``registry`` defaults to a fresh ``make_registry()``.
    """
    registry = _registry(registry)
    bench = plugin_benchmark(name, registry)
    if bench is not None:
        return bench
    from harness.data.layout import DEFAULT_ROOT
    from harness.data.manifest import load_manifest_benchmark

    check_benchmark(name, root, registry)
    base = root if root is not None else DEFAULT_ROOT
    return load_manifest_benchmark(name, base)
