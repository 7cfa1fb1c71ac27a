import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cola_core.errors import ColaError
from cola_core.evaluation.runstore import RunStore
from cola_core.evaluation.suite import Score


def _score(value):
    return {"math": Score("math", "accuracy", value, value - 0.1, value + 0.1, 10, [[1, 1]] * 10)}


def test_lifecycle_and_frames(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    rid = store.create("cola-tiny", calibration="calib.jsonl", settings={"method": "wanda"}, seed=1)
    assert store.get(rid)["status"] == "queued"
    store.start(rid)
    store.finish(rid, _score(0.5), {"seconds": 1})
    assert store.get(rid)["status"] == "done"
    frame = store.scores()
    assert frame.loc[0, "score"] == 0.5 and frame.loc[0, "capability"] == "math"
    assert store.score_items(rid)["math"].items == [[1, 1]] * 10
    other = store.create("cola-tiny")
    store.cancel(other)
    assert list(store.runs()["status"]) == ["done", "cancelled"]


def test_key_makes_create_idempotent(tmp_path):
    store = RunStore(tmp_path / "r.sqlite")
    assert store.create("m", key="exp/a/1") == store.create("m", key="exp/a/1")
    assert len(store.runs()) == 1


def test_runs_left_running_by_a_dead_process_are_marked_failed(tmp_path):
    store = RunStore(tmp_path / "r.sqlite")
    rid = store.create("m")
    store.start(rid)
    with sqlite3.connect(tmp_path / "r.sqlite") as db:
        db.execute("UPDATE runs SET pid=999999999 WHERE id=?", (rid,))
    RunStore(tmp_path / "r.sqlite")
    assert store.get(rid)["status"] == "failed" and store.get(rid)["error"] == "interrupted"


WRITER = """
import sys
from cola_core.evaluation.suite import Score
from cola_core.evaluation.runstore import RunStore
store = RunStore(sys.argv[1])
name, count = sys.argv[2], int(sys.argv[3])
for i in range(count):
    rid = store.create(name, key=f"{name}/{i}")
    store.start(rid)
    store.finish(rid, {"math": Score("math", "accuracy", i / count, 0, 1, 10, [[1, 1]] * 10)})
"""


def test_two_writers_contend_and_nothing_is_lost(tmp_path):
    path = tmp_path / "r.sqlite"
    RunStore(path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"w{k}", "40"], env=env) for k in range(2)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    store = RunStore(path)
    assert len(store.runs()) == 80 and (store.runs()["status"] == "done").all()
    assert len(store.scores()) == 80


def test_corrupt_store_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ColaError, match="not a readable SQLite database"):
        RunStore(bad)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "r.sqlite"
    RunStore(path)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(ColaError, match="newer than this"):
        RunStore(path)


def test_old_rows_say_which_calibration_fingerprint_they_hold(tmp_path):
    """Schema 1 kept fingerprints only in reports (experiments: chosen ids; dashboard jobs: ids + texts);
    the migration moves them to the column and names their kind; new rows hold the token fingerprint."""
    from cola_core.evaluation.runstore import MIGRATIONS

    path = tmp_path / "runs.sqlite"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0])
    db.execute("PRAGMA user_version=1")
    insert = "INSERT INTO runs (model, status, created, report) VALUES ('m', 'done', 0, ?)"
    db.execute(insert, ('{"calibration_fingerprint": "aaa"}',))
    db.execute(insert, ('{"calibration": {"fingerprint": "bbb", "n": 4}}',))
    db.execute(insert, ("{}",))
    db.commit()
    db.close()
    store = RunStore(path)
    runs = store.runs().sort_values("id")
    assert list(runs["calibration_fingerprint"].fillna("-")) == ["aaa", "bbb", "-"]
    assert list(runs["calibration_fingerprint_kind"].fillna("-")) == ["ids", "records", "-"]
    rid = store.create("m")
    store.finish(rid, _score(0.5), {}, calibration_fingerprint="ccc")
    row = store.get(rid)
    assert (row["calibration_fingerprint"], row["calibration_fingerprint_kind"]) == ("ccc", "tokens")


def test_settings_hash_is_kept_and_runs_are_read_by_key(tmp_path):
    store = RunStore(tmp_path / "r.sqlite")
    a = store.create("m", key="exp/a/0/1111", experiment="exp", settings_hash="1111")
    store.create("m", key="exp/a/0/2222", experiment="exp", settings_hash="2222")
    assert store.get(a)["settings_hash"] == "1111"
    picked = store.runs(keys=["exp/a/0/2222", "exp/missing"])
    assert list(picked["key"]) == ["exp/a/0/2222"] and list(picked["settings_hash"]) == ["2222"]
    assert len(store.runs("exp")) == 2


def test_a_run_without_experiment_reads_as_none_not_nan(tmp_path):
    """Issue #30: a dashboard run has no experiment; pandas read it as NaN, which is truthy, and the
    Compare page looked for an experiment's dense run that does not exist."""
    store = RunStore(tmp_path / "runs.sqlite")
    store.create("cola-tiny", seed=0)
    store.create("cola-tiny", key="exp/a/w/0/abc", experiment="exp", seed=0)
    runs = store.runs()
    assert runs["experiment"].iloc[0] is None and not runs["experiment"].iloc[0]
    assert runs["experiment"].iloc[1] == "exp" and runs["seed"].iloc[0] == 0
    assert all(not r["experiment"] for _, r in runs.head(1).iterrows())
