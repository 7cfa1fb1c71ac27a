"""Metrics of a selection in the activation space (He et al., NeurIPS 2025: representativeness and
diversity are what make calibration data good).

- representativeness: mean over the pool of the cosine similarity to the nearest chosen sample;
- diversity: mean and minimum pairwise Euclidean distance among the chosen;
- cluster coverage: share of the pool's k-means clusters that hold a chosen sample;
- corpus / domain mix and total tokens;
- capability coverage: representativeness measured on a capability's probe points instead of the
  pool — the cheap proxy that the evaluation validates against measured retention;
- expert coverage (mixture-of-experts models): share of experts the selection routes enough tokens to.
Cosines are taken around the pool mean, so the direction all activations share does not inflate them.
Selections from different pools are compared on :func:`probe_coverage` instead, whose centre (the
mean of every probe point) does not depend on the pool.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class SelectionMetrics:
    n: int
    representativeness: float
    diversity_mean: float
    diversity_min: float
    cluster_coverage: float
    mix: dict[str, int]
    domains: dict[str, int]
    tokens: int
    capability_coverage: dict[str, float] = field(default_factory=dict)
    expert_coverage: float | None = None  # mixture-of-experts models: see expert_coverage

    def to_dict(self) -> dict:
        return asdict(self)


def _unit(x: np.ndarray, centre: np.ndarray) -> np.ndarray:
    y = np.asarray(x, dtype=np.float32) - centre
    return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)


def coverage(points: np.ndarray, chosen: np.ndarray, centre: np.ndarray, chunk: int = 8192) -> float:
    """Mean over ``points`` of the cosine similarity (around ``centre``) to the nearest chosen point."""
    if len(points) == 0 or len(chosen) == 0:
        return float("nan")
    c = _unit(chosen, centre)
    best = [(_unit(points[s : s + chunk], centre) @ c.T).max(1) for s in range(0, len(points), chunk)]
    return float(np.concatenate(best).mean())


def probe_coverage(probes: Mapping[str, np.ndarray], chosen: np.ndarray) -> dict[str, float]:
    """Capability coverage on a scale common to every pool: cosines around the mean of all probe
    points, which are the same records whatever the pool, so coverage of sets drawn from different
    pools (a math-only set, a prose set, the full mix) can be ranked against each other."""
    if not probes:
        return {}
    centre = np.concatenate([np.asarray(p, dtype=np.float32) for p in probes.values()]).mean(0)
    return {name: coverage(p, chosen, centre) for name, p in probes.items()}


def expert_coverage(usage: np.ndarray, chosen: Sequence[int], floor: int) -> float:
    """Share of a mixture-of-experts model's experts (over all layers) to which the chosen samples'
    real tokens are routed at least ``floor`` times: the experts whose compression statistics the
    selection alone could fill (compress/experts.py falls back to every token for the others)."""
    routed = usage[np.asarray(chosen, dtype=np.int64)].sum(0)
    return float((routed >= floor).mean())


def pairwise_distances(points: np.ndarray) -> np.ndarray:
    """Distances of all unordered pairs (condensed)."""
    p = np.asarray(points, dtype=np.float64)
    sq = (p * p).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] - 2 * p @ p.T + sq[None, :], 0))
    return d[np.triu_indices(len(p), 1)]


def selection_metrics(
    space: np.ndarray,
    chosen: Sequence[int],
    *,
    corpora: Sequence[str],
    domains: Sequence[str],
    tokens: Sequence[int],
    cluster_labels: np.ndarray | None = None,
    probes: Mapping[str, np.ndarray] | None = None,
    experts: tuple[np.ndarray, int] | None = None,
) -> SelectionMetrics:
    idx = np.asarray(chosen, dtype=np.int64)
    centre = space.mean(0)
    pts = space[idx]
    pairs = pairwise_distances(pts) if len(idx) > 1 else np.zeros(1)
    if cluster_labels is not None:
        hit = len(set(cluster_labels[idx].tolist()))
        cov_clusters = hit / len(set(cluster_labels.tolist()))
    else:
        cov_clusters = float("nan")
    return SelectionMetrics(
        n=len(idx),
        representativeness=coverage(space, pts, centre),
        diversity_mean=float(pairs.mean()),
        diversity_min=float(pairs.min()),
        cluster_coverage=cov_clusters,
        mix=dict(sorted(Counter(corpora[i] for i in idx).items())),
        domains=dict(sorted(Counter(domains[i] for i in idx).items())),
        tokens=int(sum(tokens[i] for i in idx)),
        capability_coverage={name: coverage(p, pts, centre) for name, p in (probes or {}).items()},
        expert_coverage=expert_coverage(experts[0], idx, experts[1]) if experts is not None else None,
    )
