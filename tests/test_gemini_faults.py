"""Gemini replies that are malformed, empty or too few: retried, counted, warned about, never
silently turned into duplicated training text. Real google-genai SDK, loopback REST server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import test_synth_gemini as sdk_tests
from click.testing import CliRunner
from pydantic import ValidationError
from test_synth_gemini import KEY, LABEL, FakeGemini, Reply, make, ok_body, rng, template_reply

from cxr_harness_plugins.synthesizers.gemini import GeminiSynthesizer
from cxr_harness_plugins.synthesizers.gemini_text import split_items
from cxr_harness_plugins.synthesizers.template import TemplateSynthesizer
from harness.cli import main
from harness.core.errors import SynthesisError

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


def synth_args(server: FakeGemini, cache: Path, label: str, n: int) -> list[str]:
    """`harness synth` arguments for ``n`` gemini texts of ``label`` from the loopback server."""
    return [
        "synth", "--synthesizer", "gemini", "--classes", label, "--n", str(n),
        "-o", f"synthesizer.base_url={server.url}", "-o", f"synthesizer.cache_dir={cache}",
        "-o", "synthesizer.retry_base_delay_s=0.001",
    ]  # fmt: skip


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
    args = synth_args(server, tmp_path, "Normal", 3)
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert '"empty": 1' in result.output and '"retries": 1' in result.output


# ---- too few distinct texts: a warning, or with min_unique an error ---------------------------


def test_short_pool_warns_naming_the_class_and_counts(
    server: FakeGemini, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    synth = make(server, tmp_path, total_per_class=3)  # one call, 3 texts, 6 needed
    texts = synth.synthesize(LABEL, 6, rng())
    assert len(texts) == 6 and len(set(texts)) == 3
    (warning,) = synth.stats["warnings"]
    assert f"only 3 distinct texts for {LABEL!r} of the 6 needed" in warning
    assert "repeat" in warning and "min_unique" in warning
    assert warning in caplog.text  # logged too, so `bench` shows it on stderr
    enough = make(server, tmp_path, total_per_class=6)
    assert len(set(enough.synthesize(LABEL, 6, rng()))) == 6
    assert enough.stats["warnings"] == []


def test_min_unique_turns_a_short_pool_into_a_typed_error(server: FakeGemini, tmp_path: Path):
    with pytest.raises(SynthesisError, match="synthesizer.min_unique=0.75") as err:
        make(server, tmp_path, total_per_class=3, min_unique=0.75).synthesize(LABEL, 6, rng())
    assert "3 distinct" in str(err.value) and "6 needed" in str(err.value)
    ok = make(server, tmp_path, total_per_class=3, min_unique=0.5)  # 3 of 6 is enough
    assert len(set(ok.synthesize(LABEL, 6, rng()))) == 3


@pytest.mark.parametrize("bad", [0, -0.1, 1.5])
def test_min_unique_is_a_fraction(bad: float) -> None:
    with pytest.raises(ValidationError):
        GeminiSynthesizer.Options(min_unique=bad)
    field = GeminiSynthesizer.Options.model_fields["min_unique"]
    assert field.default is None and "fraction" in field.description


def test_record_lists_each_rejection_with_reason_and_matched_words_not_the_text(
    server: FakeGemini, tmp_path: Path
) -> None:
    good = TemplateSynthesizer().synthesize(LABEL, 2, rng())
    leaky = (
        "A right pleural effusion is seen. There is also a small apical pneumothorax. "
        "The costophrenic angle is blunted. Mild cardiomegaly is noted."
    )
    short = "Pleural fluid."
    items = [good[0], leaky, good[1], short]
    server.reply = lambda body, i: (200, ok_body("\n\n".join(items)))
    synth = make(server, tmp_path, items_per_call=4)
    synth.synthesize(LABEL, 2, rng())
    (cache_file,) = (tmp_path / "cache").glob("*.json")
    assert synth.stats["rejected_items"] == [
        {
            "label": LABEL,
            "cache_file": cache_file.name,
            "item": 1,
            "reason": "keywords",
            "matched": ["cardiomegaly", "pneumothorax"],
            "sentences": 4,
        },
        {
            "label": LABEL,
            "cache_file": cache_file.name,
            "item": 3,
            "reason": "sentences",
            "matched": [],
            "sentences": 1,
        },
    ]
    record = json.dumps(synth.stats)
    assert leaky not in record and short not in record and KEY not in record
    cached = split_items(json.loads(cache_file.read_text())["text"])
    assert cached[1] == leaky and cached[3] == short  # the texts live in the cache only


def test_cli_shows_the_short_pool_warning_and_the_rejections(server: FakeGemini, tmp_path: Path):
    leaky = "Small apical pneumothorax. Lungs are otherwise clear. No effusion is seen here."
    server.reply = lambda body, i: (200, ok_body(leaky))
    args = synth_args(server, tmp_path, "Normal", 4)
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 2  # nothing usable: every text names another class
    assert "rejected" in result.output and "pneumothorax" in result.output
    texts = TemplateSynthesizer().synthesize("Higher_Density", 2, rng())
    server.reply = lambda body, i: (200, ok_body("\n\n".join([*texts, leaky])))
    args = synth_args(server, tmp_path, "Higher_Density", 4)
    exe = Path(sys.executable).with_name("harness")
    env = {**os.environ, "COLUMNS": "250"}
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    err = " ".join(proc.stderr.split())  # the warning reaches the terminal (as in `bench`)
    assert "only 2 distinct texts for 'Higher_Density' of the 4 needed" in err
    assert "3 of 4 requested items received" in err and KEY not in proc.stdout + proc.stderr
    assert "rejected Higher_Density item 2 of " in proc.stdout
    assert ".json: keywords (pneumothorax)" in proc.stdout  # where it is, why: not the text
    result = CliRunner().invoke(main, [*args, "-o", "synthesizer.min_unique=0.9"])
    assert result.exit_code == 2 and "synthesizer.min_unique=0.9" in result.output
