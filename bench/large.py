"""Large pools downstream of extraction (synthetic 64-d vectors shaped like activation spaces):
k-means (mini-batch above 20k points), the 2-D map (UMAP fitted on 20k points, the rest placed by
their nearest sampled neighbours), and `tradeoff` selection (index build + one selection of 128;
cluster-first shortlist of 65,536 candidates above that size), at 10k, 100k and 1M points, with the
exponent of each step's growth; the shortlisted selection's objective is compared with the greedy
over every row (whose kernel is pool × 1024 floats)."""

from __future__ import annotations

import time

from bench.oracles import tradeoff_objective
from bench.scaling import exponent
from bench.selection import _pool
from cola_core.curation.map2d import MapConfig, umap_2d
from cola_core.curation.selection import select
from cola_core.curation.space import cluster_space
from cola_core.curation.tradeoff import build_tradeoff_index


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run(sizes=(10_000, 100_000, 1_000_000)) -> list[dict]:
    rows = []
    for size in sizes:
        space = _pool("mixture", size)
        row = {
            "size": size,
            "cluster_s": _timed(lambda space=space: cluster_space(space, 64, seed=0)),
            "map_s": _timed(lambda space=space: umap_2d(space, MapConfig(seed=0))),
        }
        t = time.perf_counter()
        index = build_tradeoff_index(space)
        row["index_s"] = time.perf_counter() - t
        row["kernel_mb"] = index.kernel.nbytes / 1e6
        row["candidates"] = len(index.space)
        t = time.perf_counter()
        chosen = select(space, 128, "tradeoff", lam=0.5, index=index).indices
        row["select_s"] = time.perf_counter() - t
        if index.rows is not None:  # how much objective the shortlist costs, judged on every row
            full = build_tradeoff_index(space, max_candidates=len(space))
            best = select(space, 128, "tradeoff", lam=0.5, index=full).indices
            row["objective_ratio"] = tradeoff_objective(full, chosen, 0.5) / tradeoff_objective(full, best, 0.5)
            row["full_kernel_mb"] = full.kernel.nbytes / 1e6
            del full
        rows.append(row)
        print(row, flush=True)
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| pool (64-d) | k-means, 64 clusters | 2-D map (UMAP on ≤ 20k + placement) | tradeoff index | candidates (kernel) | "
        "tradeoff select 128 | objective vs greedy over every row (its kernel) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = (
            f"{r['objective_ratio']:.3f} ({r['full_kernel_mb']:,.0f} MB)"
            if "objective_ratio" in r
            else "same (no shortlist)"
        )
        lines.append(
            f"| {r['size']:,} | {r['cluster_s']:.1f} s | {r['map_s']:.1f} s | {r['index_s']:.1f} s | "
            f"{r.get('candidates', r['size']):,} ({r.get('kernel_mb', 0):,.0f} MB) | {r['select_s']:.2f} s | {ratio} |"
        )
    if len(rows) > 1:
        xs = [r["size"] for r in rows]
        b = {k: f"{exponent(xs, [r[k] for r in rows]):.2f}" for k in ("cluster_s", "map_s", "index_s", "select_s")}
        lines.append(
            f"| exponent b (time ∝ poolᵇ) | {b['cluster_s']} | {b['map_s']} | {b['index_s']} | | {b['select_s']} | |"
        )
    return "\n".join(lines)
