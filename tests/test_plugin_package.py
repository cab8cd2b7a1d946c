"""Round trip of a third-party plugin package (tests/example_plugin): pip, entry points, CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PACKAGE_SRC = HERE / "example_plugin"
DIST = "cxr-harness-example-plugin"
VERSION = "0.3.1"
AUGMENTER = "example_invert_noise"
TINY_WEIGHTS = HERE.parent / "harness" / "model" / "tiny" / "assets" / "model.safetensors"
METRIC = "example_length_ratio"


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "COLUMNS": "250",  # keep Rich tables on one line per row
    }


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
        check=False,
    )


def _harness_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("harness")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "harness.cli"]


def _run(cmd: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, capture_output=True, text=True, env=_env(), cwd=cwd, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """pip-install the example package (offline, no build isolation) for this module only."""
    if _pip("show", DIST).returncode == 0:  # a leftover of an interrupted run
        _pip("uninstall", "-y", DIST)
    src = tmp_path_factory.mktemp("example_src") / "example_plugin"
    shutil.copytree(PACKAGE_SRC, src)  # build artifacts land in tmp, not in the repo
    proc = _pip("install", "--no-deps", "--no-build-isolation", "--no-index", "-q", str(src))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    try:
        yield tmp_path_factory.mktemp("cwd")  # run subprocesses away from the source tree
    finally:
        proc = _pip("uninstall", "-y", DIST)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_example_package_source_is_well_formed():
    import tomllib

    meta = tomllib.loads((PACKAGE_SRC / "pyproject.toml").read_text())
    assert meta["project"]["name"] == DIST
    assert meta["project"]["version"] == VERSION
    assert meta["project"]["entry-points"]["cxr_harness"] == {"example": "cxr_example_plugin"}


def test_harness_plugins_lists_the_example_with_distribution_and_version(installed):
    proc = _run([*_harness_cmd(), "plugins"], cwd=installed)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if AUGMENTER in line]
    assert len(rows) == 1, proc.stdout
    cells = [c.strip() for c in rows[0].replace("┃", "│").split("│")]
    assert cells[1:5] == ["augmenter", AUGMENTER, DIST, VERSION], rows[0]
    assert "noise_rotate" in proc.stdout  # built-ins still listed alongside
    rows = [line for line in proc.stdout.splitlines() if METRIC in line]
    assert len(rows) == 1, proc.stdout
    cells = [c.strip() for c in rows[0].replace("┃", "│").split("│")]
    assert cells[1:5] == ["metric", METRIC, DIST, VERSION], rows[0]


def test_the_plugin_metric_computes_and_enters_the_metric_table(installed):
    script = textwrap.dedent(
        f"""
        import json
        from harness.components import MetricItem
        from harness.plugins import make_registry

        m = make_registry().create("metric", {METRIC!r})
        items = [
            MetricItem("a", "x", "x", "one two", "one two three four"),
            MetricItem("b", "x", "x", "one two three", "one two three"),
            MetricItem("c", "x", "x", "unscored", ""),
        ]
        print(json.dumps({{"value": m.value(items, ["x"]), "column": m.column().as_dict()}}))
        """
    )
    proc = _run([sys.executable, "-c", script], cwd=installed)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["value"] == 0.75  # (2/4 + 3/3) / 2; the image without a reference is left out
    col = got["column"]
    assert (col["title"], col["implementation"], col["version"]) == (
        "Length ratio",
        DIST,
        VERSION,
    )
    assert col["needs_reference"] and col["module"] == "cxr_example_plugin"


def test_make_registry_in_a_subprocess_creates_and_runs_it(installed):
    script = textwrap.dedent(
        f"""
        import json
        import numpy as np
        from PIL import Image
        from harness.core.errors import OptionError
        from harness.plugins import make_registry

        reg = make_registry()
        entry = reg.get("augmenter", {AUGMENTER!r})
        aug = reg.create("augmenter", {AUGMENTER!r}, {{"strength": 0.0}})
        img = Image.fromarray(np.arange(48 * 64, dtype=np.uint8).reshape(48, 64) % 200)
        out = aug.augment(img, np.random.default_rng(0))
        noisy = reg.create("augmenter", {AUGMENTER!r}, {{"strength": 0.1}})
        a = noisy.augment(img.convert("RGB"), np.random.default_rng(1))
        b = noisy.augment(img.convert("RGB"), np.random.default_rng(1))
        try:
            reg.create("augmenter", {AUGMENTER!r}, {{"strenght": 0.1}})
            strict = "accepted"
        except OptionError as exc:
            strict = str(exc)
        try:
            reg.create("augmenter", {AUGMENTER!r}, {{"strength": 5}})
            bounded = "accepted"
        except OptionError as exc:
            bounded = str(exc)
        print(json.dumps({{
            "distribution": entry.distribution,
            "version": entry.version,
            "plugin": entry.plugin,
            "strength": aug.options.strength,
            "inverted": bool((np.asarray(out) == 255 - np.asarray(img)).all()),
            "same": [out.size == img.size, out.mode == img.mode, a.mode == "RGB"],
            "deterministic": bool((np.asarray(a) == np.asarray(b)).all()),
            "strict": strict,
            "bounded": bounded,
        }}))
        """
    )
    proc = _run([sys.executable, "-c", script], cwd=installed)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["distribution"] == DIST and got["version"] == VERSION
    assert got["plugin"] == "cxr_example_plugin"
    assert got["strength"] == 0.0
    assert got["inverted"] and all(got["same"]) and got["deterministic"]
    assert "unknown option augmenter.strenght" in got["strict"]
    assert "bad value for augmenter.strength=5" in got["bounded"]


@pytest.mark.slow
@pytest.mark.skipif(
    not TINY_WEIGHTS.exists(),
    reason=f"tiny model not built yet ({TINY_WEIGHTS.relative_to(HERE.parent)} is missing)",
)
def test_bench_trains_with_the_plugin_augmenter(installed, tmp_path):
    out = tmp_path / "bench"
    cmd = [
        *_harness_cmd(),
        "bench",
        "--trainer",
        "lora",
        "--augmenter",
        AUGMENTER,
        "-o",
        "trainer.max_steps=2",
        "--no-base",
        "--metric",
        f"macro_f1,{METRIC},bleu4",
        "--out",
        str(out),
    ]
    proc = _run(cmd, cwd=installed, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text())
    rows = [r for r in doc["results"] if r.get("augmenter") == AUGMENTER]
    assert len(rows) == 1, doc["results"]
    assert rows[0]["config_id"] == f"lora+{AUGMENTER}+template@s0"
    # the third-party metric is a leaderboard column like the built-ins, with CI and coverage
    assert "Length ratio" in proc.stdout
    row = rows[0]
    assert {"macro_f1", METRIC, "bleu4"} <= set(row["ci"])
    assert row["coverage"][METRIC]["of"] == 160
    head = (out / "leaderboard.md").read_text().split("| Configuration |")[1].split("\n")[0]
    assert [t.strip() for t in head.split("|")[:3]] == ["Macro-F1", "Length ratio", "BLEU-4"]
    from harness.benchmarks import load_benchmark
    from harness.evaluation.parser import parse_answer

    preds = {
        p["id"]: p
        for p in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())
        if p["config_id"] == row["config_id"]
    }
    bench = load_benchmark("phantom8")
    ratios = []
    for s in bench.test:
        if not s.report.strip():
            continue
        answer = preds[s.id]["answer"] or ""
        a = len(parse_answer(answer, bench.classes).explanation.split()) if answer else 0
        b = len(s.report.split())
        ratios.append(min(a, b) / max(a, b))
    assert row["metrics"][METRIC] == pytest.approx(sum(ratios) / len(ratios))
