"""The ``tradeoff`` strategy's algorithm: one knob λ between representativeness and diversity.

Greedy maximisation of λ·coverage + (1−λ)·dispersion, the max-sum diversification objective of
Borodin et al. (PODS 2012): coverage is facility location of the pool, f(S) = mean_m max_{j∈S} K(m, j),
over anchor points m (a uniform sample of 1,024 pool points, or the whole pool when smaller) with a
Gaussian kernel K; dispersion is the mean pairwise distance among the chosen. Lazy evaluation:
coverage gains only shrink as S grows (submodular), so stale gains are upper bounds; dispersion gains
are kept exact for every candidate with one vectorised update per pick.

This module works on indices only; :func:`cola_core.curation.selection.select_tradeoff` validates the
request and wraps the result as a ``Selection`` (its registry entry)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TradeoffIndex:
    """What ``tradeoff`` precomputes once per pool, so every λ / n move only runs the greedy.

    Pools above ``max_candidates`` are shortlisted cluster-first: ``rows`` names the pool rows the
    greedy may pick from (``None``: all of them), while coverage is still measured on anchors drawn
    from the whole pool."""

    space: np.ndarray  # (candidates, dim)
    kernel: np.ndarray  # (candidates, anchors) K(anchor, candidate), transposed for row access per candidate
    weights: np.ndarray  # (anchors,) pool share of each anchor
    coverage0: np.ndarray  # (candidates,) each candidate's coverage gain with nothing chosen yet
    bandwidth: float  # kernel width: median distance to the (pool/share)-th nearest neighbour
    centers: np.ndarray | None = None  # (anchors, dim): to add kernel rows for forced-in samples
    rows: np.ndarray | None = None  # pool row of each candidate; None when every pool row is one


def shortlist(space: np.ndarray, size: int, seed: int = 0, clusters: int = 1024) -> np.ndarray:
    """Cluster first (mini-batch k-means), then keep about ``size`` pool rows: every cluster gets a
    share proportional to its size (at least two rows), taken at evenly spaced ranks of distance to
    its centroid — the most central member, the farthest, and the spread between — plus the
    pool's edge (the eighth of ``size`` farthest from the pool's mean, where dispersion picks first),
    so both representativeness and diversity keep their best candidates. Linear in the pool."""
    from sklearn.cluster import MiniBatchKMeans

    if len(space) <= size:
        return np.arange(len(space))
    k = min(clusters, max(1, size // 8))
    km = MiniBatchKMeans(n_clusters=k, n_init=1, random_state=seed, batch_size=4096).fit(space)
    labels = km.labels_
    dist = np.linalg.norm(space - km.cluster_centers_[labels], axis=1)
    order = np.lexsort((dist, labels))  # rows grouped by cluster, each group by distance to its centroid
    sizes = np.bincount(labels, minlength=k)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    quota = np.minimum(sizes, np.maximum(2, np.floor(sizes * (size - size // 8) / len(space)).astype(np.int64)))
    edge = np.linalg.norm(space - space.mean(0), axis=1)
    keep = [np.argpartition(-edge, size // 8)[: size // 8]]
    for start, count, q in zip(starts, sizes, quota, strict=True):
        if count:
            keep.append(order[start + np.unique(np.linspace(0, count - 1, q).round().astype(np.int64))])
    return np.unique(np.concatenate(keep))


def build_tradeoff_index(
    space: np.ndarray, anchors: int = 1024, share: int = 128, seed: int = 0, max_candidates: int = 65_536
) -> TradeoffIndex:
    space = np.ascontiguousarray(space, dtype=np.float32)
    rows = shortlist(space, max_candidates, seed) if len(space) > max_candidates else None
    rng = np.random.default_rng(seed)
    sample = space[rng.choice(len(space), size=min(len(space), 2000), replace=False)]
    d = np.sqrt(_sq_dists(sample, sample))
    # Kernel width: the distance within which a chosen sample "represents" its share of the pool,
    # i.e. the median distance to the (1/share)-th nearest neighbour. A global width (median of all
    # pairs) would make every sample cover every other a little, and coverage meaningless.
    k = int(np.clip(len(sample) // share, 1, len(sample) - 1)) if len(sample) > 1 else 0
    bandwidth = float(np.median(np.sort(d, axis=1)[:, k])) if k else 1.0
    bandwidth = bandwidth or 1.0
    # Coverage of the pool is estimated on a uniform sample of anchors (the whole pool when small).
    centers = space if len(space) <= anchors else space[np.sort(rng.choice(len(space), anchors, replace=False))]
    weights = np.full(len(centers), 1.0 / len(centers), dtype=np.float32)
    candidates = space if rows is None else space[rows]
    kernel = _kernel_rows(candidates, centers, bandwidth)
    return TradeoffIndex(
        space=candidates,
        kernel=kernel,
        weights=weights,
        bandwidth=bandwidth,
        coverage0=(kernel @ weights).astype(np.float64),
        centers=centers,
        rows=rows,
    )


def _kernel_rows(points: np.ndarray, centers: np.ndarray, bandwidth: float) -> np.ndarray:
    kernel = np.empty((len(points), len(centers)), dtype=np.float32)
    for start in range(0, len(points), 65_536):  # temporaries bounded per chunk (pools of millions)
        rows = slice(start, start + 65_536)
        kernel[rows] = np.exp(-_sq_dists(points[rows], centers) / (2 * bandwidth**2))
    return kernel


def with_rows(index: TradeoffIndex, space: np.ndarray, extra: Sequence[int]) -> TradeoffIndex:
    """A shortlisted index with pool rows (forced-in samples) added to its candidates."""
    pts = np.ascontiguousarray(space[list(extra)], dtype=np.float32)
    kernel = _kernel_rows(pts, index.centers, index.bandwidth)  # type: ignore[arg-type]
    return TradeoffIndex(
        space=np.concatenate([index.space, pts]),
        kernel=np.concatenate([index.kernel, kernel]),
        weights=index.weights,
        bandwidth=index.bandwidth,
        coverage0=np.concatenate([index.coverage0, (kernel @ index.weights).astype(np.float64)]),
        centers=index.centers,
        rows=np.concatenate([index.rows, np.asarray(extra, dtype=np.int64)]),
    )


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :], 0)


def _disp_scale(n: int, bandwidth: float) -> float:
    # Dispersion = mean pairwise distance / bandwidth: each new pair adds d / (bandwidth · pairs).
    return 1.0 / (bandwidth * max(n * (n - 1) / 2, 1))


def lazy_greedy(index: TradeoffIndex, n: int, lam: float, inc: list[int], allowed: np.ndarray) -> list[int]:
    """Exact greedy with lazy coverage gains, re-evaluated in blocks of the most promising candidates."""
    space, kernel, w = index.space, index.kernel, index.weights
    sq_norms = (space * space).sum(1)
    cur = np.zeros(kernel.shape[1], dtype=np.float32)  # best kernel value of each anchor so far
    disp = np.zeros(len(space), dtype=np.float64)  # Σ distance to the chosen, per candidate
    dscale = (1.0 - lam) * _disp_scale(n, index.bandwidth)
    cov = lam * index.coverage0 if lam > 0 else np.zeros(len(space))  # exact at S = ∅
    fresh = np.ones(len(space), dtype=bool)
    chosen: list[int] = []
    available = allowed.copy()

    def take(c: int) -> None:
        chosen.append(c)
        available[c] = False
        np.maximum(cur, kernel[c], out=cur)
        if dscale:  # at λ = 1 dispersion has no weight: skip its O(pool) update
            disp[:] += np.sqrt(np.maximum(sq_norms - 2 * (space @ space[c]) + sq_norms[c], 0))
        fresh[:] = False

    for c in inc:
        take(c)
    if not chosen and lam == 0.0:  # pure dispersion has no first gain: start from the farthest outlier
        far = np.where(available, ((space - space.mean(0)) ** 2).sum(1), -np.inf)
        take(int(np.argmax(far)))
    while len(chosen) < n:
        bound = np.where(available, cov + dscale * disp, -np.inf)
        if lam == 0.0:  # dispersion gains are exact already
            take(int(np.argmax(bound)))
            continue
        block = 32
        while True:
            k = min(block, int(available.sum()))
            top = np.argpartition(-bound, k - 1)[:k] if k < len(bound) else np.arange(len(bound))
            stale = top[~fresh[top]]
            if len(stale):  # re-evaluate the stale upper bounds of the block in one product
                cov[stale] = lam * (np.maximum(kernel[stale] - cur, 0) @ w)
                fresh[stale] = True
                bound[stale] = np.where(available[stale], cov[stale] + dscale * disp[stale], -np.inf)
            best = top[np.argmax(bound[top])]
            inside = bound[top].copy()
            bound[top] = -np.inf
            outside = bound.max()
            bound[top] = inside
            if bound[best] >= outside:  # no stale bound outside the block can beat it
                break
            block *= 2
        take(int(best))
    return chosen
