"""COLA's activation space: per-layer L2 normalisation, concatenation, Gaussian random projection,
and k-means clusters with exemplars (He et al., NeurIPS 2025, §5: activations → random projection
→ k-means → representatives)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cola_core.errors import ColaError

if TYPE_CHECKING:  # imported where a table is made: 0.25 s off every CLI command (`compress` included)
    import pandas as pd


def _layer_order(name: str) -> tuple[str, int]:
    kind, num = re.match(r"([a-z]+)(\d+)", name).groups()  # type: ignore[union-attr]
    return kind, int(num)


def project_activations(acts: dict[str, np.ndarray], dim: int = 64, seed: int = 0) -> np.ndarray:
    """(n, dim) float32: each layer's rows L2-normalised (so every layer weighs the same), the
    layers concatenated, then projected by a Gaussian matrix with entries N(0, 1/dim)."""
    if not acts:
        raise ColaError("no activations to project")
    if dim <= 0:
        raise ColaError(f"projection dimension must be positive, got {dim}")
    parts = []
    for name in sorted(acts, key=_layer_order):
        a = np.asarray(acts[name], dtype=np.float32)
        parts.append(a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12))
    stacked = np.concatenate(parts, axis=1)
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((stacked.shape[1], dim), dtype=np.float32) / np.sqrt(dim)
    return stacked @ matrix


@dataclass(frozen=True)
class Clusters:
    labels: np.ndarray  # (n,) cluster of each point
    centers: np.ndarray  # (k, dim)

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.centers))


def cluster_space(space: np.ndarray, k: int, seed: int = 0) -> Clusters:
    """k-means (k-means++ init, 3 restarts; mini-batch above 20k points)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if not 1 <= k <= len(space):
        raise ColaError(f"cannot make {k} clusters from {len(space)} samples")
    algo = MiniBatchKMeans if len(space) > 20_000 else KMeans
    km = algo(n_clusters=k, n_init=3, random_state=seed).fit(space)
    return Clusters(km.labels_.astype(np.int64), km.cluster_centers_.astype(np.float32))


def nearest_to_centers(space: np.ndarray, clusters: Clusters, per_cluster: int = 1) -> list[list[int]]:
    """For each cluster, its members nearest the centroid (the exemplars / COLA representatives)."""
    picks = []
    for c, center in enumerate(clusters.centers):
        members = np.flatnonzero(clusters.labels == c)
        d = np.linalg.norm(space[members] - center, axis=1)
        picks.append(members[np.argsort(d, kind="stable")[:per_cluster]].tolist())
    return picks


def cluster_table(
    texts: list[str],
    corpora: list[str],
    space: np.ndarray,
    clusters: Clusters,
    per_cluster: int = 3,
    snippet: int = 160,
) -> pd.DataFrame:
    """One row per cluster: size, dominant corpus, and the exemplar texts nearest its centroid."""
    import pandas as pd

    rows = []
    for c, members in enumerate(nearest_to_centers(space, clusters, per_cluster)):
        in_cluster = [corpora[i] for i in np.flatnonzero(clusters.labels == c)]
        top = max(set(in_cluster), key=in_cluster.count) if in_cluster else ""
        rows.append(
            {
                "cluster": c,
                "size": len(in_cluster),
                "main_corpus": top,
                "exemplars": [texts[i][:snippet] for i in members],
            }
        )
    return pd.DataFrame(rows).sort_values("size", ascending=False, ignore_index=True)
