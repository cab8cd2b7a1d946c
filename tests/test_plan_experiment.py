"""Resolve once, then run: --dry-run prints the plan; experiment.toml repeats a run exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.core.errors import OptionError
from harness.experiment import load_experiment
from harness.plan import make_plan
from harness.plugins import make_registry
from harness.spec import BenchSpec

pytestmark = pytest.mark.usefixtures("cached_distributions")


def _text(result) -> str:
    return " ".join(result.output.split())


def test_dry_run_prints_effective_options_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["bench", "--trainer", "rslora,lora", "--seeds", "1,2", "--dry-run", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    text = _text(result)
    assert "5 configuration(s)" in text
    assert "rslora+none+template@s2" in text and "lora+none+template@s1" in text
    assert "lr=0.0005" in text and "lr=0.002" in text  # the tiny preset's per-trainer defaults
    assert not out.exists()


def test_plan_resolves_per_component_options_over_per_kind(tmp_path: Path) -> None:
    spec = BenchSpec(
        trainers=("rslora", "lora"),
        options={"trainer": {"r": 4}},
        component_options={"trainer": {"lora": {"r": 8}}},
        out=tmp_path / "o",
    )
    plan = make_plan(spec, make_registry())
    rank = {p.config.trainer: p.options()["trainer"].get("r") for p in plan.configs}
    assert rank == {"base": None, "rslora": 4, "lora": 8}


def test_options_for_a_component_outside_the_grid_are_an_error(tmp_path: Path) -> None:
    spec = BenchSpec(component_options={"trainer": {"dora": {"r": 8}}}, out=tmp_path / "o")
    with pytest.raises(OptionError, match="dora"):
        make_plan(spec, make_registry())


def test_experiment_file_errors_name_the_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "exp.toml"
    bad.write_text('trainers = ["lora"]\nlearning_rate = 3\n')
    with pytest.raises(OptionError, match=r"exp\.toml.*learning_rate"):
        load_experiment(bad)
    bad.write_text("trainers = [\n")
    with pytest.raises(OptionError, match="not valid TOML"):
        load_experiment(bad)


def test_flags_override_the_experiment_file(tmp_path: Path) -> None:
    exp = tmp_path / "exp.toml"
    exp.write_text(
        'trainers = ["lora"]\nseeds = [3]\n[options.trainer]\nr = 4\n'
        "[options.trainer.lora]\nalpha = 8.0\nr = 6\n"
    )
    args = ["bench", "--config", str(exp), "-o", "trainer.r=2", "--dry-run"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    text = _text(result)
    assert "lora+none+template@s3" in text and "r=2," in text and "alpha=8.0" in text
    again = CliRunner().invoke(main, [*args, "--seeds", "5", "--out", str(tmp_path / "o")])
    assert "lora+none+template@s5" in _text(again) and "@s3" not in _text(again)


@pytest.mark.slow
def test_experiment_toml_of_a_run_reproduces_its_metrics(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--threads", "1", "--eval-batch-size", "40"]
    args = ["bench", "--trainer", "lora", "-o", "trainer.max_steps=3", *common]
    a = CliRunner().invoke(main, [*args, "--out", str(first)])
    assert a.exit_code == 0, a.output
    exp = first / "experiment.toml"
    assert "[options.trainer.lora]" in exp.read_text()
    b = CliRunner().invoke(main, ["bench", "--config", str(exp), *common, "--out", str(second)])
    assert b.exit_code == 0, b.output

    def metrics(d: Path) -> dict:
        doc = json.loads((d / "results.json").read_text())
        return {r["config_id"]: (r["metrics"], r["options"]) for r in doc["results"]}

    assert metrics(first) == metrics(second)
    assert (second / "experiment.toml").read_text() == exp.read_text()


def test_plugins_options_show_the_defaults_that_really_apply() -> None:
    result = CliRunner().invoke(main, ["plugins", "--options", "trainer.rslora", "--model", "tiny"])
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.output.splitlines() if ln.startswith("│ lr "))
    assert "0.0005" in line  # what the tiny preset trains rslora with, not the schema's 1e-4
