"""The first UMAP map in a fresh process, without and with the background warm-up (issue #21).

Each row is its own subprocess with an empty numba cache, as in a fresh install's first server:
- cold: the process asks for a map at once and pays the UMAP import and numba's compilation (what
  the dashboard's first UMAP request paid before ``app.py`` called ``map2d.warm_up()``);
- warm-up done: ``warm_up()`` at start (as ``app.py`` does) has finished before the request;
- warm-up started N s before: the user asks while the warm-up is still compiling (they wait for the
  rest of it, never for two compilations).
Sizes: the dashboard's default pool (1,000) and 10,000 points, to show one warm-up on a small set
covers the large-pool fit too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_CHILD = """
import json, time
t0 = time.perf_counter()
import numpy as np
from cola_core.curation import map2d
warm = None
if {warm}:
    thread = map2d.warm_up()
    if {lead} > 0:
        time.sleep({lead})
    else:
        thread.join()
        warm = time.perf_counter() - t0
rng = np.random.default_rng(0)
centres = rng.standard_normal((50, 64)) * 3
space = (centres[rng.integers(0, 50, {n})] + rng.standard_normal(({n}, 64))).astype(np.float32)
t = time.perf_counter()
map2d.umap_2d(space, map2d.MapConfig(seed=0))
print(json.dumps({{"first_map_s": time.perf_counter() - t, "warm_up_s": warm}}))
"""


def first_map(n: int, warm: bool, lead: float = 0.0) -> dict:
    """Seconds of the first ``umap_2d`` call in a fresh process with an empty numba cache; with
    ``warm``, after ``warm_up()`` has run to the end (``lead`` 0) or for ``lead`` seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_CACHE_DIR": f"{tmp}/numba", "COLA_CACHE_DIR": tmp}
        code = _CHILD.format(n=n, warm=warm, lead=lead)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(sizes: tuple[int, ...] = (1_000, 10_000), lead: float = 15.0) -> list[dict]:
    rows = []
    for n in sizes:
        cold, done = first_map(n, warm=False), first_map(n, warm=True)
        row = {"points": n, "cold_s": cold["first_map_s"], "warm_up_s": done["warm_up_s"]}
        row["after_warm_up_s"] = done["first_map_s"]
        if n == sizes[0]:
            row["lead_s"], row["during_warm_up_s"] = lead, first_map(n, warm=True, lead=lead)["first_map_s"]
        rows.append(row)
        print(row, flush=True)
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| points (64-d) | first map, cold process | warm-up (in the background) | first map after it | "
        "first map while it runs |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        during = f"{r['during_warm_up_s']:.1f} s (asked {r['lead_s']:.0f} s after start)" if "lead_s" in r else "—"
        lines.append(
            f"| {r['points']:,} | {r['cold_s']:.1f} s | {r['warm_up_s']:.1f} s | {r['after_warm_up_s']:.1f} s | {during} |"
        )
    lines += [
        "",
        "Each cell: a fresh process, empty numba cache (`bench/warmup.py`); the dashboard starts the warm-up on "
        "`app.py`'s first run, when the first browser session opens the start page.",
    ]
    return "\n".join(lines)
