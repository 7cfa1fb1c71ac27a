"""Selecting calibration samples in the activation space.

Every strategy has the same shape (scikit-learn style): ``(space, n, *, seed, include, exclude,
…) -> Selection``, deterministic for a seed. ``include`` ids are always chosen first, ``exclude`` ids
never (the dashboard's lasso edits).

- ``random`` / ``stratified``: the practitioners' baselines (uniform; uniform within a corpus mix).
- ``cola``: COLA's rule (He et al., NeurIPS 2025, §5): k-means with k = n over the whole pool, take
  the sample nearest each centroid (the authors' published code clusters the whole pool too).
- ``cola-quota``: the same rule run within each corpus of the pool, k per corpus from the pool's
  shares. Global k-means places its centroids where the variance is, so a compact corpus (math on
  cola-tiny) gets fewer samples than its share of the pool: Stage 3 undoes the mix Stage 1 chose.
- ``cola-experts``: for mixture-of-experts models, COLA's clusters with each representative chosen
  among the members nearest the centroid for the expert tokens it adds (expert coverage, metrics.py).
- ``tradeoff``: one knob λ between representativeness and diversity (:mod:`cola_core.curation.tradeoff`).

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
from cola_core.curation.tradeoff import TradeoffIndex, build_tradeoff_index, lazy_greedy, with_rows
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


EXPERT_CANDIDATES = 5  # cola-experts: members nearest each centroid it chooses among


def select_cola_experts(
    space: np.ndarray,
    n: int,
    *,
    experts: np.ndarray | None = None,
    expert_floor: int = 0,
    seed: int = 0,
    include: Sequence[int] = (),
    exclude: Sequence[int] = (),
) -> Selection:
    """COLA's clusters (k-means, k = n − forced-in), but from each cluster's ``EXPERT_CANDIDATES``
    members nearest its centroid the one that brings the most still-missing expert tokens: with
    ``experts`` the (pool × layers·experts) real tokens each sample routes to each expert and the floor
    an expert's statistics need, a sample's gain is Σ_e min(floor, have_e + x_e) − min(floor, have_e)
    over what the samples chosen so far give (forced-in ones included); clusters are visited largest
    first, ties go to the member nearest the centroid. A mixture-of-experts model only."""
    if experts is None:
        raise ColaError("cola-experts needs a mixture-of-experts model (it reads which experts each sample reaches)")
    inc, allowed = _validate(space, n, include, exclude)
    idx = np.flatnonzero(allowed)
    k = n - len(inc)
    params = {"seed": seed, "candidates": EXPERT_CANDIDATES, "floor": expert_floor}
    if k == 0:
        return Selection(np.array(inc, dtype=np.int64), "cola-experts", params)
    clusters = cluster_space(space[idx], k, seed)
    shortlists = nearest_to_centers(space[idx], clusters, EXPERT_CANDIDATES)
    have = experts[inc].sum(0) if inc else np.zeros(experts.shape[1])
    picks = []
    for c in np.argsort(-clusters.sizes, kind="stable"):
        members = [int(idx[p]) for p in shortlists[c]]
        if not members:
            continue
        gains = [
            float((np.minimum(expert_floor, have + experts[m]) - np.minimum(expert_floor, have)).sum()) for m in members
        ]
        best = members[int(np.argmax(gains))]  # argmax takes the first maximum: the nearest member on ties
        picks.append(best)
        have = have + experts[best]
    return Selection(np.array([*inc, *picks], dtype=np.int64), "cola-experts", params)


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
        chosen = lazy_greedy(index, n, lam, inc, allowed)
        return Selection(np.array(chosen, dtype=np.int64), "tradeoff", {"lam": lam, "seed": seed})
    missing = sorted(set(inc) - set(index.rows.tolist()))
    if missing:
        index = with_rows(index, space, missing)
    position = {int(r): p for p, r in enumerate(index.rows)}  # type: ignore[union-attr]
    allowed_rows = allowed[index.rows]
    if n - len(inc) > int(allowed_rows.sum()):
        raise ColaError(
            f"cannot select {n} samples: the cluster-first shortlist of {len(index.rows)} has only "
            f"{int(allowed_rows.sum())} that are not excluded"
        )
    chosen = lazy_greedy(index, n, lam, [position[i] for i in inc], allowed_rows)
    return Selection(index.rows[chosen], "tradeoff", {"lam": lam, "seed": seed, "shortlist": len(index.rows)})


def apportion(n: int, weights: dict[str, float]) -> dict[str, int]:
    """n seats over groups in proportion to ``weights`` by largest remainder (Hamilton), each group
    with a positive weight getting at least one seat when n allows: every group then holds
    ⌊n·share⌋ or ⌈n·share⌉ seats, or one where its share is under one seat."""
    total = sum(w for w in weights.values() if w > 0)
    if n <= 0 or total <= 0:
        return dict.fromkeys(weights, 0)
    exact = {g: n * max(w, 0.0) / total for g, w in weights.items()}
    seats = _quotas(n, weights, dict.fromkeys(weights, n))  # largest remainder, nothing capped
    starved = sorted(g for g in weights if weights[g] > 0 and seats[g] == 0)
    if len([g for g in weights if weights[g] > 0]) <= n:
        for g in starved:  # a seat from the group served most above its exact share
            donor = max((h for h in seats if seats[h] > 1), key=lambda h: (seats[h] - exact[h], h))
            seats[donor] -= 1
            seats[g] += 1
    return seats


def select_cola_quota(
    space: np.ndarray,
    n: int,
    *,
    groups: Sequence[str],
    seed: int = 0,
    include: Sequence[int] = (),
    exclude: Sequence[int] = (),
) -> Selection:
    """COLA's rule within each corpus: corpus c gets k_c of the n samples by :func:`apportion` over the
    pool's shares (forced-in samples count toward their corpus), then k-means with k = k_c on that
    corpus's allowed samples and the sample nearest each centroid, in the same projected space.

    A corpus with fewer allowed samples than its k_c (excludes) gives what it has; the shortfall goes
    to the other corpora in proportion to their shares, and ``params["shortfall"]`` says how many
    each corpus could not give. ``params`` also holds the pool's counts and each corpus's quota."""
    inc, allowed = _validate(space, n, include, exclude)
    groups = np.asarray(groups)
    names = sorted(set(groups.tolist()))
    pool = {g: int((groups == g).sum()) for g in names}
    planned = apportion(n, pool)
    forced = {g: int((groups[inc] == g).sum()) if inc else 0 for g in names}
    avail = {g: np.flatnonzero(allowed & (groups == g)) for g in names}
    wanted = {g: max(planned[g] - forced[g], 0) for g in names}
    take = {g: min(wanted[g], len(avail[g])) for g in names}
    shortfall = {g: wanted[g] - take[g] for g in names if wanted[g] > take[g]}
    spare = n - len(inc) - sum(take.values())  # from shortfalls, or forced-in samples over a quota
    if spare > 0:
        room = {g: len(avail[g]) - take[g] for g in names}
        extra = _quotas(spare, {g: float(pool[g]) for g in names}, room)
        take = {g: take[g] + extra[g] for g in names}
    elif spare < 0:  # more forced in than planned: trim the corpora served most above their share
        for _ in range(-spare):
            g = max(
                (h for h in names if take[h] > 0), key=lambda h: (take[h] + forced[h] - n * pool[h] / len(groups), h)
            )
            take[g] -= 1
    picks = [*inc]
    for g in names:
        if take[g]:
            picks += _nearest_per_cluster(space, avail[g], take[g], seed)
    quota = {g: take[g] + forced[g] for g in names}
    params = {"seed": seed, "pool": pool, "quota": quota, "shortfall": shortfall}
    return Selection(np.array(picks, dtype=np.int64), "cola-quota", params)


def _nearest_per_cluster(space: np.ndarray, rows: np.ndarray, k: int, seed: int) -> list[int]:
    """k-means with k clusters on ``rows``; each cluster's member nearest its centroid. Should a
    cluster come out empty (duplicate points), the rows nearest any centroid fill the set to k."""
    clusters = cluster_space(space[rows], k, seed)
    reps = [int(rows[p[0]]) for p in nearest_to_centers(space[rows], clusters) if p]
    if len(reps) < k:
        d = np.linalg.norm(space[rows][:, None, :] - clusters.centers[None], axis=2).min(1)
        rest = [int(r) for r in rows[np.argsort(d, kind="stable")] if int(r) not in set(reps)]
        reps += rest[: k - len(reps)]
    return reps


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
    needs_experts: bool = False  # reads each sample's expert usage: offered for mixture-of-experts models only

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
                "cola-quota",
                select_cola_quota,
                "the paper's rule within each corpus: k per corpus from the pool's shares (largest remainder, "
                "≥ 1 each), the sample nearest each centroid, so a compact corpus keeps its share",
                inputs=("groups",),
            ),
            Strategy(
                "cola-experts",
                select_cola_experts,
                "mixture-of-experts models: the paper's clusters, but from each cluster's 5 members nearest its "
                "centroid the one that brings the most tokens to experts still below the floor",
                inputs=("experts", "expert_floor"),
                needs_experts=True,
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


def strategies_for(experts: bool) -> tuple[str, ...]:
    """The strategies a space offers: all of them for a mixture-of-experts model (``experts``), else
    those that do not read expert usage."""
    return tuple(name for name, s in REGISTRY.items() if experts or not s.needs_experts)


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
