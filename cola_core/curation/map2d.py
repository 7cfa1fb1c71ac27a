"""2-D maps of the activation space: an instant PCA preview and a cached UMAP layout.

UMAP (McInnes et al. 2018) runs on numba, whose threading layer aborts the process when two threads
fit at once: every UMAP call here holds one process-wide lock. numba's compile cache lives under
``cache/numba`` so a second launch does not recompile.

Speed (profiled with cProfile on 10k × 64-d, 2 cores): most of a fresh process's UMAP time was numba
compiling pynndescent's approximate nearest-neighbour search (91 of 123 s). We compute the exact k
nearest neighbours with scikit-learn instead (under a second for 10k points) and hand them to UMAP
as ``precomputed_knn``, and run 200 optimisation epochs (UMAP's own default above 10k points).

A fresh process still pays numba's compilation on its first fit (20–50 s on 2 cores): :func:`warm_up`
starts it in a background thread once per process (the dashboard calls it at start), under the same
lock as real fits. Because the neighbours are always precomputed, UMAP takes one code path at every
size (it skips its own exact < 4,096 / NN-descent ≥ 4,096 split), so a small warm-up set compiles
what a 20k-point fit runs.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from cola_core.paths import cache_root
from cola_core.storage.cache_store import cache_key, load_entry, save_entry

_UMAP_LOCK = threading.Lock()  # every UMAP fit in the process, the warm-up's included
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class MapConfig:
    n_neighbors: int = 15
    min_dist: float = 0.1
    seed: int = 0
    n_epochs: int = 200
    max_fit: int = 20_000  # larger pools: fit on a sample this size, place the rest by their neighbours


def _pca_plane(space: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pool's mean and its first two principal directions (deterministic sign; fewer when the
    pool spans fewer)."""
    x = np.asarray(space, dtype=np.float64)
    mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    comps = vt[:2]
    comps *= np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(1)])[:, None]
    return mean, comps


def pca_project(space: np.ndarray, others: np.ndarray) -> np.ndarray:
    """``others`` on the PCA map of ``space``: the pool's own mean and components, so points the map
    was not computed from (e.g. capability probes) land where the pool's would."""
    others = np.asarray(others, dtype=np.float64)
    if len(space) < 2:
        return np.zeros((len(others), 2), dtype=np.float32)
    mean, comps = _pca_plane(space)
    out = (others - mean) @ comps.T
    return np.pad(out, ((0, 0), (0, 2 - out.shape[1]))).astype(np.float32)


def pca_2d(space: np.ndarray) -> np.ndarray:
    """First two principal components (milliseconds, deterministic sign)."""
    return pca_project(space, space)


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
    xy = np.empty((len(points), 2), dtype=np.float32)
    xy[sample] = sample_xy
    rest = np.setdiff1d(np.arange(len(points)), sample)
    xy[rest] = place_outside(points[sample], sample_xy, points[rest], k)
    return xy


def place_outside(anchors: np.ndarray, anchors_xy: np.ndarray, others: np.ndarray, k: int = 15) -> np.ndarray:
    """2-D positions of points that are not on a map (e.g. capability probes, or pool points UMAP was
    not fitted on): the inverse-distance-weighted mean of the map positions of their ``k`` nearest
    ``anchors`` in the full space."""
    from sklearn.neighbors import NearestNeighbors

    others = np.asarray(others, dtype=np.float32)
    xy = np.empty((len(others), 2), dtype=np.float32)
    if len(others) == 0:
        return xy
    index = NearestNeighbors(n_neighbors=min(k, len(anchors))).fit(anchors)
    for start in range(0, len(others), 65_536):  # bounded memory for million-point pools
        chunk = slice(start, start + 65_536)
        dist, idx = index.kneighbors(others[chunk])
        w = 1.0 / (dist + 1e-6)
        xy[chunk] = (anchors_xy[idx] * w[..., None]).sum(1) / w.sum(1, keepdims=True)
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


WARM_UP_POINTS = 300  # enough for a neighbourhood; the compiled path is the same at every size (above)
_warm_thread: threading.Thread | None = None
_warm_error: BaseException | None = None
_WARM_START = threading.Lock()


def _warm(points: int, config: MapConfig) -> None:
    global _warm_error
    try:
        rng = np.random.default_rng(0)
        centres = rng.standard_normal((8, 64)) * 3  # clusters, like a real space (and 64-d float32, its types)
        _fit_umap((centres[rng.integers(0, 8, points)] + rng.standard_normal((points, 64))).astype(np.float32), config)
    except Exception as exc:  # a failed warm-up only means the first real fit compiles; say so once
        _warm_error = exc
        _LOG.warning("UMAP warm-up failed (the first map will compile instead): %s", exc)


def warm_up(points: int = WARM_UP_POINTS, config: MapConfig = MapConfig(n_epochs=10)) -> threading.Thread:
    """Import UMAP and compile its numba code in a background thread, once per process (later calls
    return the same thread), so a user's first UMAP map does not wait for the compiler. The fit runs
    through :func:`_fit_umap`, the real fits' own function and lock, so it never runs beside one."""
    global _warm_thread
    with _WARM_START:
        if _warm_thread is None:
            _warm_thread = threading.Thread(target=_warm, args=(points, config), name="umap-warm-up", daemon=True)
            _warm_thread.start()
        return _warm_thread


def warm_up_state() -> str:
    """``not started`` | ``compiling`` | ``ready`` | ``failed``: what the dashboard tells a waiting user."""
    if _warm_thread is None:
        return "not started"
    if _warm_thread.is_alive():
        return "compiling"
    return "failed" if _warm_error is not None else "ready"


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
