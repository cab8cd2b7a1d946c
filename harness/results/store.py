"""The results store: one SQLite file (WAL mode) per results directory.

It holds runs (provenance + baselines), finished configurations (resolved settings, metrics,
per-sample predictions) and a prediction cache keyed by everything that determines generation.
Each configuration is written in one transaction, so a killed run never leaves half a row, and
every report can be re-rendered from this file alone (``harness report DIR``).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.core.errors import DataError

STORE_NAME = "results.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    provenance TEXT NOT NULL,
    baselines TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS configs (
    config_key TEXT PRIMARY KEY,
    run_id INTEGER REFERENCES runs(run_id),
    position INTEGER NOT NULL,
    config_id TEXT NOT NULL,
    seed INTEGER,
    resolved TEXT NOT NULL,
    row TEXT NOT NULL,
    finished TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    config_key TEXT NOT NULL REFERENCES configs(config_key) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (config_key, name)
);
CREATE TABLE IF NOT EXISTS predictions (
    config_key TEXT NOT NULL REFERENCES configs(config_key) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    sample_id TEXT NOT NULL,
    label TEXT NOT NULL,
    prediction TEXT,
    valid INTEGER NOT NULL,
    invalid_reason TEXT,
    rouge_l REAL,
    answer TEXT,
    scores TEXT,
    likelihood_prediction TEXT,
    PRIMARY KEY (config_key, idx)
);
CREATE TABLE IF NOT EXISTS prediction_cache (
    cache_key TEXT PRIMARY KEY,
    sample_ids TEXT,
    answers TEXT NOT NULL,
    created TEXT NOT NULL
);
"""

_PRED_FIELDS = ("id", "label", "prediction", "valid", "invalid_reason", "rouge_l", "answer")
_PRED_COLUMNS = (
    "config_key",
    "idx",
    "sample_id",
    "label",
    "prediction",
    "valid",
    "invalid_reason",
    "rouge_l",
    "answer",
    "scores",
    "likelihood_prediction",
)


def _hash(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prediction_cache_key(
    model_hash: str,
    adapter_hash: str | None,
    fingerprint: str,
    prompt_hash: str,
    chat_template_hash: str,
    generation_config: Mapping[str, Any],
) -> str:
    """Key of a configuration's raw answers: same key, same generated text."""
    parts = {
        "model": model_hash,
        "adapter": adapter_hash or "",
        "benchmark": fingerprint,
        "prompt": prompt_hash,
        "chat_template": chat_template_hash,
        "generation": dict(generation_config),
    }
    return _hash(parts)[:32]


def config_key(config_id: str, **settings: Any) -> str:
    """Resume key: the configuration id plus a hash of every setting that changes its result
    (e.g. ``fingerprint=``, ``model=``, ``options=``, ``generation=``, ``prompt_hash=``)."""
    return f"{config_id}#{_hash(settings)[:12]}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _dumps(obj: Any) -> str:
    """Key order is kept: reports re-rendered from the store must match the originals."""
    return json.dumps(obj, default=str)


class ResultsStore:
    """``ResultsStore.open(dir)`` -> the store at ``dir/results.sqlite``; use as a context."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path, self._conn = path, conn

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def open(cls, directory: Path | str, create: bool = True) -> ResultsStore:
        directory = Path(directory)
        path = directory / STORE_NAME
        if not create and not path.is_file():
            raise DataError(f"{path}: no results store (run `harness bench --out {directory}`)")
        try:
            directory.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.executescript(_SCHEMA)
            columns = {r[1] for r in conn.execute("PRAGMA table_info(predictions)")}
            if "scores" not in columns:  # stores written before likelihood scoring existed
                conn.execute("ALTER TABLE predictions ADD COLUMN scores TEXT")
            if "likelihood_prediction" not in columns:  # ... and before --scoring both
                conn.execute("ALTER TABLE predictions ADD COLUMN likelihood_prediction TEXT")
            conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise DataError(f"{path}: cannot open results store: {exc}") from exc
        if int(version[0]) != SCHEMA_VERSION:
            conn.close()
            raise DataError(f"{path}: schema version {version[0]}, expected {SCHEMA_VERSION}")
        return cls(path, conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def journal_mode(self) -> str:
        return str(self._conn.execute("PRAGMA journal_mode").fetchone()[0])

    def _transaction(self) -> _Tx:
        return _Tx(self._conn, self.path)

    # ------------------------------------------------------------ runs
    def save_run(
        self, provenance: Mapping[str, Any], baselines: Mapping[str, Any] | None = None
    ) -> int:
        """Record one invocation's provenance; returns its ``run_id``."""
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO runs (created, provenance, baselines) VALUES (?, ?, ?)",
                (_now(), _dumps(provenance), _dumps(baselines or {})),
            )
            return int(cur.lastrowid)

    def load_provenance(self) -> dict[str, Any]:
        """The latest run's provenance (``{}`` when none was saved)."""
        row = self._conn.execute(
            "SELECT provenance FROM runs ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
        return json.loads(row[0]) if row else {}

    def load_baselines(self) -> dict[str, Any]:
        row = self._conn.execute(
            "SELECT baselines FROM runs ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
        return json.loads(row[0]) if row else {}

    def runs(self) -> list[dict[str, Any]]:
        cur = self._conn.execute("SELECT run_id, created, provenance FROM runs ORDER BY run_id")
        return [{"run_id": r, "created": c, "provenance": json.loads(p)} for r, c, p in cur]

    # ------------------------------------------------------------ configurations
    def has_config(self, key: str) -> bool:
        """True when the configuration finished (its row and predictions are committed)."""
        cur = self._conn.execute("SELECT 1 FROM configs WHERE config_key = ?", (key,))
        return cur.fetchone() is not None

    def finished_keys(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT config_key FROM configs")]

    def save_config_result(self, row: Mapping[str, Any], run_id: int | None = None) -> str:
        """Write one result row, its metrics and every prediction in one transaction.

        The key is ``row['config_key']`` (see :func:`config_key`), else ``row['config_id']``.
        Saving the same key again replaces the earlier result.
        """
        key = str(row.get("config_key") or row["config_id"])
        flat = {k: v for k, v in row.items() if k != "predictions"}
        flat["config_key"] = key
        preds = [
            (
                key,
                i,
                str(p["id"]),
                str(p["label"]),
                p.get("prediction"),
                int(bool(p.get("valid", p.get("prediction") is not None))),
                p.get("invalid_reason"),
                p.get("rouge_l"),
                p.get("answer"),
                _dumps(p["scores"]) if p.get("scores") is not None else None,
                p.get("likelihood_prediction"),
            )
            for i, p in enumerate(row.get("predictions", []))
        ]
        with self._transaction() as cur:
            cur.execute("DELETE FROM configs WHERE config_key = ?", (key,))
            pos = cur.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM configs").fetchone()[0]
            cur.execute(
                "INSERT INTO configs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    run_id,
                    pos,
                    str(row["config_id"]),
                    row.get("seed"),
                    _dumps(row.get("resolved", {})),
                    _dumps(flat),
                    _now(),
                ),
            )
            cur.executemany(
                "INSERT INTO metrics VALUES (?, ?, ?)",
                [(key, k, v) for k, v in (row.get("metrics") or {}).items()],
            )
            # columns by name: an upgraded store has its added columns in the order it got them
            cur.executemany(
                f"INSERT INTO predictions ({', '.join(_PRED_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_PRED_COLUMNS))})",
                preds,
            )
        return key

    def load_rows(self, with_predictions: bool = True) -> list[dict[str, Any]]:
        """Every finished row in the order it was saved, predictions included."""
        rows = [
            json.loads(r[0])
            for r in self._conn.execute("SELECT row FROM configs ORDER BY position")
        ]
        if not with_predictions:
            return rows
        by_key: dict[str, list[dict[str, Any]]] = {r["config_key"]: [] for r in rows}
        cur = self._conn.execute(
            "SELECT config_key, sample_id, label, prediction, valid, invalid_reason, rouge_l, "
            "answer, scores, likelihood_prediction FROM predictions ORDER BY config_key, idx"
        )
        for key, *vals, scores, by_likelihood in cur:
            vals[3] = bool(vals[3])
            pred = dict(zip(_PRED_FIELDS, vals, strict=True))
            if scores is not None:  # likelihood scoring: every label's log-likelihood
                pred["scores"] = json.loads(scores)
            if by_likelihood is not None:  # --scoring both: the likelihood-scored label too
                pred["likelihood_prediction"] = by_likelihood
            by_key[key].append(pred)
        for r in rows:
            r["predictions"] = by_key[r["config_key"]]
        return rows

    def load(self) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
        """``(rows, provenance, baselines)``: everything ``exports.write_all`` needs."""
        return self.load_rows(), self.load_provenance(), self.load_baselines()

    # ------------------------------------------------------------ prediction cache
    def get_cached_predictions(
        self, cache_key: str, sample_ids: Sequence[str] | None = None
    ) -> list[str] | None:
        """Raw answers saved under ``cache_key``; None if absent or for other sample ids."""
        row = self._conn.execute(
            "SELECT sample_ids, answers FROM prediction_cache WHERE cache_key = ?", (cache_key,)
        ).fetchone()
        if row is None:
            return None
        if sample_ids is not None and row[0] is not None:
            if json.loads(row[0]) != [str(s) for s in sample_ids]:
                return None
        return list(json.loads(row[1]))

    def put_cached_predictions(
        self, cache_key: str, answers: Sequence[str], sample_ids: Sequence[str] | None = None
    ) -> None:
        if sample_ids is not None and len(sample_ids) != len(answers):
            raise DataError(f"{self.path}: {len(answers)} answers for {len(sample_ids)} samples")
        ids = None if sample_ids is None else json.dumps([str(s) for s in sample_ids])
        with self._transaction() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO prediction_cache VALUES (?, ?, ?, ?)",
                (cache_key, ids, json.dumps(list(answers)), _now()),
            )


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; any exception (or a kill) rolls everything back."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn, self.path = conn, path

    def __enter__(self) -> sqlite3.Cursor:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise DataError(f"{self.path}: cannot start a transaction: {exc}") from exc
        return self.conn.cursor()

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
                return
            except sqlite3.Error as err:
                self.conn.execute("ROLLBACK")
                raise DataError(f"{self.path}: commit failed: {err}") from err
        self.conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise DataError(f"{self.path}: write failed: {exc}") from exc
