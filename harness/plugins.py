"""The plugin-manager factory. Built-ins load through the same entry points as third parties."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import sys

import pluggy

from harness import hookspecs
from harness.core.errors import PluginError
from harness.registry import KINDS, Registry

ENTRY_POINT_GROUP = "cxr_harness"
TRACE_ENV = "CXR_HARNESS_TRACE_HOOKS"

# Built-in plugin modules, keyed by the entry-point names pyproject.toml declares for them.
# Registering them here under those names keeps the harness working from an uninstalled source
# tree; pluggy then skips the identical entry points.
DEFAULT_PLUGINS: dict[str, str] = {
    "augmenters_basic": "cxr_harness_plugins.augmenters.basic",
    "augmenters_geometric": "cxr_harness_plugins.augmenters.geometric",
    "augmenters_photometric": "cxr_harness_plugins.augmenters.photometric",
    "augmenters_compose": "cxr_harness_plugins.augmenters.compose",
    "synthesizers_template": "cxr_harness_plugins.synthesizers.template",
    "synthesizers_prompts": "cxr_harness_plugins.synthesizers.prompts",
    "synthesizers_gemini": "cxr_harness_plugins.synthesizers.gemini",
    "trainers_base": "cxr_harness_plugins.trainers.base",
    "trainers_peft": "cxr_harness_plugins.trainers.peft_trainers",
    "benchmarks_phantom8": "cxr_harness_plugins.benchmarks.phantom8",
    "metrics_classification": "cxr_harness_plugins.metrics.classification",
    "metrics_rouge": "cxr_harness_plugins.metrics.rouge",
    "metrics_sacrebleu": "cxr_harness_plugins.metrics.sacrebleu_metrics",
    "metrics_coco": "cxr_harness_plugins.metrics.coco",
    "metrics_findings": "cxr_harness_plugins.metrics.findings",
    "metrics_bertscore": "cxr_harness_plugins.metrics.bertscore",
}


def make_plugin_manager(
    load_entry_points: bool = True, trace: bool | None = None
) -> pluggy.PluginManager:
    """Build a fresh plugin manager: hookspecs, built-ins, then the ``cxr_harness`` entry points.

    Tracing of every hook call goes to stderr when ``trace`` is true or, if ``trace`` is None,
    when the environment variable ``CXR_HARNESS_TRACE_HOOKS`` is set (read here, at the edge).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for ep_name, modname in DEFAULT_PLUGINS.items():
        try:
            module = importlib.import_module(modname)
        except ImportError as exc:
            raise PluginError(f"Built-in plugin {modname!r} failed to import: {exc}") from exc
        pm.register(module, name=ep_name)
    if load_entry_points:
        load_entry_point_plugins(pm)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(str(exc)) from exc
    if trace if trace is not None else os.environ.get(TRACE_ENV):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    return pm


def load_entry_point_plugins(pm: pluggy.PluginManager, group: str = ENTRY_POINT_GROUP) -> int:
    """Import and register each ``group`` entry point, one by one, as pluggy would.

    Names already registered (the built-ins) or blocked are skipped. A plugin that fails to
    import or to register raises ``PluginError`` naming the entry point, its distribution and
    version, and how to remove it. Returns the number of plugins loaded.
    """
    count = 0
    for ep in md.entry_points(group=group):
        if pm.has_plugin(ep.name) or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # a broken third-party plugin must be named, not crash
            raise PluginError(_broken_plugin_message(ep, exc)) from exc
        count += 1
    return count


def _broken_plugin_message(ep: md.EntryPoint, exc: Exception) -> str:
    dist = ep.dist
    name = dist.metadata["Name"] if dist is not None else None
    origin = f"{name} {dist.version}" if name else "an unknown distribution"
    remedy = f"; to remove it: pip uninstall {name}" if name else ""
    detail = " ".join(f"{type(exc).__name__}: {exc}".split())
    return (
        f"Plugin entry point {ep.name!r} ({ep.value}) of {origin} failed to load: {detail}{remedy}"
    )


def _distribution_of(module_name: str, index: dict[str, list[str]]) -> tuple[str, str]:
    top = module_name.split(".")[0]
    dists = index.get(top, [])
    if dists:
        return dists[0], md.version(dists[0])
    if top in ("harness", "cxr_harness_plugins"):
        from harness import __version__

        return "cxr-harness", __version__
    return "(not installed)", ""


def make_registry(pm: pluggy.PluginManager | None = None) -> Registry:
    """Call every ``register_*`` hook once and collect the components into a Registry."""
    pm = pm or make_plugin_manager()
    registry = Registry()
    index = md.packages_distributions()  # one scan of installed distributions per registry
    for kind in KINDS:

        def register(cls: type, _kind: str = kind) -> None:
            module = getattr(cls, "__module__", "?")
            dist, version = _distribution_of(module, index)
            registry.add(_kind, cls, module, dist, version)

        getattr(pm.hook, f"register_{kind}s")(register=register)
    return registry
