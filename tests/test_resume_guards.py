"""A results folder holds one result per configuration name: reuse and changed settings fail."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main

BASE = ["bench", "--trainer", "lora", "--no-base", "--threads", "1", "--eval-batch-size", "40"]


@pytest.mark.slow
def test_existing_out_needs_resume_and_resume_refuses_changed_settings(tmp_path: Path) -> None:
    out = tmp_path / "run"
    runner = CliRunner()
    first = runner.invoke(main, [*BASE, "-o", "trainer.max_steps=2", "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert (out / "results.sqlite").is_file()

    again = runner.invoke(main, [*BASE, "-o", "trainer.max_steps=2", "--out", str(out)])
    assert again.exit_code == 2
    text = " ".join(again.output.split())  # Rich wraps long lines
    assert "already holds a run" in text and "--resume" in text

    changed = runner.invoke(
        main, [*BASE, "-o", "trainer.max_steps=3", "--out", str(out), "--resume"]
    )
    assert changed.exit_code == 2
    text = " ".join(changed.output.split())
    assert "lora+none+template@s0" in text and "other settings" in text

    same = runner.invoke(main, [*BASE, "-o", "trainer.max_steps=2", "--out", str(out), "--resume"])
    assert same.exit_code == 0, same.output
    assert "skipped (--resume)" in same.output
