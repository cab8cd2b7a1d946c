"""`harness synth` end to end: gemini through the real SDK against the loopback server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_synth_gemini import KEY, FakeGemini

from harness.cli import main


@pytest.fixture
def server():
    fake = FakeGemini()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", KEY)


def _synth(server: FakeGemini, cache: Path, out: Path):
    args = [
        "synth", "--synthesizer", "gemini", "--classes", "Normal,Higher_Density", "--n", "3",
        "-o", f"synthesizer.base_url={server.url}", "-o", f"synthesizer.cache_dir={cache}",
        "-o", "synthesizer.items_per_call=3", "-o", "synthesizer.retry_base_delay_s=0.001",
        "--out", str(out),
    ]  # fmt: skip
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_cli_fills_the_cache_then_reruns_with_zero_requests(server: FakeGemini, tmp_path: Path):
    cache, out = tmp_path / "cache", tmp_path / "texts.jsonl"
    first = _synth(server, cache, out)
    assert first.exit_code == 0, first.output
    calls = server.calls
    assert calls >= 2  # one request per class at least
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["label"] for r in rows} == {"Normal", "Higher_Density"}
    assert len(rows) == 6
    assert any(cache.rglob("*.json"))

    second = _synth(server, cache, tmp_path / "again.jsonl")
    assert second.exit_code == 0, second.output
    assert server.calls == calls  # every answer came from the cache
    assert (tmp_path / "again.jsonl").read_text() == out.read_text()
    for text in (first.output, second.output, out.read_text()):
        assert KEY not in text
    for f in cache.rglob("*"):
        if f.is_file():
            assert KEY not in f.read_text(errors="ignore")


def test_cli_missing_key_exits_2_before_any_request(server, tmp_path, monkeypatch):
    monkeypatch.delenv("GEMINI_API_KEY")
    result = _synth(server, tmp_path / "cache", tmp_path / "t.jsonl")
    assert result.exit_code == 2
    assert "GEMINI_API_KEY" in result.output
    assert server.calls == 0


def test_audit_flags_a_planted_cross_class_text(tmp_path: Path):
    path = tmp_path / "texts.jsonl"
    rows = [
        {"label": "Chest_Changes", "text": "Right-sided volume loss with mediastinal shift."},
        {"label": "Chest_Changes", "text": "Lobar pneumonia with consolidation in the right lung."},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = CliRunner().invoke(main, ["synth", "audit", "--file", str(path)])
    assert result.exit_code == 0, result.output
    assert "50.0%" in result.output  # one of two Chest_Changes texts leaks pneumonia words


def test_template_audit_has_no_leaks_and_high_uniqueness():
    import numpy as np

    from cxr_harness_plugins.synthesizers.template import TemplateSynthesizer
    from harness.data.labels import ALL_CLASSES
    from harness.text.audit import audit_texts

    synth = TemplateSynthesizer()
    texts = {
        c: synth.synthesize(c, 1000, np.random.default_rng(i)) for i, c in enumerate(ALL_CLASSES)
    }
    audit = audit_texts(texts)
    for label, row in audit.items():
        assert row["count"] == 1000
        assert row["leak_share"] == 0.0, label
        assert row["uniqueness"] >= 0.9, (label, row["uniqueness"])
