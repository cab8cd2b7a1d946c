"""The gemini synthesizer, driven through the real google-genai SDK against a loopback server."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from cxr_harness_plugins.synthesizers.gemini import GeminiSynthesizer
from cxr_harness_plugins.synthesizers.gemini_text import count_sentences, split_items
from cxr_harness_plugins.synthesizers.template import TemplateSynthesizer
from harness.core.errors import SynthesisError

KEY = "AIza-test-SECRET-key-0123456789"
LABEL = "Higher_Density"
Reply = tuple[int, bytes]


def ok_body(text: str, tokens: int = 7) -> bytes:
    return json.dumps(
        {
            "candidates": [
                {"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP"}
            ],
            "usageMetadata": {
                "promptTokenCount": 100,
                "candidatesTokenCount": tokens,
                "totalTokenCount": 100 + tokens,
            },
        }
    ).encode()


def error_body(code: int, status: str, message: str = "boom") -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "status": status}}).encode()


def template_reply(body: dict[str, Any], k: int = 3) -> Reply:
    """k valid reports of the requested class, seeded by the request's seed."""
    system = body["systemInstruction"]["parts"][0]["text"]
    label = re.search(r"dataset label (\w+)\)", system).group(1)
    seed = body["generationConfig"]["seed"]
    texts = TemplateSynthesizer().synthesize(label, k, np.random.default_rng(seed))
    return 200, ok_body("\n\n".join(texts))


class FakeGemini:
    """Speaks POST /v1beta/models/{model}:generateContent; records calls and max in-flight."""

    def __init__(self) -> None:
        self.reply: Callable[[dict[str, Any], int], Reply] = lambda body, i: template_reply(body)
        self.delay = 0.0
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.inflight = 0
        self.max_inflight = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    index = len(fake.requests)
                    fake.requests.append(body)
                    fake.paths.append(self.path)
                    fake.headers.append(dict(self.headers))
                    fake.inflight += 1
                    fake.max_inflight = max(fake.max_inflight, fake.inflight)
                try:
                    time.sleep(fake.delay)
                    status, payload = fake.reply(body, index)
                finally:
                    with fake.lock:
                        fake.inflight -= 1
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timeout test)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def calls(self) -> int:
        return len(self.requests)


@pytest.fixture
def server() -> Iterator[FakeGemini]:
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


def make(server: FakeGemini, tmp_path: Path, **opts: Any) -> GeminiSynthesizer:
    base = {
        "base_url": server.url,
        "cache_dir": str(tmp_path / "cache"),
        "retry_base_delay_s": 0.001,
        "items_per_call": 3,
        "timeout_s": 5.0,
    }
    base.update(opts)
    return GeminiSynthesizer(GeminiSynthesizer.Options(**base))


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_success_through_sdk(server: FakeGemini, tmp_path: Path) -> None:
    synth = make(server, tmp_path)
    texts = synth.synthesize(LABEL, 6, rng())
    assert len(texts) == 6 and len(set(texts)) == 6
    assert server.calls == 2
    assert all(p == "/v1beta/models/gemini-2.5-flash:generateContent" for p in server.paths)
    assert server.headers[0]["x-goog-api-key"] == KEY  # the real SDK sent the request
    body = server.requests[0]
    system = body["systemInstruction"]["parts"][0]["text"]
    assert "increased density" in system and "pleural effusion" in system
    assert "pneumothorax" in system  # named as forbidden: built per class, from the ontology
    assert body["generationConfig"]["temperature"] == 1.0
    assert {r["generationConfig"]["seed"] for r in server.requests} == {0, 1}
    thinking = body["generationConfig"]["thinkingConfig"]
    assert thinking in ({"thinkingBudget": 0}, {"thinking_budget": 0})
    s = synth.stats
    assert (s["requests"], s["calls"], s["retries"], s["failures"]) == (2, 2, 0, 0)
    assert s["accepted"] == 6 and s["prompt_tokens"] == 200 and s["total_tokens"] == 214
    assert s["per_class"][LABEL]["calls"] == 2


def test_system_instruction_differs_per_class(server: FakeGemini, tmp_path: Path) -> None:
    synth = make(server, tmp_path, items_per_call=2)
    synth.synthesize("Lower_Density", 2, rng())
    synth.synthesize("Obstructive", 2, rng())
    first, second = (r["systemInstruction"]["parts"][0]["text"] for r in server.requests)
    assert "Category: reduced density" in first and "Category: obstructive airway disease" in second
    assert "hyperinflation" not in first.split("Never mention")[0]


def test_429_then_success_is_retried(server: FakeGemini, tmp_path: Path) -> None:
    server.reply = lambda body, i: (
        (429, error_body(429, "RESOURCE_EXHAUSTED")) if i == 0 else (template_reply(body))
    )
    synth = make(server, tmp_path)
    assert len(synth.synthesize(LABEL, 3, rng())) == 3
    assert server.calls == 2
    assert (synth.stats["calls"], synth.stats["retries"], synth.stats["failures"]) == (2, 1, 0)


def test_500s_exhaust_retries(server: FakeGemini, tmp_path: Path) -> None:
    server.reply = lambda body, i: (500, error_body(500, "INTERNAL"))
    synth = make(server, tmp_path, max_retries=2)
    with pytest.raises(SynthesisError, match="no usable text") as err:
        synth.synthesize(LABEL, 3, rng())
    assert server.calls == 3
    assert (synth.stats["retries"], synth.stats["failures"]) == (2, 1)
    assert "500" in str(err.value) and KEY not in str(err.value)
    assert not list((tmp_path / "cache").glob("*.json"))


def test_timeout_is_retried(server: FakeGemini, tmp_path: Path) -> None:
    def reply(body: dict[str, Any], i: int) -> Reply:
        if i == 0:
            time.sleep(1.5)
        return template_reply(body)

    server.reply = reply
    synth = make(server, tmp_path, timeout_s=0.5)
    assert len(synth.synthesize(LABEL, 3, rng())) == 3
    assert synth.stats["retries"] == 1 and synth.stats["failures"] == 0


def test_malformed_response_is_retried_not_crash(server: FakeGemini, tmp_path: Path) -> None:
    server.reply = lambda body, i: (200, b"{not json") if i == 0 else template_reply(body)
    synth = make(server, tmp_path, concurrency=1)
    texts = synth.synthesize(LABEL, 6, rng())
    assert len(texts) == 6 and len(set(texts)) == 6
    assert synth.stats["failures"] == 0 and synth.stats["retries"] == 1
    assert synth.stats["malformed"] == 1 and server.calls == 3


def test_empty_candidates_counted_as_failure(server: FakeGemini, tmp_path: Path) -> None:
    server.reply = lambda body, i: (200, json.dumps({"candidates": []}).encode())
    synth = make(server, tmp_path)
    with pytest.raises(SynthesisError):
        synth.synthesize(LABEL, 2, rng())
    assert synth.stats["failures"] == 1 and synth.stats["empty"] == 6  # 1 + 5 retries


def test_other_class_keyword_is_rejected(server: FakeGemini, tmp_path: Path) -> None:
    good = TemplateSynthesizer().synthesize(LABEL, 2, rng())
    leaky = "A right pleural effusion is seen. There is also a small apical pneumothorax. " + (
        "The costophrenic angle is blunted."
    )
    short = "Pleural fluid."
    text = "\n\n".join([good[0], leaky, "1. " + good[1], short, good[0]])
    server.reply = lambda body, i: (200, ok_body(text))
    synth = make(server, tmp_path, items_per_call=5)
    out = synth.synthesize(LABEL, 5, rng())
    assert set(out) == set(good)
    assert not any("pneumothorax" in t for t in out)
    s = synth.stats
    assert s["items"] == 5 and s["duplicates"] == 1 and s["rejected"] == 2
    assert s["rejected_reasons"] == {"sentences": 1, "keywords": 1}


def test_cache_rerun_makes_zero_calls(server: FakeGemini, tmp_path: Path) -> None:
    first = make(server, tmp_path).synthesize(LABEL, 6, rng())
    assert server.calls == 2 and len(list((tmp_path / "cache").glob("*.json"))) == 2
    assert not list((tmp_path / "cache").glob(".tmp-*"))
    again = make(server, tmp_path)
    assert again.synthesize(LABEL, 6, rng()) == first
    assert server.calls == 2
    assert again.stats["cache_hits"] == 2 and again.stats["calls"] == 0
    # A different temperature is a different cache key.
    make(server, tmp_path, temperature=0.5).synthesize(LABEL, 6, rng())
    assert server.calls == 4


def test_interrupted_run_keeps_what_it_got(server: FakeGemini, tmp_path: Path) -> None:
    def reply(body: dict[str, Any], i: int) -> Reply:
        if body["generationConfig"]["seed"] == 1:
            return 400, error_body(400, "INVALID_ARGUMENT")  # not retried
        return template_reply(body)

    server.reply = reply
    synth = make(server, tmp_path, concurrency=1)
    assert len(synth.synthesize(LABEL, 9, rng())) == 9  # pool of 6 sampled with replacement
    assert synth.stats["failures"] == 1 and server.calls == 3
    server.reply = lambda body, i: template_reply(body)
    rerun = make(server, tmp_path)
    assert len(set(rerun.synthesize(LABEL, 9, rng()))) == 9
    assert server.calls == 4 and rerun.stats["cache_hits"] == 2


def test_concurrency_limit_respected(server: FakeGemini, tmp_path: Path) -> None:
    server.delay = 0.05
    synth = make(server, tmp_path, items_per_call=1, total_per_class=12, concurrency=3)
    synth.synthesize(LABEL, 4, rng())
    assert server.calls == 12
    assert 2 <= server.max_inflight <= 3


def test_missing_key_fails_before_any_work(
    server: FakeGemini, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GEMINI_API_KEY")
    with pytest.raises(SynthesisError, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
        make(server, tmp_path).synthesize(LABEL, 3, rng())
    assert server.calls == 0 and not (tmp_path / "cache").exists()
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    assert len(make(server, tmp_path).synthesize(LABEL, 3, rng())) == 3


def test_key_never_leaks(
    server: FakeGemini, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    synth = make(server, tmp_path)
    synth.synthesize(LABEL, 6, rng())
    server.reply = lambda body, i: (500, error_body(500, "INTERNAL", f"bad key {KEY}"))
    with pytest.raises(SynthesisError) as err:
        make(server, tmp_path, max_retries=0, seed=50).synthesize(LABEL, 3, rng())
    server.reply = lambda body, i: (403, error_body(403, "PERMISSION_DENIED", f"key {KEY} denied"))
    with pytest.raises(SynthesisError, match="check the API key") as denied:
        make(server, tmp_path, seed=99).synthesize(LABEL, 3, rng())
    assert server.calls == 4  # 403 is not retried
    for text in (str(err.value), str(denied.value), caplog.text, json.dumps(synth.stats)):
        assert KEY not in text
    files = list((tmp_path / "cache").rglob("*"))
    assert files and all(KEY.encode() not in f.read_bytes() for f in files if f.is_file())


def test_options_are_strict(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        GeminiSynthesizer.Options(modle="x")
    with pytest.raises(ValidationError):
        GeminiSynthesizer.Options(concurrency=0)
    assert GeminiSynthesizer.Options().model == "gemini-2.5-flash"
    assert GeminiSynthesizer.Options().base_url is None


def test_split_items_strips_numbering_and_markdown() -> None:
    raw = "1. First report. Two.\n\n**2)** Second one.\nContinues here.\n\n---\n\n- Third."
    assert split_items(raw) == ["First report. Two.", "Second one. Continues here.", "Third."]
    assert count_sentences("One. Two! Three? Four") == 3


def test_negated_other_class_keyword_passes_hedged_is_rejected(
    server: FakeGemini, tmp_path: Path
) -> None:
    normal = (
        "The lungs are clear. The heart size is normal. No pneumothorax or pleural effusion. "
        "The trachea is central."
    )
    hedged = (
        "The lungs are clear. The heart size is normal. A small pneumothorax cannot be "
        "excluded. The trachea is central."
    )
    server.reply = lambda body, i: (200, ok_body(f"{normal}\n\n{hedged}"))
    synth = make(server, tmp_path, items_per_call=2)
    out = synth.synthesize("Normal", 1, rng())
    assert out == [normal]
    assert synth.stats["rejected_reasons"] == {"sentences": 0, "keywords": 1}
