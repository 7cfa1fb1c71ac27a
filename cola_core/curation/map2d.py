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

from cola_core.paths import cache_root
from cola_core.storage.cache_store import cache_key, load_entry, save_entry

_UMAP_LOCK = threading.Lock()


@dataclass(frozen=True)
class MapConfig:
    n_neighbors: int = 15
    min_dist: float = 0.1
    seed: int = 0
    n_epochs: int = 200
    max_fit: int = 20_000  # larger pools: fit on a sample this size, place the rest by their neighbours


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


def _fit_umap(points: np.ndarray, config: MapConfig) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    umap = _import_umap()
    k = min(config.n_neighbors, len(points) - 1)
    dist, idx = NearestNeighbors(n_neighbors=k).fit(points).kneighbors(points)  # self first, as UMAP expects
    with _UMAP_LOCK, warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)  # n_jobs with a seed; precomputed kNN notes
        reducer = umap.UMAP(
            n_components=2,
            n_neighbors=k,
            min_dist=config.min_dist,
            random_state=config.seed,
            n_epochs=config.n_epochs,
            precomputed_knn=(idx, dist.astype(np.float32), None),
        )
        return reducer.fit_transform(points).astype(np.float32)


def place_by_neighbours(points: np.ndarray, sample: np.ndarray, sample_xy: np.ndarray, k: int = 15) -> np.ndarray:
    """2-D positions for every point: the sample keeps its fitted layout; every other point goes to the
    inverse-distance-weighted mean of its k nearest sample points (in the full space). Linear in the
    pool for a fixed sample, where fitting UMAP on everything is not. UMAP's ``transform`` starts
    from the same weighted mean and refines it, but needs UMAP's own neighbour index (a slower fit);
    ``bench/placement.py`` measured it 6× slower at 100k points for the same neighbourhoods kept."""
    from sklearn.neighbors import NearestNeighbors

    xy = np.empty((len(points), 2), dtype=np.float32)
    xy[sample] = sample_xy
    rest = np.setdiff1d(np.arange(len(points)), sample)
    index = NearestNeighbors(n_neighbors=min(k, len(sample))).fit(points[sample])
    for start in range(0, len(rest), 65_536):  # bounded memory for million-point pools
        chunk = rest[start : start + 65_536]
        dist, idx = index.kneighbors(points[chunk])
        w = 1.0 / (dist + 1e-6)
        xy[chunk] = (sample_xy[idx] * w[..., None]).sum(1) / w.sum(1, keepdims=True)
    return xy


def umap_2d(space: np.ndarray, config: MapConfig = MapConfig(), space_key: str | None = None) -> np.ndarray:
    """UMAP layout, cached on disk per (space, settings) when ``space_key`` identifies the space."""
    key = cache_key(space=space_key, config=asdict(config), v=2) if space_key else None
    if key:
        hit = load_entry("maps", key)
        if hit is not None:
            return np.asarray(hit[0]["xy"])
    points = np.asarray(space, dtype=np.float32)
    if len(points) < 4:  # UMAP needs a neighbourhood; tiny sets get the PCA layout
        xy = pca_2d(points)
    elif len(points) <= config.max_fit:
        xy = _fit_umap(points, config)
    else:
        sample = np.sort(np.random.default_rng(config.seed).choice(len(points), config.max_fit, replace=False))
        xy = place_by_neighbours(points, sample, _fit_umap(points[sample], config), config.n_neighbors)
    if key:
        save_entry("maps", key, {"xy": xy}, asdict(config))
    return xy


@dataclass(frozen=True)
class Density:
    """A 2-D histogram of map positions: what the dashboard draws when points are too many to draw."""

    counts: np.ndarray  # (bins_y, bins_x)
    x: np.ndarray  # bin centres
    y: np.ndarray


def density_grid(xy: np.ndarray, bins: int = 96) -> Density:
    """Counts of every point on a ``bins × bins`` grid over the map (linear in the points; the browser
    gets ``bins²`` numbers instead of a million markers)."""
    counts, xe, ye = np.histogram2d(xy[:, 0], xy[:, 1], bins=bins)
    return Density(counts.T, (xe[:-1] + xe[1:]) / 2, (ye[:-1] + ye[1:]) / 2)
