"""kill -9 at random moments, ten times each, during activation extraction (through `curate`), UMAP
map computation, compression (through `compress`) and run-store writes. Afterwards nothing
half-written is read as valid, finished work is intact, and the next run completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cola_core.evaluation.runstore import RunStore
from cola_core.storage.cache_store import load_entry

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
KILLS = 10


def _timed_run(argv: list[str], env: dict) -> float:
    """Run to completion (also warms caches); its duration sets the kill window, so the loop adapts to
    the machine's speed instead of assuming one."""
    t = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return time.perf_counter() - t


def _kill_loop(argvs: list[list[str]], env: dict, duration: float, seed: int = 0) -> int:
    """Start each command; SIGKILL it at a random moment between 30% and 105% of ``duration``.
    Returns how many finished before their kill."""
    rng = np.random.default_rng(seed)
    finished = 0
    for argv in argvs:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.05) * duration)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        finished += proc.wait() == 0
    return finished


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "COLA_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def test_kills_during_extraction_leave_no_half_entry_or_output(tmp_path):
    env = _env(tmp_path)
    out = tmp_path / "calib.jsonl"

    def argv(seed: int) -> list[str]:  # a new pool seed each time, so each run has fresh activations to write
        return [
            sys.executable,
            "-m",
            "cola_core",
            "curate",
            "--model",
            "cola-tiny",
            "--corpora",
            "prose,code,math,facts",
            "--pool-size",
            "600",
            "--n",
            "16",
            "--seqlen",
            "128",
            "--seed",
            str(seed),
            "--out",
            str(out),
        ]

    duration = _timed_run(argv(100), env)
    finished = _kill_loop([argv(k) for k in range(KILLS)], env, duration, seed=1)
    assert finished < KILLS, "every run finished before its kill; the test proved nothing"
    assert len(out.read_text().splitlines()) == 16  # written atomically: a complete file, never half of one
    entries = [p for p in (tmp_path / "cache" / "activations").iterdir() if not p.name.startswith(".tmp-")]
    for entry in entries:
        assert load_entry("activations", entry.name, root=tmp_path / "cache") is not None, entry.name
    _timed_run(argv(0), env)
    assert len(out.read_text().splitlines()) == 16


def test_kills_during_compression_leave_the_old_model_or_the_new_one(tmp_path):
    env = _env(tmp_path)
    calib = tmp_path / "calib.jsonl"
    calib.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"c/{i}",
                    "text": f"Question: What is {i} plus 2? Answer: {i + 2}",
                    "corpus": "c",
                    "domain": "math",
                    "meta": {},
                }
            )
            + "\n"
            for i in range(32)
        )
    )
    out = tmp_path / "model"
    argv = [
        sys.executable,
        "-m",
        "cola_core",
        "compress",
        "--model",
        "cola-tiny",
        "--calib",
        str(calib),
        "--method",
        "sparsegpt",
        "--seqlen",
        "64",
        "--out",
        str(out),
    ]
    duration = _timed_run(argv, env)
    finished = _kill_loop([argv] * KILLS, env, duration, seed=2)
    for _ in range(2):
        if out.exists():
            from transformers import AutoModelForCausalLM

            report = json.loads((out / "compression_report.json").read_text())
            assert report["method"] == "sparsegpt" and len(report["layers"]) == 4
            AutoModelForCausalLM.from_pretrained(out)  # loads: not half-written
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert finished < KILLS, "every run finished before its kill; the test proved nothing"


_STORE_CHILD = """
import sys
from cola_core.evaluation.suite import Score
from cola_core.evaluation.runstore import RunStore
store = RunStore(sys.argv[1])
print("ready", flush=True)
i = 0
while True:
    run = store.create("m", calibration=f"c{i}", settings={"i": i})
    store.start(run)
    store.finish(run, {c: Score(c, "accuracy", 0.5, 0.4, 0.6, 10, [[1, 2]] * 5) for c in ("lm", "code", "math", "facts")},
                 {"layers": list(range(50))})
    i += 1
"""


def test_kills_during_run_store_writes_never_half_write_a_run(tmp_path):
    db = tmp_path / "runs.sqlite"
    rng = np.random.default_rng(2)
    env = _env(tmp_path)
    for _ in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, "-c", _STORE_CHILD, str(db)], cwd=ROOT, env=env, stdout=subprocess.PIPE
        )
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.05, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    store = RunStore(db)  # opening marks runs of dead processes failed ("interrupted")
    runs, scores = store.runs(), store.scores()
    done = runs[runs["status"] == "done"]
    assert len(done) > KILLS  # work was finished between the kills
    per_run = scores.groupby("run_id").size()
    assert (per_run.reindex(done["id"]).fillna(0) == 4).all()  # every finished run has all its scores
    assert set(scores["run_id"]) <= set(done["id"])  # no scores of an unfinished run
    assert set(runs["status"]) <= {"done", "failed", "queued"}  # nothing left "running"
    assert all(json.loads(r)["layers"] == list(range(50)) for r in done["report"])


_MAP_CHILD = """
import sys
import numpy as np
from cola_core.curation.map2d import MapConfig, umap_2d
rng = np.random.default_rng(int(sys.argv[1]))
space = rng.standard_normal((400, 16)).astype(np.float32)
umap_2d(space, MapConfig(seed=0), space_key=f"space-{sys.argv[1]}")
"""


def test_kills_during_map_computation_leave_no_half_layout(tmp_path):
    env = _env(tmp_path)
    child = [sys.executable, "-c", _MAP_CHILD]
    _timed_run([*child, "0"], env)  # fills numba's compile cache
    duration = _timed_run([*child, "100"], env)
    finished = _kill_loop([[*child, str(k)] for k in range(1, KILLS + 1)], env, duration, seed=3)
    assert finished < KILLS, "every run finished before its kill; the test proved nothing"
    maps = tmp_path / "cache" / "maps"
    for entry in [p for p in maps.iterdir() if not p.name.startswith(".tmp-")]:
        hit = load_entry("maps", entry.name, root=tmp_path / "cache")
        assert hit is not None and hit[0]["xy"].shape == (400, 2) and np.isfinite(hit[0]["xy"]).all()
