"""Faulty third-party plugins are named (entry point, distribution, version), and every plugin
distribution that contributed a component to a run is recorded in its provenance.

The plugins here are real ``importlib.metadata`` distributions: a ``*.dist-info`` folder with
``METADATA`` and ``entry_points.txt`` next to the plugin module, on a temporary ``sys.path``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pluggy
import pytest

from harness import hookspecs
from harness.core.errors import PluginError
from harness.plugins import (
    ENTRY_POINT_GROUP,
    load_entry_point_plugins,
    make_plugin_manager,
    make_registry,
)
from harness.spec import BenchSpec

HERE = Path(__file__).resolve().parent
GOOD_PLUGIN = """
from harness.components import Augmenter, Options
from harness.hookspecs import hookimpl


class Shade(Augmenter):
    name = "fault_test_shade"

    class Options(Options):
        pass

    def augment(self, image, rng):
        return image


@hookimpl
def register_augmenters(register):
    register(Shade)
"""


def make_distribution(
    root: Path, dist: str, version: str, module: str, source: str, ep_name: str = "plugin"
) -> Path:
    """Write ``module.py`` and an installed-looking ``dist-version.dist-info`` under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{ep_name} = {module}\n")
    (info / "top_level.txt").write_text(f"{module}\n")
    (info / "RECORD").write_text(f"{module}.py,,\n")
    return root


def broken_distribution(tmp_path: Path, source: str, ep_name: str) -> Path:
    """``cxr-broken-plugin`` 0.4.2, whose module ``cxr_broken_mod`` runs ``source``."""
    return make_distribution(
        tmp_path / "site", "cxr-broken-plugin", "0.4.2", "cxr_broken_mod", source, ep_name
    )


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch):
    """Put a folder on sys.path (and PYTHONPATH for subprocesses); forget its modules after."""

    def add(root: Path) -> Path:
        monkeypatch.syspath_prepend(str(root))
        monkeypatch.setenv(
            "PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
        )
        for path in root.glob("*.py"):
            monkeypatch.delitem(sys.modules, path.stem, raising=False)
        return root

    return add


def _harness(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("harness")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "harness.cli"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "250"}
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300, check=False
    )


def test_plugin_raising_at_import_is_named_with_distribution_and_version(tmp_path, on_path):
    on_path(broken_distribution(tmp_path, "raise RuntimeError('boom')\n", "broken"))
    with pytest.raises(PluginError) as info:
        make_plugin_manager(trace=False)
    msg = str(info.value)
    assert "'broken'" in msg and "cxr_broken_mod" in msg  # the entry point and its target
    assert "cxr-broken-plugin 0.4.2" in msg
    assert "RuntimeError: boom" in msg
    assert "pip uninstall cxr-broken-plugin" in msg


def test_plugin_with_a_bad_hookimpl_is_named_with_its_distribution(tmp_path, on_path):
    source = """
    from harness.hookspecs import hookimpl

    @hookimpl
    def register_trainers(registr):  # misspelled argument
        pass
    """
    on_path(make_distribution(tmp_path / "site", "cxr-typo-plugin", "1.0", "cxr_typo_mod", source))
    with pytest.raises(PluginError) as info:
        make_plugin_manager(trace=False)
    msg = str(info.value)
    assert "registr" in msg and "cxr-typo-plugin 1.0" in msg
    assert "pip uninstall cxr-typo-plugin" in msg


def test_harness_plugins_cli_names_the_broken_distribution(tmp_path, on_path):
    on_path(
        broken_distribution(
            tmp_path, "raise ImportError('needs a module that is not installed')\n", "broken"
        )
    )
    proc = _harness("plugins", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr
    assert "'broken'" in err and "cxr-broken-plugin 0.4.2" in err
    assert "pip uninstall cxr-broken-plugin" in err


def test_good_entry_point_plugin_loads_once_with_its_distribution(tmp_path, on_path):
    on_path(
        make_distribution(tmp_path / "site", "cxr-shade", "2.1.0", "cxr_shade_mod", GOOD_PLUGIN)
    )
    pm = make_plugin_manager(trace=False)
    assert pm.has_plugin("plugin")
    assert pm.get_plugin("plugin").__name__ == "cxr_shade_mod"
    entry = make_registry(pm).get("augmenter", "fault_test_shade")
    assert (entry.distribution, entry.version, entry.plugin) == (
        "cxr-shade",
        "2.1.0",
        "cxr_shade_mod",
    )


def test_blocked_or_already_registered_entry_points_are_skipped(tmp_path, on_path):
    on_path(broken_distribution(tmp_path, "raise RuntimeError('boom')\n", "augmenters_basic"))
    pm = make_plugin_manager(trace=False)  # a built-in already holds the name: not imported
    assert "cxr_broken_mod" not in sys.modules
    make_registry(pm)
    blocking = pluggy.PluginManager(hookspecs.PROJECT)
    blocking.set_blocked("augmenters_basic")
    assert load_entry_point_plugins(blocking) > 0  # the other built-in entry points
    assert not blocking.has_plugin("augmenters_basic")
    assert "cxr_broken_mod" not in sys.modules


def test_component_provenance_lists_distribution_version_and_module(tmp_path, on_path):
    on_path(
        make_distribution(tmp_path / "site", "cxr-shade", "2.1.0", "cxr_shade_mod", GOOD_PLUGIN)
    )
    registry = make_registry(make_plugin_manager(trace=False))
    spec = BenchSpec(trainers=("lora",), augmenters=("fault_test_shade",), seeds=(0, 1))
    got = registry.provenance(spec.configurations())  # base + lora on two seeds
    from harness import __version__

    assert got == [
        {
            "kind": "augmenter",
            "name": "fault_test_shade",
            "distribution": "cxr-shade",
            "version": "2.1.0",
            "plugin": "cxr_shade_mod",
        },
        {
            "kind": "synthesizer",
            "name": "template",
            "distribution": "cxr-harness",
            "version": __version__,
            "plugin": "cxr_harness_plugins.synthesizers.template",
        },
        {
            "kind": "trainer",
            "name": "base",
            "distribution": "cxr-harness",
            "version": __version__,
            "plugin": "cxr_harness_plugins.trainers.base",
        },
        {
            "kind": "trainer",
            "name": "lora",
            "distribution": "cxr-harness",
            "version": __version__,
            "plugin": "cxr_harness_plugins.trainers.peft_trainers",
        },
    ]


def test_bench_provenance_lists_the_component_distributions(tmp_path):
    out = tmp_path / "run"
    proc = _harness("bench", "--trainer", "base", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["components"] == [
        {
            "kind": "trainer",
            "name": "base",
            "distribution": "cxr-harness",
            "version": prov["packages"]["cxr-harness"],
            "plugin": "cxr_harness_plugins.trainers.base",
        }
    ]
