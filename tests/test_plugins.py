"""The hook surface and the plugin-manager factory (harness/hookspecs.py, harness/plugins.py)."""

from __future__ import annotations

import inspect
import sys
import tomllib
import types
from pathlib import Path

import pluggy
import pytest

from harness import hookspecs, plugins
from harness.components import Augmenter, Options
from harness.core.errors import PluginError
from harness.hookspecs import hookimpl
from harness.plugins import DEFAULT_PLUGINS, make_plugin_manager, make_registry

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("cached_distributions")


def _hookspec_functions() -> dict[str, types.FunctionType]:
    marker = f"{hookspecs.PROJECT}_spec"
    return {
        name: fn
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, marker)
    }


SPECS = _hookspec_functions()


def test_hook_surface_is_the_five_register_hooks():
    assert set(SPECS) == {
        "register_augmenters",
        "register_synthesizers",
        "register_trainers",
        "register_benchmarks",
        "register_metrics",
    }


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_hookspec_has_a_real_docstring(name):
    doc = inspect.getdoc(SPECS[name])
    assert doc and len(doc.split()) >= 10, f"hookspec {name} lacks a docstring"
    assert "register(" in doc


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_hookspec_is_not_firstresult(name):
    opts = getattr(SPECS[name], f"{hookspecs.PROJECT}_spec")
    assert not opts.get("firstresult")


def test_make_registry_calls_every_hookspec_exactly_once():
    pm = make_plugin_manager(load_entry_points=False, trace=False)
    calls: list[str] = []
    undo = pm.add_hookcall_monitoring(
        lambda hook_name, impls, kwargs: calls.append(hook_name), lambda *a: None
    )
    try:
        make_registry(pm)
    finally:
        undo()
    assert sorted(calls) == sorted(SPECS)


def test_each_hook_reaches_a_third_party_impl_with_a_register_callable():
    seen: dict[str, object] = {}

    class Recorder:
        @hookimpl
        def register_augmenters(self, register):
            seen["register_augmenters"] = register

        @hookimpl
        def register_synthesizers(self, register):
            seen["register_synthesizers"] = register

        @hookimpl
        def register_trainers(self, register):
            seen["register_trainers"] = register

        @hookimpl
        def register_benchmarks(self, register):
            seen["register_benchmarks"] = register

        @hookimpl
        def register_metrics(self, register):
            seen["register_metrics"] = register

    pm = make_plugin_manager(load_entry_points=False, trace=False)
    pm.register(Recorder(), name="recorder")
    make_registry(pm)
    assert set(seen) == set(SPECS)
    assert all(callable(r) for r in seen.values())


def test_built_in_hooks_produce_components_of_every_kind():
    registry = make_registry(make_plugin_manager(load_entry_points=False, trace=False))
    assert {"none", "noise_rotate"} <= set(registry.names("augmenter"))
    assert {"template"} <= set(registry.names("synthesizer"))
    assert {"base", "lora", "rslora"} <= set(registry.names("trainer"))
    assert {"phantom8"} <= set(registry.names("benchmark"))


def test_make_plugin_manager_is_a_factory():
    pm1 = make_plugin_manager(trace=False)
    pm2 = make_plugin_manager(trace=False)
    assert pm1 is not pm2
    assert isinstance(pm1, pluggy.PluginManager)

    class Extra:
        @hookimpl
        def register_augmenters(self, register):
            pass

    pm1.register(Extra(), name="extra")
    assert pm1.get_plugin("extra") is not None
    assert pm2.get_plugin("extra") is None
    assert len(pm1.get_plugins()) == len(pm2.get_plugins()) + 1


def test_built_ins_are_registered_under_the_default_plugin_names():
    pm = make_plugin_manager(load_entry_points=False, trace=False)
    for ep_name, modname in DEFAULT_PLUGINS.items():
        plugin = pm.get_plugin(ep_name)
        assert plugin is not None, ep_name
        assert plugin.__name__ == modname
        assert pm.get_name(sys.modules[modname]) == ep_name


def test_default_plugin_names_match_the_declared_entry_points():
    """Same names as pyproject's entry points, so pluggy skips the installed duplicates."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["cxr_harness"] == DEFAULT_PLUGINS


def test_entry_points_do_not_register_built_ins_twice():
    pm = make_plugin_manager(load_entry_points=True, trace=False)
    modules = [getattr(p, "__name__", None) for p in pm.get_plugins()]
    for modname in DEFAULT_PLUGINS.values():
        assert modules.count(modname) == 1, modname
    make_registry(pm)  # would raise a duplicate-name PluginError otherwise


def _fake_plugin_module(monkeypatch, modname: str, **attrs) -> None:
    module = types.ModuleType(modname)
    for key, value in attrs.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, modname, module)
    monkeypatch.setitem(plugins.DEFAULT_PLUGINS, modname.replace(".", "_"), modname)


def test_misspelled_hookimpl_raises_plugin_error(monkeypatch):
    @hookimpl
    def register_augmentors(register):  # typo: no such hookspec
        pass

    _fake_plugin_module(monkeypatch, "typo_plugin_mod", register_augmentors=register_augmentors)
    with pytest.raises(PluginError, match="register_augmentors"):
        make_plugin_manager(load_entry_points=False, trace=False)


def test_unimportable_built_in_raises_plugin_error(monkeypatch):
    monkeypatch.setitem(plugins.DEFAULT_PLUGINS, "ghost", "cxr_harness_plugins.does_not_exist")
    with pytest.raises(PluginError, match="does_not_exist"):
        make_plugin_manager(load_entry_points=False, trace=False)


def test_a_plugin_registering_a_non_component_fails_loudly():
    class Bad:
        @hookimpl
        def register_augmenters(self, register):
            register(dict)

    pm = make_plugin_manager(load_entry_points=False, trace=False)
    pm.register(Bad(), name="bad")
    with pytest.raises(PluginError, match="not a subclass"):
        make_registry(pm)


def test_a_plugin_shadowing_a_built_in_name_fails_naming_both():
    class Shadow(Augmenter):
        name = "noise_rotate"

    class Plugin:
        @hookimpl
        def register_augmenters(self, register):
            register(Shadow)

    pm = make_plugin_manager(load_entry_points=False, trace=False)
    pm.register(Plugin(), name="shadow")
    with pytest.raises(PluginError) as info:
        make_registry(pm)
    msg = str(info.value)
    assert "noise_rotate" in msg
    assert "cxr_harness_plugins.augmenters.basic" in msg
    assert __name__ in msg


def test_third_party_component_records_its_module():
    class Mine(Augmenter):
        name = "mine_for_test"

        class Options(Options):
            pass

    class Plugin:
        @hookimpl
        def register_augmenters(self, register):
            register(Mine)

    pm = make_plugin_manager(load_entry_points=False, trace=False)
    pm.register(Plugin(), name="mine")
    entry = make_registry(pm).get("augmenter", "mine_for_test")
    assert entry.cls is Mine
    assert entry.plugin == __name__


def _registry_trace(capsys, **kwargs) -> str:
    pm = make_plugin_manager(load_entry_points=False, **kwargs)
    capsys.readouterr()
    make_registry(pm)
    return capsys.readouterr().err


def test_tracing_on_with_trace_true(capsys):
    err = _registry_trace(capsys, trace=True)
    for name in SPECS:
        assert name in err


def test_tracing_off_by_default_and_with_trace_false(capsys):
    assert _registry_trace(capsys) == ""
    assert _registry_trace(capsys, trace=False) == ""


def test_tracing_env_var_used_only_when_trace_is_none(capsys, monkeypatch):
    monkeypatch.setenv(plugins.TRACE_ENV, "1")
    assert "register_trainers" in _registry_trace(capsys)
    assert _registry_trace(capsys, trace=False) == ""


def test_make_registry_scans_installed_distributions_at_most_once(monkeypatch):
    """Regression: the scan (~0.3 s) once ran per registered component."""
    import importlib.metadata as md

    real = md.packages_distributions
    calls = []

    def counting():
        calls.append(1)
        return real()

    monkeypatch.setattr(md, "packages_distributions", counting)
    make_registry(make_plugin_manager(load_entry_points=False, trace=False))
    assert len(calls) <= 1
