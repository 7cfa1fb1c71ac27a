"""The run store: every compression/evaluation run in one SQLite database under ``cache/``.

SQLite in WAL mode (several readers, one writer at a time, with a busy timeout), a schema version
with forward migrations, and one transaction per state change, so a crash never leaves a run
half-written: a run is ``queued`` → ``running`` → ``done`` | ``failed`` | ``cancelled``, and scores
land in the same transaction that marks it done. Runs left ``running`` by a dead process are marked
failed (``interrupted``) when a store is opened.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from cola_core.errors import ColaError
from cola_core.paths import cache_root
from cola_core.storage.fingerprints import CALIBRATION_FINGERPRINT_KIND
from cola_core.storage.processes import pid_alive

STATUSES = ("queued", "running", "done", "failed", "cancelled")
MIGRATIONS = [
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        key TEXT UNIQUE,
        experiment TEXT,
        model TEXT NOT NULL,
        model_fingerprint TEXT,
        calibration TEXT,
        calibration_fingerprint TEXT,
        settings TEXT NOT NULL DEFAULT '{}',
        seed INTEGER,
        status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        pid INTEGER,
        created REAL NOT NULL,
        started REAL,
        finished REAL,
        error TEXT,
        report TEXT
    );
    CREATE TABLE scores (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        capability TEXT NOT NULL,
        metric TEXT NOT NULL,
        score REAL NOT NULL,
        ci_low REAL,
        ci_high REAL,
        n INTEGER,
        items TEXT,
        PRIMARY KEY (run_id, capability)
    );
    CREATE INDEX runs_experiment ON runs(experiment);
    """,
    # 2: say which kind of calibration fingerprint a row holds (storage.fingerprints). Rows written
    # before kept it only in their report: experiments the chosen ids' hash ("ids"), dashboard jobs
    # the ids + texts hash ("records"); new rows hold the token fingerprint ("tokens").
    """
    ALTER TABLE runs ADD COLUMN calibration_fingerprint_kind TEXT;
    UPDATE runs SET calibration_fingerprint = json_extract(report, '$.calibration_fingerprint'),
        calibration_fingerprint_kind = 'ids'
        WHERE calibration_fingerprint IS NULL AND json_extract(report, '$.calibration_fingerprint') IS NOT NULL;
    UPDATE runs SET calibration_fingerprint = json_extract(report, '$.calibration.fingerprint'),
        calibration_fingerprint_kind = 'records'
        WHERE calibration_fingerprint IS NULL AND json_extract(report, '$.calibration.fingerprint') IS NOT NULL;
    UPDATE runs SET calibration_fingerprint_kind = 'unknown'
        WHERE calibration_fingerprint IS NOT NULL AND calibration_fingerprint_kind IS NULL;
    """,
    # 3: the hash of everything that decides a run's result (experiments/plan.py), so a resumed
    # experiment reuses a run only when its settings, model and data match.
    """
    ALTER TABLE runs ADD COLUMN settings_hash TEXT;
    """,
]


class RunStore:
    def __init__(self, path: str | Path | None = None, timeout: float = 30.0):
        self.path = Path(path) if path else cache_root() / "runs.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        try:
            with self._connect() as db:
                self._migrate(db)
        except sqlite3.DatabaseError as exc:
            raise ColaError(
                f"the run store {self.path} is not a readable SQLite database ({exc}); move it aside to start a new one"
            ) from None
        self.recover()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise ColaError(
                f"the run store {self.path} has schema {version}, newer than this COLA Studio ({len(MIGRATIONS)}); upgrade"
            )
        for target in range(version, len(MIGRATIONS)):
            db.execute("BEGIN IMMEDIATE")
            if db.execute("PRAGMA user_version").fetchone()[0] > target:  # another process applied it
                db.execute("COMMIT")
                continue
            for statement in MIGRATIONS[target].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version={target + 1}")
            db.execute("COMMIT")

    def recover(self) -> int:
        """Mark runs left ``running`` by a process that no longer exists as failed."""
        with self._tx() as db:
            stale = [
                r["id"]
                for r in db.execute("SELECT id, pid FROM runs WHERE status='running'")
                if not pid_alive(r["pid"])
            ]
            for run_id in stale:
                db.execute(
                    "UPDATE runs SET status='failed', error='interrupted', finished=? WHERE id=?", (time.time(), run_id)
                )
        return len(stale)

    def create(
        self,
        model: str,
        *,
        key: str | None = None,
        experiment: str | None = None,
        model_fingerprint: str | None = None,
        calibration: str | None = None,
        calibration_fingerprint: str | None = None,
        settings: Mapping[str, Any] | None = None,
        seed: int | None = None,
        settings_hash: str | None = None,
    ) -> int:
        """A queued run; with ``key``, the existing run of that key is returned instead (resume)."""
        with self._tx() as db:
            if key is not None:
                row = db.execute("SELECT id FROM runs WHERE key=?", (key,)).fetchone()
                if row:
                    return int(row["id"])
            cur = db.execute(
                "INSERT INTO runs (key, experiment, model, model_fingerprint, calibration, calibration_fingerprint,"
                " settings, seed, settings_hash, status, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?)",
                (
                    key,
                    experiment,
                    model,
                    model_fingerprint,
                    calibration,
                    calibration_fingerprint,
                    json.dumps(settings or {}, default=str),
                    seed,
                    settings_hash,
                    time.time(),
                ),
            )
            return int(cur.lastrowid)

    def start(self, run_id: int) -> None:
        self._set(run_id, "running", started=time.time(), pid=os.getpid(), error=None)

    def finish(
        self,
        run_id: int,
        scores: Mapping[str, Any],
        report: Mapping[str, Any] | None = None,
        calibration_fingerprint: str | None = None,
    ) -> None:
        """Scores (``evaluation.Score``), the report and the calibration set's token fingerprint
        (:func:`~cola_core.storage.fingerprints.calibration_fingerprint`) land with status ``done``
        in one transaction."""
        with self._tx() as db:
            db.execute("DELETE FROM scores WHERE run_id=?", (run_id,))
            for name, s in scores.items():
                db.execute(
                    "INSERT INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, name, s.metric, s.score, s.ci_low, s.ci_high, s.n, json.dumps(s.items)),
                )
            db.execute(
                "UPDATE runs SET status='done', finished=?, report=?, error=NULL WHERE id=?",
                (time.time(), json.dumps(report or {}, default=str), run_id),
            )
            if calibration_fingerprint is not None:
                db.execute(
                    "UPDATE runs SET calibration_fingerprint=?, calibration_fingerprint_kind=? WHERE id=?",
                    (calibration_fingerprint, CALIBRATION_FINGERPRINT_KIND, run_id),
                )

    def fail(self, run_id: int, error: str) -> None:
        self._set(run_id, "failed", finished=time.time(), error=error)

    def cancel(self, run_id: int) -> None:
        self._set(run_id, "cancelled", finished=time.time(), error="cancelled")

    def _set(self, run_id: int, status: str, **fields: Any) -> None:
        cols = ", ".join(f"{k}=?" for k in fields)
        with self._tx() as db:
            cur = db.execute(
                f"UPDATE runs SET status=?{', ' + cols if cols else ''} WHERE id=?", (status, *fields.values(), run_id)
            )
            if cur.rowcount == 0:
                raise ColaError(f"no run {run_id} in {self.path}")

    def get(self, run_id: int) -> dict[str, Any]:
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise ColaError(f"no run {run_id} in {self.path}")
        return dict(row)

    def runs(self, experiment: str | None = None, keys: list[str] | None = None) -> pd.DataFrame:
        """One row per run (settings and report as JSON text); only one experiment's, or only the
        runs of the given keys (in any order; keys with no run are absent)."""
        query, args = "SELECT * FROM runs", ()
        if experiment is not None:
            query, args = query + " WHERE experiment=?", (experiment,)
        with self._connect() as db:
            frame = pd.read_sql_query(query + " ORDER BY id", db, params=args)
        # a dashboard run has no experiment: None, never NaN (NaN is truthy, issue #30)
        frame["experiment"] = frame["experiment"].astype(object).where(frame["experiment"].notna(), None)
        return frame if keys is None else frame[frame["key"].isin(keys)].reset_index(drop=True)

    def scores(self, run_ids: list[int] | None = None) -> pd.DataFrame:
        """Tidy scores: run_id, capability, metric, score, ci_low, ci_high, n (no per-item data)."""
        query = "SELECT run_id, capability, metric, score, ci_low, ci_high, n FROM scores"
        with self._connect() as db:
            frame = pd.read_sql_query(query + " ORDER BY run_id, capability", db)
        return frame if run_ids is None else frame[frame["run_id"].isin(run_ids)].reset_index(drop=True)

    def score_items(self, run_id: int) -> dict[str, Any]:
        """The stored scores of a run as ``evaluation.Score`` objects (with per-item data)."""
        from cola_core.evaluation.suite import Score

        with self._connect() as db:
            rows = db.execute("SELECT * FROM scores WHERE run_id=?", (run_id,)).fetchall()
        return {
            r["capability"]: Score(
                r["capability"], r["metric"], r["score"], r["ci_low"], r["ci_high"], r["n"], json.loads(r["items"])
            )
            for r in rows
        }
