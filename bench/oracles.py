"""Reference implementations the tests and benchmarks check the fast selection against (not part
of the library): the trade-off objective itself and the plain (non-lazy) greedy that maximises it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cola_core.curation.tradeoff import TradeoffIndex, _disp_scale, _sq_dists


def plain_greedy(index: TradeoffIndex, n: int, lam: float) -> list[int]:
    """Reference: the same objective without lazy evaluation (every gain recomputed every step)."""
    space, kernel, w = index.space, index.kernel, index.weights
    cur = np.zeros(kernel.shape[1], dtype=np.float32)
    disp = np.zeros(len(space))
    dscale = (1.0 - lam) * _disp_scale(n, index.bandwidth)
    available = np.ones(len(space), dtype=bool)
    chosen: list[int] = []
    if lam == 0.0:
        far = ((space - space.mean(0)) ** 2).sum(1)
        chosen.append(int(np.argmax(far)))
        available[chosen[0]] = False
        disp += np.sqrt(((space - space[chosen[0]]) ** 2).sum(1))
    while len(chosen) < n:
        gains = lam * (np.maximum(kernel - cur, 0) @ w) + dscale * disp
        c = int(np.argmax(np.where(available, gains, -np.inf)))
        chosen.append(c)
        available[c] = False
        np.maximum(cur, kernel[c], out=cur)
        disp += np.sqrt(((space - space[c]) ** 2).sum(1))
    return chosen


def tradeoff_objective(index: TradeoffIndex, chosen: Sequence[int], lam: float, n: int | None = None) -> float:
    """λ·coverage + (1−λ)·dispersion of a chosen set (the quantity the greedy maximises)."""
    chosen = list(chosen)
    n = n or len(chosen)
    coverage = float(index.kernel[chosen].max(0) @ index.weights)
    pts = index.space[chosen]
    pair_sum = float(np.sqrt(_sq_dists(pts, pts)).sum() / 2)
    return lam * coverage + (1 - lam) * pair_sum * _disp_scale(n, index.bandwidth)
