"""2-D maps of the activation space: an instant PCA preview and a cached UMAP layout.

UMAP (McInnes et al. 2018) runs on numba, whose threading layer aborts the process when two threads
fit at once: every UMAP call here holds one process-wide lock. numba's compile cache lives under
``cache/numba`` so a second launch does not recompile.

Speed (profiled with cProfile on 10k × 64-d, 2 cores): most of a fresh process's UMAP time was numba
compiling pynndescent's approximate nearest-neighbour search (91 of 123 s). We compute the exact k
nearest neighbours with scikit-learn instead (under a second for 10k points) and hand them to UMAP
as ``precomputed_knn``, and run 200 optimisation epochs (UMAP's own default above 10k points).
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from cola_core.cache_store import cache_key, load_entry, save_entry
from cola_core.paths import cache_root

_UMAP_LOCK = threading.Lock()


@dataclass(frozen=True)
class MapConfig:
    n_neighbors: int = 15
    min_dist: float = 0.1
    seed: int = 0
    n_epochs: int = 200


def pca_2d(space: np.ndarray) -> np.ndarray:
    """First two principal components (milliseconds, deterministic sign)."""
    x = np.asarray(space, dtype=np.float64)
    x = x - x.mean(0)
    if len(x) < 2:
        return np.zeros((len(x), 2), dtype=np.float32)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    comps = vt[:2]
    comps *= np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(1)])[:, None]
    out = x @ comps.T
    return np.pad(out, ((0, 0), (0, 2 - out.shape[1]))).astype(np.float32)


def _import_umap():
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_root() / "numba"))
    import umap

    return umap


def umap_2d(space: np.ndarray, config: MapConfig = MapConfig(), space_key: str | None = None) -> np.ndarray:
    """UMAP layout, cached on disk per (space, settings) when ``space_key`` identifies the space."""
    key = cache_key(space=space_key, config=asdict(config), v=2) if space_key else None
    if key:
        hit = load_entry("maps", key)
        if hit is not None:
            return np.asarray(hit[0]["xy"])
    if len(space) < 4:  # UMAP needs a neighbourhood; tiny sets get the PCA layout
        xy = pca_2d(space)
    else:
        from sklearn.neighbors import NearestNeighbors

        umap = _import_umap()
        points = np.asarray(space, dtype=np.float32)
        k = min(config.n_neighbors, len(space) - 1)
        dist, idx = NearestNeighbors(n_neighbors=k).fit(points).kneighbors(points)  # self first, as UMAP expects
        with _UMAP_LOCK, warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)  # n_jobs with a seed; precomputed kNN notes
            reducer = umap.UMAP(n_components=2, n_neighbors=k, min_dist=config.min_dist, random_state=config.seed,
                                n_epochs=config.n_epochs, precomputed_knn=(idx, dist.astype(np.float32), None))  # fmt: skip
            xy = reducer.fit_transform(points).astype(np.float32)
    if key:
        save_entry("maps", key, {"xy": xy}, asdict(config))
    return xy
