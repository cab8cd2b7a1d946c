"""`harness report reports/example`: the committed example has exported reports but no results
store; the command says why it cannot re-render it, how to reproduce it elsewhere, and writes
nothing there."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from harness.commands.report import report_cmd

EXAMPLE = Path(__file__).resolve().parents[1] / "reports" / "example"


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
    }


def test_report_on_the_example_says_why_and_writes_nothing() -> None:
    before = _snapshot(EXAMPLE)
    res = CliRunner().invoke(report_cmd, [str(EXAMPLE)])
    text = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert "exported reports but no results store (results.sqlite)" in text
    assert "nothing was written" in text
    assert f"--config {EXAMPLE / 'experiment.toml'} --out reports/<new>" in text
    assert f"--out {EXAMPLE}" not in text  # never suggests writing into the example
    assert _snapshot(EXAMPLE) == before
