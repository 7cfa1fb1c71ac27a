"""2-D map timings for 10k points (64-d): PCA preview, UMAP in a fresh process with an empty numba
cache (cold), in a fresh process with the numba cache from the cold run (warm), and a cached reload
from the disk cache. Each UMAP run is its own subprocess so import and compile costs are counted."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cola_core.curation.map2d import pca_2d

_CHILD = """
import json, os, sys, time
t0 = time.perf_counter()
import numpy as np
from cola_core.curation.map2d import MapConfig, umap_2d
rng = np.random.default_rng(0)
centres = rng.standard_normal((50, 64)) * 3
space = (centres[rng.integers(0, 50, {n})] + rng.standard_normal(({n}, 64))).astype(np.float32)
t1 = time.perf_counter()
umap_2d(space, MapConfig(seed=0), space_key="bench-{n}")
t2 = time.perf_counter()
print(json.dumps({{"total": t2 - t0, "fit": t2 - t1}}))
"""


def _child(n: int, env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD.format(n=n)], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(n: int = 10_000) -> list[dict]:
    import os

    rng = np.random.default_rng(0)
    space = rng.standard_normal((n, 64)).astype(np.float32)
    t = time.perf_counter()
    pca_2d(space)
    pca = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": root, "NUMBA_CACHE_DIR": f"{tmp}/numba", "COLA_CACHE_DIR": f"{tmp}/cold"}
        cold = _child(n, env)
        warm = _child(n, {**env, "COLA_CACHE_DIR": f"{tmp}/warm"})
        cached = _child(n, {**env, "COLA_CACHE_DIR": f"{tmp}/warm"})  # the warm run's map is on disk now
    row = {
        "points": n,
        "pca_s": pca,
        "cold_s": cold["total"],
        "warm_s": warm["total"],
        "warm_fit_s": warm["fit"],
        "cached_s": cached["fit"],
        "cached_total_s": cached["total"],
    }
    print(row, flush=True)
    return [row]


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| points | PCA preview (goal ≤ 2 s) | UMAP cold: fresh process, empty numba cache (goal ≤ 15 s) | warm: fresh process, numba cache kept (fit alone) | cached reload (goal ≤ 0.5 s) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['points']:,} | {r['pca_s'] * 1000:.0f} ms | {r['cold_s']:.1f} s | {r['warm_s']:.1f} s ({r['warm_fit_s']:.1f} s) | "
            f"{r['cached_s'] * 1000:.0f} ms |"
        )
    return "\n".join(lines)
