"""Benchmarks as plugins: the ``register_benchmarks`` hook, loading by name, verify, leakage,
build from a plugin benchmark, and the error for a name that is neither registered nor built."""

from __future__ import annotations

import json
import sys
import types

import pytest
from click.testing import CliRunner
from test_manifest import synth

from harness import plugins
from harness.benchmarks import load_benchmark
from harness.cli import main
from harness.components import BenchmarkSource
from harness.core.errors import DataError, PluginError
from harness.data.benchmark import Benchmark, fingerprint
from harness.data.sample import Sample
from harness.hookspecs import hookimpl
from harness.plugins import make_plugin_manager, make_registry
from harness.registry import KINDS, Registry

pytestmark = pytest.mark.usefixtures("cached_distributions")

CLASSES = ("Normal", "Higher_Density")
PHANTOM8_FINGERPRINT = "674cf9ebe3186619"  # reports/example was built on this benchmark


def _splits(leak: bool = False) -> dict[str, list[Sample]]:
    seeds = {"train": range(0, 8), "val": range(100, 102), "test": range(200, 204)}
    splits = {
        split: [
            Sample(f"{split}{s}", CLASSES[s % 2], synth(s, 48), f"report {s}") for s in seeds[split]
        ]
        for split in seeds
    }
    if leak:  # a test image that is a pixel copy of a training image
        splits["test"][0] = splits["train"][0].with_(id="test-copy")
    return splits


class NoiseBenchmark(BenchmarkSource):
    name = "example_noise"
    description = "Test benchmark: seeded smooth noise images in two classes."
    expected_fingerprint = fingerprint(_splits(), CLASSES)

    def load(self) -> Benchmark:
        s = _splits()
        return Benchmark(self.name, CLASSES, s["train"], s["val"], s["test"])


class LeakyBenchmark(BenchmarkSource):
    name = "example_leaky"
    description = "Test benchmark: one test image copies a training image."

    def load(self) -> Benchmark:
        s = _splits(leak=True)
        return Benchmark(self.name, CLASSES, s["train"], s["val"], s["test"])


class DriftedBenchmark(NoiseBenchmark):
    name = "example_drifted"
    description = "Test benchmark whose recorded fingerprint no longer matches its build."
    expected_fingerprint = "0" * 16


class MisnamedBenchmark(NoiseBenchmark):
    name = "example_misnamed"
    description = "Test benchmark whose load() returns another benchmark's name."
    expected_fingerprint = ""

    def load(self) -> Benchmark:
        bench = super().load()
        bench.name = "something_else"
        return bench


class ThirdParty:
    @hookimpl
    def register_benchmarks(self, register):
        for cls in (NoiseBenchmark, LeakyBenchmark, DriftedBenchmark, MisnamedBenchmark):
            register(cls)


def _registry() -> Registry:
    pm = make_plugin_manager(load_entry_points=False, trace=False)
    pm.register(ThirdParty(), name="third_party_benchmarks")
    return make_registry(pm)


@pytest.fixture
def cli_with_third_party(monkeypatch, tmp_path):
    """The CLI's own registry sees the third-party plugin; runs in an empty folder."""
    module = types.ModuleType("third_party_benchmarks_mod")
    module.register_benchmarks = ThirdParty.register_benchmarks.__get__(ThirdParty())
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(plugins.DEFAULT_PLUGINS, "third_party_benchmarks", module.__name__)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_benchmark_is_a_registry_kind_with_phantom8_built_in():
    assert KINDS["benchmark"] is BenchmarkSource
    registry = make_registry(make_plugin_manager(load_entry_points=False, trace=False))
    entry = registry.get("benchmark", "phantom8")
    assert entry.plugin == "cxr_harness_plugins.benchmarks.phantom8"
    assert entry.cls.expected_fingerprint == PHANTOM8_FINGERPRINT


def test_verify_phantom8_rebuilds_it_and_matches_the_recorded_fingerprint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./benchmarks folder: phantom8 comes from its plugin
    result = _invoke("benchmark", "verify", "phantom8")
    assert result.exit_code == 0, result.output
    assert PHANTOM8_FINGERPRINT in result.output
    assert "ok" in result.output


def test_third_party_benchmark_plugin_loads_by_name():
    registry = _registry()
    bench = load_benchmark("example_noise", registry=registry)
    assert bench.name == "example_noise"
    assert bench.classes == CLASSES
    assert [len(bench.train), len(bench.val), len(bench.test)] == [8, 2, 4]
    # The host computes the fingerprint; the plugin need not (and cannot mis-report it).
    assert bench.fingerprint == NoiseBenchmark.expected_fingerprint


def test_phantom8_loads_through_the_registry_as_before():
    bench = load_benchmark("phantom8", registry=_registry())
    assert bench.name == "phantom8"
    assert bench.fingerprint == PHANTOM8_FINGERPRINT
    assert [len(bench.train), len(bench.val), len(bench.test)] == [608, 40, 160]
    assert any("not a medical result" in c for c in bench.caveats)


def test_a_plugin_benchmark_returning_another_name_fails_loudly():
    with pytest.raises(PluginError, match="example_misnamed.*something_else"):
        load_benchmark("example_misnamed", registry=_registry())


def test_unknown_benchmark_error_lists_registered_and_built_ones(tmp_path):
    (tmp_path / "my_xrays").mkdir()
    (tmp_path / "my_xrays" / "benchmark.json").write_text("{}")
    with pytest.raises(DataError) as info:
        load_benchmark("nope", tmp_path, registry=_registry())
    msg = str(info.value)
    assert "'nope'" in msg
    for name in ("phantom8", "example_noise", "example_leaky", "my_xrays"):
        assert name in msg
    assert str(tmp_path) in msg


def test_cli_verify_of_an_unknown_name_lists_what_exists(cli_with_third_party):
    result = _invoke("benchmark", "verify", "nope")
    assert result.exit_code == 2, result.output
    assert "Unknown benchmark 'nope'" in result.output
    assert "example_noise" in result.output and "phantom8" in result.output


def test_cli_verify_of_a_third_party_benchmark(cli_with_third_party):
    ok = _invoke("benchmark", "verify", "example_noise")
    assert ok.exit_code == 0, ok.output
    assert NoiseBenchmark.expected_fingerprint in ok.output
    drifted = _invoke("benchmark", "verify", "example_drifted")
    assert drifted.exit_code == 1, drifted.output
    assert "0" * 16 in drifted.output and NoiseBenchmark.expected_fingerprint in drifted.output
    unrecorded = _invoke("benchmark", "verify", "example_leaky")
    assert unrecorded.exit_code == 1, unrecorded.output
    assert "records no fingerprint" in unrecorded.output


def test_cli_check_leakage_on_plugin_benchmarks(cli_with_third_party):
    clean = _invoke("benchmark", "check-leakage", "example_noise", "--workers", "1")
    assert clean.exit_code == 0, clean.output
    leaky = _invoke("benchmark", "check-leakage", "example_leaky", "--workers", "1")
    assert leaky.exit_code == 1, leaky.output
    assert "1 cross-split near-duplicate pairs" in leaky.output
    assert "test-copy" in leaky.output


def test_cli_build_from_a_plugin_benchmark(cli_with_third_party):
    tmp = cli_with_third_party
    args = ("benchmark", "build", "example_noise", "--name", "frozen", "--root", "built")
    result = _invoke(*args, "--val", "0.2", "--test", "0.2", "--workers", "1")
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp / "built" / "frozen" / "benchmark.json").read_text())
    assert sorted(meta["classes"]) == sorted(CLASSES)
    assert sum(sum(meta["counts"][s].values()) for s in ("train", "val", "test")) == 14
    # The built copy loads by path (a name with "/"); no registry given: a fresh one is built.
    bench = load_benchmark("built/frozen")
    assert (bench.name, bench.classes) == ("frozen", tuple(meta["classes"]))
    assert len(bench.train) + len(bench.val) + len(bench.test) == 14


def test_harness_plugins_lists_benchmarks_and_their_options(cli_with_third_party):
    listing = _invoke("plugins")
    assert listing.exit_code == 0, listing.output
    rows = [[c.strip() for c in line.split("│")[1:3]] for line in listing.output.splitlines()]
    assert ["benchmark", "phantom8"] in rows
    assert ["benchmark", "example_noise"] in rows
    shown = _invoke("plugins", "--options", "benchmark.phantom8")
    assert shown.exit_code == 0, shown.output
