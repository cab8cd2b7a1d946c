"""Created files follow the umask: reports, plots, benchmark folders and adapter weights are
readable by colleagues on a shared machine when the umask allows it (not 0600/0700)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from harness.core.atomic import write_text_atomic


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_text_follows_the_umask(tmp_path: Path, umask_022: None) -> None:
    write_text_atomic(tmp_path / "leaderboard.md", "x\n")
    assert _mode(tmp_path / "leaderboard.md") == 0o644
    os.umask(0o077)
    write_text_atomic(tmp_path / "private.md", "x\n")
    assert _mode(tmp_path / "private.md") == 0o600  # a strict umask is still honoured


def test_plots_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    from harness.exports.plots import plot_training

    history = [{"step": s, "loss": 3.0 / s} for s in range(1, 6)]
    plot_training(tmp_path / "plots" / "training-x.png", "x", history)
    assert _mode(tmp_path / "plots" / "training-x.png") == 0o644


def test_built_benchmark_folder_follows_the_umask(tmp_path: Path, umask_022: None) -> None:
    from harness.data.importers import import_folder
    from harness.data.manifest import build_benchmark

    rng = __import__("numpy").random.default_rng(0)
    for label in ("Normal", "Higher_Density"):
        (tmp_path / "src" / label).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 256, (48, 48), dtype="uint8")
            Image.fromarray(pixels).save(tmp_path / "src" / label / f"{i}.png")
    res = build_benchmark(import_folder(tmp_path / "src"), "tiny2", tmp_path / "benchmarks", seed=0)
    assert _mode(res.path) == 0o755
    modes = {_mode(p) for p in res.path.rglob("*") if p.is_file()}
    dirs = {_mode(p) for p in res.path.rglob("*") if p.is_dir()}
    assert modes == {0o644} and dirs <= {0o755}


@pytest.mark.slow
def test_adapter_weights_follow_the_umask(tmp_path: Path, umask_022: None) -> None:
    from harness.benchmarks import load_benchmark
    from harness.components import TrainContext
    from harness.model.loading import ModelSpec
    from harness.plugins import make_registry

    bench = load_benchmark("phantom8")
    registry = make_registry()
    trainer_cls = registry.get("trainer", "lora").cls
    trainer = trainer_cls(trainer_cls.Options(max_steps=2, r=4, alpha=8))
    train = [s.with_(prompt="Classify.") for s in bench.train[:4]]
    context = TrainContext(classes=bench.classes, prompt="Classify.", evaluate=lambda *a: None)
    result = trainer.train(ModelSpec(model="tiny"), train, [], tmp_path / "work", context)
    files = [p for p in result.adapter_dir.iterdir() if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files)
    assert {p.name: _mode(p) for p in files} == {p.name: 0o644 for p in files}
