"""Selecting calibration samples in the activation space.

Every strategy has the same shape (scikit-learn style): ``(space, n, *, seed, include, exclude,
…) -> Selection``, deterministic for a seed. ``include`` ids are always chosen first, ``exclude`` ids
never (the dashboard's lasso edits).

- ``random`` / ``stratified``: the practitioners' baselines (uniform; uniform within a corpus mix).
- ``cola``: COLA's rule (He et al., NeurIPS 2025, §5): k-means with k = n, take the sample nearest
  each centroid.
- ``tradeoff``: one knob λ between representativeness and diversity. Greedy maximisation of
  λ·coverage + (1−λ)·dispersion, the max-sum diversification objective of Borodin et al. (PODS 2012):
  coverage is facility location of the pool, f(S) = mean_m max_{j∈S} K(m, j), over anchor points m
  (a uniform sample of 1,024 pool points, or the whole pool when smaller) with a Gaussian kernel K; dispersion is the mean pairwise distance among the chosen. Lazy evaluation:
  coverage gains only shrink as S grows (submodular), so stale gains are upper bounds; dispersion
  gains are kept exact for every candidate with one vectorised update per pick.

Each strategy is one entry of ``REGISTRY`` (:class:`Strategy`: its function, the settings it reads,
its traits, one line); ``select`` dispatches through it and callers read traits, never names. A new
strategy is a function of the shape above and one entry (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from cola_core.curation.space import cluster_space, nearest_to_centers
from cola_core.errors import ColaError


@dataclass(frozen=True)
class Selection:
    indices: np.ndarray  # chosen rows of the pool, in pick order
    strategy: str
    params: dict = field(default_factory=dict)


def _validate(
    space: np.ndarray, n: int, include: Sequence[int], exclude: Sequence[int]
) -> tuple[list[int], np.ndarray]:
    pool = len(space)
    if n <= 0:
        raise ColaError(f"the number of samples to select must be positive, got {n}")
    bad = [i for i in (*include, *exclude) if not 0 <= i < pool]
    if bad:
        raise ColaError(f"sample index {bad[0]} is outside the pool of {pool} samples")
    inc = list(dict.fromkeys(int(i) for i in include))
    allowed = np.ones(pool, dtype=bool)
    allowed[list(exclude)] = False
    if set(inc) & set(int(i) for i in exclude):
        raise ColaError("a sample cannot be both included and excluded")
    if n > int(allowed.sum()):  # forced-in samples are still counted in `allowed` here
        raise ColaError(f"cannot select {n} samples: the pool has only {int(allowed.sum())} that are not excluded")
    if len(inc) > n:
        raise ColaError(f"{len(inc)} samples are forced in but only {n} are to be selected")
    allowed[inc] = False
    return inc, allowed


def select_random(
    space: np.ndarray, n: int, *, seed: int = 0, include: Sequence[int] = (), exclude: Sequence[int] = ()
) -> Selection:
    inc, allowed = _validate(space, n, include, exclude)
    rng = np.random.default_rng(seed)
    rest = rng.choice(np.flatnonzero(allowed), size=n - len(inc), replace=False)
    return Selection(np.array([*inc, *rest], dtype=np.int64), "random", {"seed": seed})


def select_stratified(
    space: np.ndarray,
    n: int,
    *,
    groups: Sequence[str],
    mix: dict[str, float] | None = None,
    seed: int = 0,
    include: Sequence[int] = (),
    exclude: Sequence[int] = (),
) -> Selection:
    """Uniform within each group (corpus); group quotas from ``mix`` (default: equal), by largest
    remainder, capped at what each group has, with the shortfall handed to the others."""
    inc, allowed = _validate(space, n, include, exclude)
    groups = np.asarray(groups)
    names = sorted(set(groups.tolist()))
    mix = mix or {g: 1.0 for g in names}
    unknown = set(mix) - set(names)
    if unknown:
        raise ColaError(f"mix names corpora not in the pool: {', '.join(sorted(unknown))}")
    avail = {g: np.flatnonzero(allowed & (groups == g)) for g in names}
    quotas = _quotas(n - len(inc), {g: mix.get(g, 0.0) for g in names}, {g: len(a) for g, a in avail.items()})
    rng = np.random.default_rng(seed)
    picks = [*inc]
    for g in names:
        picks += rng.choice(avail[g], size=quotas[g], replace=False).tolist()
    return Selection(np.array(picks, dtype=np.int64), "stratified", {"seed": seed, "mix": mix})


def _quotas(total: int, weights: dict[str, float], caps: dict[str, int]) -> dict[str, int]:
    quotas = dict.fromkeys(weights, 0)
    remaining = total
    active = {g for g, w in weights.items() if w > 0 and caps[g] > 0}
    while remaining > 0 and active:
        wsum = sum(weights[g] for g in active)
        share = {g: remaining * weights[g] / wsum for g in active}
        floor = {g: min(int(share[g]), caps[g] - quotas[g]) for g in active}
        order = sorted(active, key=lambda g: (-(share[g] - int(share[g])), g))
        extra = remaining - sum(floor.values())
        for g in order:
            if extra <= 0:
                break
            if quotas[g] + floor[g] < caps[g]:
                floor[g] += 1
                extra -= 1
        for g in active:
            quotas[g] += floor[g]
        remaining = total - sum(quotas.values())
        active = {g for g in active if quotas[g] < caps[g]}
    return quotas


def select_cola(
    space: np.ndarray, n: int, *, seed: int = 0, include: Sequence[int] = (), exclude: Sequence[int] = ()
) -> Selection:
    """k-means with k = (n − forced-in) on the allowed pool; the sample nearest each centroid."""
    inc, allowed = _validate(space, n, include, exclude)
    idx = np.flatnonzero(allowed)
    k = n - len(inc)
    if k == 0:
        return Selection(np.array(inc, dtype=np.int64), "cola", {"seed": seed})
    clusters = cluster_space(space[idx], k, seed)
    reps = [idx[p[0]] for p in nearest_to_centers(space[idx], clusters) if p]
    return Selection(np.array([*inc, *reps], dtype=np.int64), "cola", {"seed": seed})


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


def _with_rows(index: TradeoffIndex, space: np.ndarray, extra: Sequence[int]) -> TradeoffIndex:
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


def select_tradeoff(
    space: np.ndarray,
    n: int,
    *,
    lam: float = 0.5,
    seed: int = 0,
    include: Sequence[int] = (),
    exclude: Sequence[int] = (),
    index: TradeoffIndex | None = None,
) -> Selection:
    """Lazy greedy on λ·coverage + (1−λ)·dispersion; λ=1 pure representativeness, λ=0 pure diversity."""
    if not 0.0 <= lam <= 1.0:
        raise ColaError(f"λ (lam) must lie in [0, 1], got {lam}")
    inc, allowed = _validate(space, n, include, exclude)
    index = index or build_tradeoff_index(space, seed=seed)
    if index.rows is None:
        chosen = _lazy_greedy(index, n, lam, inc, allowed)
        return Selection(np.array(chosen, dtype=np.int64), "tradeoff", {"lam": lam, "seed": seed})
    missing = sorted(set(inc) - set(index.rows.tolist()))
    if missing:
        index = _with_rows(index, space, missing)
    position = {int(r): p for p, r in enumerate(index.rows)}  # type: ignore[union-attr]
    allowed_rows = allowed[index.rows]
    if n - len(inc) > int(allowed_rows.sum()):
        raise ColaError(
            f"cannot select {n} samples: the cluster-first shortlist of {len(index.rows)} has only "
            f"{int(allowed_rows.sum())} that are not excluded"
        )
    chosen = _lazy_greedy(index, n, lam, [position[i] for i in inc], allowed_rows)
    return Selection(index.rows[chosen], "tradeoff", {"lam": lam, "seed": seed, "shortlist": len(index.rows)})


def _disp_scale(n: int, bandwidth: float) -> float:
    # Dispersion = mean pairwise distance / bandwidth: each new pair adds d / (bandwidth · pairs).
    return 1.0 / (bandwidth * max(n * (n - 1) / 2, 1))


def _lazy_greedy(index: TradeoffIndex, n: int, lam: float, inc: list[int], allowed: np.ndarray) -> list[int]:
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


@dataclass(frozen=True)
class Strategy:
    """One selection strategy: its function and the traits callers read instead of comparing names."""

    name: str
    select: Callable[..., Selection]  # (space, n, *, seed, include, exclude, **knobs, **inputs) → Selection
    description: str  # one line, with the paper where there is one (docs/method.md's table agrees)
    knobs: tuple[str, ...] = ()  # the CurateConfig settings it reads besides n and seed (e.g. "lam")
    inputs: tuple[str, ...] = ()  # other keywords it takes: the pool's groups, a precomputed index
    # The dashboard's lasso edits applied to its sets: the random baseline stays a uniform draw, so
    # forced-in samples are left out of it (``select_random`` still accepts ``include`` when given).
    honours_includes: bool = True
    honours_excludes: bool = True
    baseline: bool = False  # the reference the others are measured against ("vs random")

    def edits(self, include: Sequence[int], exclude: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The (include, exclude) edits that apply to this strategy's sets."""
        return (tuple(include) if self.honours_includes else (), tuple(exclude) if self.honours_excludes else ())


REGISTRY: Mapping[str, Strategy] = MappingProxyType(
    {
        s.name: s
        for s in (
            Strategy(
                "random",
                select_random,
                "uniform from the pool (the practitioners' baseline)",
                honours_includes=False,
                baseline=True,
            ),
            Strategy(
                "stratified",
                select_stratified,
                "uniform within each corpus, equal shares (largest remainder, capped by what a corpus has)",
                inputs=("groups", "mix"),
            ),
            Strategy(
                "cola",
                select_cola,
                "the paper's rule: k-means with k = n in the projected space, the sample nearest each centroid "
                "(He et al., NeurIPS 2025, §5)",
            ),
            Strategy(
                "tradeoff",
                select_tradeoff,
                "greedy max of λ·coverage + (1−λ)·dispersion (max-sum diversification, Borodin et al., PODS 2012)",
                knobs=("lam",),
                inputs=("index",),
            ),
        )
    }
)
STRATEGIES = tuple(REGISTRY)  # the names, in the registry's order
BASELINE = next(s.name for s in REGISTRY.values() if s.baseline)


def selection_strategy(name: str) -> Strategy:
    """The registry entry called ``name``; a ColaError naming the choices if there is none."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ColaError(f"unknown strategy '{name}': choose one of {', '.join(REGISTRY)}") from None


def select(space: np.ndarray, n: int, strategy: str, **kwargs) -> Selection:
    """Dispatch by name through ``REGISTRY``; of ``kwargs`` each strategy gets the common ``seed``,
    ``include`` and ``exclude`` and its own knobs and inputs (``lam``, ``groups``/``mix``, ``index``)."""
    entry = selection_strategy(strategy)
    return entry.select(space, n, **_only(kwargs, "seed", "include", "exclude", *entry.knobs, *entry.inputs))


def _only(kwargs: dict, *names: str) -> dict:
    return {k: v for k, v in kwargs.items() if k in names and v is not None}
