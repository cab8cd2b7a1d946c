"""CLI errors exit 2 early (no traceback, no model loaded); -o parsing; spec expansion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import harness.model.loading
import harness.model.tiny
import harness.runner
from harness.cli import main
from harness.core.errors import HarnessError, OptionError
from harness.plugins import make_registry
from harness.spec import BenchSpec, Configuration, parse_option_args

pytestmark = pytest.mark.usefixtures("cached_distributions")


class _Reached(HarnessError):
    pass


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if anything tries to load a model; capture the spec that reached the run."""
    seen: dict = {}

    def fake_run_bench(spec, registry, progress=None, plan=None):
        seen["spec"] = spec
        raise _Reached("STOP: validation passed and run_bench was reached")

    def forbid(*args, **kwargs):
        raise AssertionError("a model was loaded before the CLI validated its arguments")

    make_registry()  # plugins import load_base by name: import them before it is replaced
    monkeypatch.setattr(harness.runner, "run_bench", fake_run_bench)
    monkeypatch.setattr(harness.model.loading, "load_base", forbid)
    monkeypatch.setattr(harness.model.tiny, "ensure_tiny_base", forbid)
    return seen


def _bench(tmp_path: Path, *args: str):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["bench", *args, "--out", str(out)])
    text = " ".join(result.output.split())  # undo Rich's line wrapping
    assert "Traceback" not in result.output
    assert not out.exists(), "nothing may be written before validation passes"
    return result, text


def test_unknown_trainer_suggests_and_exits_2(tmp_path, no_model):
    result, text = _bench(tmp_path, "--trainer", "rslor")
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Unknown trainer 'rslor'" in text
    assert "Did you mean 'rslora'" in text
    assert "spec" not in no_model


def test_unknown_augmenter_and_synthesizer_exit_2(tmp_path, no_model):
    result, text = _bench(tmp_path, "--augmenter", "noise_rotat")
    assert result.exit_code == 2 and "Did you mean 'noise_rotate'" in text
    result, text = _bench(tmp_path, "--synthesizer", "templat")
    assert result.exit_code == 2 and "Did you mean 'template'" in text


def test_unknown_option_exits_2_naming_it(tmp_path, no_model):
    result, text = _bench(tmp_path, "--trainer", "lora", "--no-base", "-o", "trainer.foo=1")
    assert result.exit_code == 2, result.output
    assert "trainer.foo" in text and "unknown option" in text


def test_unknown_option_with_base_row_exits_2_naming_it(tmp_path, no_model):
    result, text = _bench(tmp_path, "--trainer", "lora", "-o", "trainer.foo=1")
    assert result.exit_code == 2 and "trainer.foo" in text


@pytest.mark.parametrize("value", ["abc", "0"])
def test_bad_option_value_exits_2_naming_it(tmp_path, no_model, value):
    result, text = _bench(tmp_path, "--trainer", "lora", "--no-base", "-o", f"trainer.r={value}")
    assert result.exit_code == 2, result.output
    assert "bad value for trainer.r=" in text and value in text


def test_bad_augmenter_value_exits_2(tmp_path, no_model):
    args = ("--trainer", "lora", "--augmenter", "noise_rotate", "-o", "augmenter.max_deg=100")
    result, text = _bench(tmp_path, *args)
    assert result.exit_code == 2 and "augmenter.max_deg" in text


def test_missing_model_path_exits_2_naming_it(tmp_path, no_model):
    result, text = _bench(tmp_path, "--model", "./does/not/exist")
    assert result.exit_code == 2, result.output
    assert "./does/not/exist" in text


def test_model_dir_without_config_exits_2(tmp_path, no_model):
    model_dir = tmp_path / "ckpt"
    model_dir.mkdir()
    result, text = _bench(tmp_path, "--model", str(model_dir))
    assert result.exit_code == 2 and "config.json" in text


@pytest.mark.parametrize("bad", ["trainer", "trainer.r", "trainer=3", ".r=3", "x.y=z"])
def test_malformed_option_exits_2(tmp_path, no_model, bad):
    result, text = _bench(tmp_path, "-o", bad)
    assert result.exit_code == 2, result.output
    assert repr(bad) in text


def test_bad_seeds_exit_2(tmp_path, no_model):
    result, text = _bench(tmp_path, "--seeds", "1,x")
    assert result.exit_code == 2 and "--seeds" in text


def test_a_valid_spec_reaches_the_run_with_parsed_options(tmp_path, no_model):
    args = ("--trainer", "lora,rslora", "--seeds", "1,2", "-o", "trainer.r=32", "--no-base")
    result, text = _bench(tmp_path, *args)
    assert result.exit_code == 2 and "STOP" in text  # our sentinel, after validation
    spec = no_model["spec"]
    assert spec.trainers == ("lora", "rslora") and spec.seeds == (1, 2)
    assert spec.options["trainer"] == {"r": 32}
    assert not spec.include_base


def test_trainer_options_do_not_break_the_base_row(tmp_path, no_model):
    result, text = _bench(tmp_path, "--trainer", "lora", "-o", "trainer.r=32")
    assert "trainer 'base'" not in text
    assert "STOP" in text


def test_help_works_in_process():
    runner = CliRunner()
    top = runner.invoke(main, ["--help"])
    assert top.exit_code == 0 and "bench" in top.output and "plugins" in top.output
    bench = runner.invoke(main, ["bench", "--help"])
    assert bench.exit_code == 0
    for flag in ("--trainer", "--augmenter", "--option", "--model", "--no-base"):
        assert flag in bench.output


def _harness(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    exe = Path(sys.executable).with_name("harness")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "harness.cli"]
    return subprocess.run(
        [*cmd, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def test_console_script_help():
    top = _harness("--help")
    assert top.returncode == 0 and "bench" in top.stdout
    bench = _harness("bench", "--help")
    assert bench.returncode == 0 and "KIND.KEY=VALUE" in bench.stdout


def test_console_script_unknown_trainer_exits_2_without_traceback(tmp_path):
    proc = _harness("bench", "--trainer", "rslor", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "Did you mean 'rslora'" in proc.stderr
    assert not (tmp_path / "o").exists()


# --- parse_option_args -----------------------------------------------------------------------


def test_parse_int_float_string():
    out = parse_option_args(["trainer.r=32", "trainer.lr=1e-4", "trainer.scheduler=cosine"])
    assert out["trainer"] == {"r": 32, "lr": 1e-4, "scheduler": "cosine"}
    assert type(out["trainer"]["r"]) is int
    assert out["augmenter"] == {} and out["synthesizer"] == {}


@pytest.mark.parametrize(
    "raw, value",
    [("true", True), ("false", False), ("True", True), ("FALSE", False), ("tRuE", True)],
)
def test_parse_booleans(raw, value):
    assert parse_option_args([f"trainer.gradient_checkpointing={raw}"])["trainer"] == {
        "gradient_checkpointing": value
    }


def test_parse_lists_null_and_equals_in_value():
    out = parse_option_args(
        [
            'trainer.target_modules=["q_proj", "v_proj"]',
            "trainer.max_steps=null",
            "synthesizer.path=a=b",
            "augmenter.max_deg=5",
        ]
    )
    assert out["trainer"] == {"target_modules": ["q_proj", "v_proj"], "max_steps": None}
    assert out["synthesizer"] == {"path": "a=b"}
    assert out["augmenter"] == {"max_deg": 5}


def test_parse_last_repeat_wins_and_non_json_stays_a_string():
    out = parse_option_args(["trainer.r=8", "trainer.r=16", "trainer.revision=0123"])
    assert out["trainer"] == {"r": 16, "revision": "0123"}


@pytest.mark.parametrize("item", ["x.y=z", "model.r=3"])
def test_parse_bad_kind(item):
    with pytest.raises(OptionError, match="unknown kind"):
        parse_option_args([item])


@pytest.mark.parametrize("item", ["trainer", "trainer.r", "trainer=3", "trainer.=3", "=3", ""])
def test_parse_malformed(item):
    with pytest.raises(OptionError, match="KIND.KEY=VALUE"):
        parse_option_args([item])


# --- BenchSpec.configurations ----------------------------------------------------------------


def test_configurations_base_once_then_cross_product():
    spec = BenchSpec(trainers=("lora", "rslora"), augmenters=("none", "noise_rotate"), seeds=(0, 1))
    configs = spec.configurations()
    assert configs[0] == Configuration("base", "none", "none", 0, trains=False)
    assert configs[0].id == "base"
    assert len(configs) == 1 + 2 * 2 * 1 * 2
    assert len({c.id for c in configs}) == len(configs)
    assert "lora+noise_rotate+template@s1" in {c.id for c in configs}


def test_configurations_without_base_and_base_listed_once():
    assert all(c.trainer != "base" for c in BenchSpec(include_base=False).configurations())
    spec = BenchSpec(trainers=("base", "lora"), include_base=True, seeds=(3, 4))
    configs = spec.configurations()
    assert [c.trainer for c in configs].count("base") == 1
    assert configs[0] == Configuration("base", "none", "none", 3, trains=False)
    only_base = BenchSpec(trainers=("base",), include_base=False).configurations()
    assert [c.id for c in only_base] == ["base"]
