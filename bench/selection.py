"""Re-selection latency of every strategy, and the lazy greedy against the plain greedy.

Pools of synthetic 64-d points: a mixture of 50 Gaussian clusters (shaped like activation spaces)
and plain isotropic Gaussian noise (the worst case for lazy evaluation). n = 128. The tradeoff index
(kernel to 1,024 anchors) is built once per pool, as the dashboard does; a slider move re-runs only
the greedy, which is what "re-selection" times.
"""

from __future__ import annotations

import time

import numpy as np

from bench.oracles import plain_greedy, tradeoff_objective
from cola_core.curation.selection import select
from cola_core.curation.tradeoff import build_tradeoff_index


def _pool(kind: str, size: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.standard_normal((size, dim)).astype(np.float32)
    centres = rng.standard_normal((50, dim)) * 3
    return (centres[rng.integers(0, 50, size)] + rng.standard_normal((size, dim))).astype(np.float32)


def best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def run(sizes=(1_000, 10_000, 50_000), n: int = 128) -> list[dict]:
    rows = []
    for kind in ("mixture", "gaussian"):
        for size in sizes:
            space = _pool(kind, size)
            groups = [str(i % 4) for i in range(size)]
            t_index = best_of(lambda space=space: build_tradeoff_index(space), 2)
            index = build_tradeoff_index(space)
            row = {"pool": kind, "size": size, "n": n, "index_s": t_index}
            for strategy in ("random", "stratified", "cola"):
                reps = 1 if strategy == "cola" else 5
                row[f"{strategy}_s"] = best_of(
                    lambda s=strategy, space=space, groups=groups: select(space, n, s, groups=groups), reps
                )
            for lam in (0.0, 0.5, 1.0):
                sel = select(space, n, "tradeoff", lam=lam, index=index)
                row[f"tradeoff_{lam}_s"] = best_of(
                    lambda lam=lam, space=space, index=index: select(space, n, "tradeoff", lam=lam, index=index)
                )
                if size <= 10_000:
                    t = time.perf_counter()
                    ref = plain_greedy(index, n, lam)
                    row[f"plain_{lam}_s"] = time.perf_counter() - t
                    row[f"objective_{lam}"] = tradeoff_objective(index, sel.indices, lam) / tradeoff_objective(
                        index, ref, lam
                    )
            rows.append(row)
            print(row, flush=True)
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| pool | size | random | stratified | cola | tradeoff λ=0 | λ=0.5 | λ=1 | plain greedy λ=0.5 | speed-up | objective vs plain (λ=0/0.5/1) | index build |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ms = lambda s: f"{s * 1000:.0f} ms" if s < 10 else f"{s:.1f} s"  # noqa: E731
    for r in rows:
        plain = r.get("plain_0.5_s")
        ratio = f"{plain / r['tradeoff_0.5_s']:.0f}×" if plain else "—"
        obj = "/".join(f"{r[f'objective_{lam}']:.3f}" for lam in (0.0, 0.5, 1.0)) if plain else "—"
        lines.append(
            f"| {r['pool']} | {r['size']:,} | {ms(r['random_s'])} | {ms(r['stratified_s'])} | {ms(r['cola_s'])} | "
            f"{ms(r['tradeoff_0.0_s'])} | {ms(r['tradeoff_0.5_s'])} | {ms(r['tradeoff_1.0_s'])} | "
            f"{ms(plain) if plain else '—'} | {ratio} | {obj} | {ms(r['index_s'])} |"
        )
    return "\n".join(lines)
