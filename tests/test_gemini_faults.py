"""Gemini replies that are malformed, empty or too few: retried, counted, warned about, never
silently turned into duplicated training text. Real google-genai SDK, loopback REST server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import test_synth_gemini as sdk_tests
from click.testing import CliRunner
from test_synth_gemini import KEY, LABEL, FakeGemini, Reply, make, rng, template_reply

from harness.cli import main
from harness.errors import SynthesisError

server = sdk_tests.server  # the loopback Gemini server fixture
_env = sdk_tests._env  # autouse: the test key, no proxies

BAD_REPLIES = {
    "malformed": b"{not json",
    "malformed_shape": json.dumps({"candidates": 5}).encode(),
    "empty": json.dumps({"candidates": []}).encode(),
    "blocked": json.dumps({"candidates": [{"finishReason": "SAFETY"}]}).encode(),
}
COUNTER = {
    "malformed": "malformed",
    "malformed_shape": "malformed",
    "empty": "empty",
    "blocked": "empty",
}


def first_bad(kind: str, k: int = 3) -> Any:
    def reply(body: dict[str, Any], i: int) -> Reply:
        return (200, BAD_REPLIES[kind]) if i == 0 else template_reply(body, k)

    return reply


@pytest.mark.parametrize("kind", sorted(BAD_REPLIES))
def test_one_bad_reply_is_retried_and_counted_by_kind(
    server: FakeGemini, tmp_path: Path, kind: str
) -> None:
    server.reply = first_bad(kind)
    synth = make(server, tmp_path)
    texts = synth.synthesize(LABEL, 3, rng())
    assert len(set(texts)) == 3
    assert server.calls == 2
    s = synth.stats
    assert (s["calls"], s["retries"], s["failures"]) == (2, 1, 0)
    assert s[COUNTER[kind]] == 1
    other = {"malformed": "empty", "empty": "malformed"}[COUNTER[kind]]
    assert s[other] == 0
    assert s["per_class"][LABEL][COUNTER[kind]] == 1


def test_one_bad_reply_no_longer_sinks_a_class_with_default_items_per_call(
    server: FakeGemini, tmp_path: Path
) -> None:
    """With items_per_call=10 a class of up to 10 images is one request: it must be retried."""
    server.reply = first_bad("malformed", k=10)
    synth = make(server, tmp_path, items_per_call=10)
    assert len(set(synth.synthesize("Normal", 10, rng()))) == 10
    assert synth.stats["malformed"] == 1 and synth.stats["failures"] == 0


def test_bad_replies_exhaust_retries_and_the_error_says_why(
    server: FakeGemini, tmp_path: Path
) -> None:
    server.reply = lambda body, i: (200, BAD_REPLIES["empty"] if i % 2 else b"{not json")
    synth = make(server, tmp_path, max_retries=3)
    with pytest.raises(SynthesisError) as err:
        synth.synthesize(LABEL, 3, rng())
    assert server.calls == 4
    s = synth.stats
    assert (s["malformed"], s["empty"], s["retries"], s["failures"]) == (2, 2, 3, 1)
    msg = str(err.value)
    assert "2 malformed" in msg and "2 empty" in msg and KEY not in msg
    assert not list((tmp_path / "cache").glob("*.json"))  # nothing bad was cached


def test_cli_run_survives_one_bad_reply_and_reports_it(server: FakeGemini, tmp_path: Path) -> None:
    server.reply = first_bad("empty")
    args = [
        "synth", "--synthesizer", "gemini", "--classes", "Normal", "--n", "3",
        "-o", f"synthesizer.base_url={server.url}", "-o", f"synthesizer.cache_dir={tmp_path}",
        "-o", "synthesizer.retry_base_delay_s=0.001",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert '"empty": 1' in result.output and '"retries": 1' in result.output
