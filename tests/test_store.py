"""harness.results.store: WAL SQLite store, transactional rows, resume keys and the prediction
cache."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.core.errors import DataError
from harness.results.store import STORE_NAME, ResultsStore, config_key, prediction_cache_key

PROV = {"benchmark": {"name": "phantom8", "fingerprint": "f" * 16}, "prompt_hash": "p1"}


def make_row(config_id: str = "rslora+none+template@s0", n: int = 5, **extra) -> dict:
    predictions = [
        {
            "id": f"img{i}",
            "label": "a" if i % 2 else "b",
            "prediction": None if i == 0 else "a",
            "valid": i != 0,
            "invalid_reason": "no Class: line" if i == 0 else None,
            "rouge_l": i / 10,
            "answer": f"Class: a\nExplanation: finding {i}",
        }
        for i in range(n)
    ]
    return {
        "config_id": config_id,
        "trainer": config_id.split("+")[0],
        "seed": 0,
        "options": {"trainer": {"r": 16}},
        "resolved": {"lr": 2e-4, "r": 16},
        "metrics": {"macro_f1": 0.4, "accuracy": 0.6, "rouge_l": 0.2, "invalid_rate": 0.2},
        "n_test": n,
        "predictions": predictions,
        **extra,
    }


def test_open_creates_a_wal_store(tmp_path: Path) -> None:
    with ResultsStore.open(tmp_path / "run") as store:
        assert store.path == tmp_path / "run" / STORE_NAME
        assert store.journal_mode == "wal"
        assert store.load_rows() == [] and store.load_provenance() == {}


def test_open_without_create_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=STORE_NAME):
        ResultsStore.open(tmp_path, create=False)


def test_rows_round_trip_with_predictions_in_order(tmp_path: Path) -> None:
    with ResultsStore.open(tmp_path) as store:
        run = store.save_run(PROV, {"majority": {"macro_f1": 0.1}})
        base = make_row("base")
        row = make_row(config_key="k1")
        assert not store.has_config("k1")
        store.save_config_result(base, run)
        store.save_config_result(row, run)
        assert store.has_config("k1") and store.has_config("base")
    with ResultsStore.open(tmp_path, create=False) as store:
        rows, prov, baselines = store.load()
    assert prov == PROV and baselines == {"majority": {"macro_f1": 0.1}}
    assert [r["config_id"] for r in rows] == ["base", "rslora+none+template@s0"]
    assert rows[1]["predictions"] == row["predictions"]
    assert rows[1]["resolved"] == row["resolved"] and rows[1]["metrics"] == row["metrics"]
    assert rows[1]["config_key"] == "k1"


def test_saving_a_key_again_replaces_it(tmp_path: Path) -> None:
    with ResultsStore.open(tmp_path) as store:
        store.save_config_result(make_row(n=5))
        store.save_config_result(make_row(n=3))
        rows = store.load_rows()
    assert len(rows) == 1 and len(rows[0]["predictions"]) == 3


def test_a_failed_write_leaves_no_partial_row(tmp_path: Path) -> None:
    with ResultsStore.open(tmp_path) as store:
        store.save_config_result(make_row("base"))
        bad = make_row()
        bad["predictions"][3]["answer"] = object()  # sqlite cannot bind it: fails mid-insert
        with pytest.raises(DataError, match=STORE_NAME):
            store.save_config_result(bad)
        assert not store.has_config(bad["config_id"])
        assert [r["config_id"] for r in store.load_rows()] == ["base"]


def test_a_killed_process_leaves_no_partial_row(tmp_path: Path) -> None:
    """SIGKILL in the middle of the predictions insert: nothing of that row survives."""
    with ResultsStore.open(tmp_path) as store:
        store.save_config_result(make_row("base"))
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_store import make_row
        from harness.results.store import ResultsStore

        class Killer:
            def __conform__(self, protocol):
                os.kill(os.getpid(), signal.SIGKILL)

        row = make_row(n=50)
        row["predictions"][30]["answer"] = Killer()
        ResultsStore.open({str(tmp_path)!r}).save_config_result(row)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()
    with ResultsStore.open(tmp_path, create=False) as store:
        assert [r["config_id"] for r in store.load_rows()] == ["base"]
        assert not store.has_config("rslora+none+template@s0")
    conn = sqlite3.connect(tmp_path / STORE_NAME)
    assert conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 5
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_prediction_cache_key_covers_every_input() -> None:
    args = ("m" * 16, "a" * 16, "f" * 16, "p" * 16, "t" * 16, {"max_new_tokens": 48, "b": 1})
    key = prediction_cache_key(*args)
    assert key == prediction_cache_key(*args[:5], {"b": 1, "max_new_tokens": 48})
    for i in range(5):
        changed = list(args)
        changed[i] = "x"
        assert prediction_cache_key(*changed) != key
    assert prediction_cache_key(*args[:5], {"max_new_tokens": 64, "b": 1}) != key
    assert prediction_cache_key(args[0], None, *args[2:]) == prediction_cache_key(
        args[0], "", *args[2:]
    )


def test_prediction_cache_round_trip(tmp_path: Path) -> None:
    key = prediction_cache_key("m", "a", "f", "p", "t", {"max_new_tokens": 48})
    with ResultsStore.open(tmp_path) as store:
        assert store.get_cached_predictions(key) is None
        store.put_cached_predictions(key, ["Class: a", "Class: b"], ["img0", "img1"])
    with ResultsStore.open(tmp_path) as store:
        assert store.get_cached_predictions(key) == ["Class: a", "Class: b"]
        assert store.get_cached_predictions(key, ["img0", "img1"]) == ["Class: a", "Class: b"]
        assert store.get_cached_predictions(key, ["img1", "img0"]) is None
        with pytest.raises(DataError):
            store.put_cached_predictions(key, ["x"], ["img0", "img1"])


def test_config_key_is_stable_and_sensitive() -> None:
    k = config_key("base", fingerprint="f", options={"r": 16, "a": 1})
    assert k.startswith("base#")
    assert k == config_key("base", options={"a": 1, "r": 16}, fingerprint="f")
    assert k != config_key("base", fingerprint="g", options={"r": 16, "a": 1})


def test_two_connections_see_committed_rows(tmp_path: Path) -> None:
    with ResultsStore.open(tmp_path) as writer, ResultsStore.open(tmp_path) as reader:
        writer.save_config_result(make_row())
        assert reader.has_config("rslora+none+template@s0")
        assert len(reader.load_rows()[0]["predictions"]) == 5


@pytest.mark.parametrize("column", ["scores", "likelihood_prediction"])
def test_a_store_from_before_a_predictions_column_is_upgraded(tmp_path, column: str) -> None:
    import sqlite3

    from harness.results.store import STORE_NAME, ResultsStore

    with ResultsStore.open(tmp_path):
        pass
    conn = sqlite3.connect(tmp_path / STORE_NAME)
    conn.execute(f"ALTER TABLE predictions DROP COLUMN {column}")
    conn.commit()
    conn.close()
    with ResultsStore.open(tmp_path) as store:  # the column comes back last: named inserts
        pred = {"id": "a", "label": "N", "prediction": None, "valid": False}
        row = {
            "config_id": "x",
            "metrics": {"macro_f1": 0.0},
            "predictions": [{**pred, "likelihood_prediction": "N", "scores": {"N": -0.1}}],
        }
        store.save_config_result(row)
        (loaded,) = store.load_rows()
    got = loaded["predictions"][0]
    assert got["likelihood_prediction"] == "N" and got["scores"] == {"N": -0.1}
    assert got["prediction"] is None and got["answer"] is None
