import numpy as np

from cola_core.curation import map2d as map2d
from cola_core.storage.cache_store import load_entry


def test_pca_preview_separates_blobs():
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.standard_normal((40, 10)), rng.standard_normal((40, 10)) + 8])
    xy = map2d.pca_2d(pts)
    assert xy.shape == (80, 2)
    assert abs(xy[:40, 0].mean() - xy[40:, 0].mean()) > 5


def test_umap_is_cached_per_space_and_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.standard_normal((60, 8)), rng.standard_normal((60, 8)) + 6]).astype(np.float32)
    cfg = map2d.MapConfig(n_neighbors=10, seed=0)
    xy = map2d.umap_2d(pts, cfg, space_key="space-1")
    assert xy.shape == (120, 2) and np.isfinite(xy).all()
    # two blobs stay apart on the map
    gap = np.linalg.norm(xy[:60].mean(0) - xy[60:].mean(0))
    assert gap > 3 * max(xy[:60].std(0).mean(), xy[60:].std(0).mean())
    assert len(list((tmp_path / "maps").iterdir())) == 1
    entry = next((tmp_path / "maps").iterdir()).name
    np.testing.assert_array_equal(load_entry("maps", entry)[0]["xy"], xy)
    np.testing.assert_array_equal(map2d.umap_2d(pts, cfg, space_key="space-1"), xy)


def test_large_pools_fit_on_a_sample_and_place_the_rest(tmp_path, monkeypatch):
    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(0)
    centres = np.array([[0.0] * 8, [12.0] * 8, [-12.0] * 8])
    labels = rng.integers(0, 3, 1500)
    pts = (centres[labels] + rng.standard_normal((1500, 8))).astype(np.float32)
    xy = map2d.umap_2d(pts, map2d.MapConfig(seed=0, max_fit=300))
    assert xy.shape == (1500, 2) and np.isfinite(xy).all()
    means = np.array([xy[labels == c].mean(0) for c in range(3)])
    spread = max(xy[labels == c].std(0).mean() for c in range(3))
    gaps = [np.linalg.norm(means[a] - means[b]) for a in range(3) for b in range(a + 1, 3)]
    assert min(gaps) > 3 * spread  # placed points land with their own blob
    sample = np.sort(np.random.default_rng(0).choice(1500, 300, replace=False))
    placed = map2d.place_by_neighbours(pts, sample, xy[sample], 15)
    np.testing.assert_allclose(placed, xy, rtol=1e-5, atol=1e-5)  # deterministic, sample positions kept


def test_density_grid_counts_every_point():
    from cola_core.curation.map2d import density_grid

    rng = np.random.default_rng(0)
    xy = np.concatenate([rng.normal(0, 1, (5000, 2)), rng.normal(8, 0.5, (1000, 2))])
    d = density_grid(xy, bins=32)
    assert d.counts.shape == (32, 32) and d.counts.sum() == 6000
    # The dense blob's cell holds more than an empty cell between the blobs.
    peak = d.counts[np.abs(d.y - 8).argmin(), np.abs(d.x - 8).argmin()]
    gap = d.counts[np.abs(d.y - 4.5).argmin(), np.abs(d.x - 4.5).argmin()]
    assert peak > 50 and gap < peak / 10


def test_probes_land_on_the_pool_map_by_its_own_rule():
    rng = np.random.default_rng(0)
    pool = np.concatenate([rng.standard_normal((50, 8)), rng.standard_normal((50, 8)) + 6]).astype(np.float32)
    np.testing.assert_allclose(map2d.pca_project(pool, pool), map2d.pca_2d(pool))  # the same linear map
    probes = np.stack([pool[:50].mean(0), pool[50:].mean(0)])  # one probe at each blob's centre
    on_pca = map2d.pca_project(pool, probes)
    preview = map2d.pca_2d(pool)
    np.testing.assert_allclose(on_pca, [preview[:50].mean(0), preview[50:].mean(0)], atol=1e-4)
    layout = np.concatenate([np.zeros((50, 2)), np.full((50, 2), 10.0)]).astype(np.float32)  # any 2-D map
    placed = map2d.place_outside(pool, layout, probes)
    np.testing.assert_allclose(placed, [[0, 0], [10, 10]], atol=1e-4)  # among its nearest pool points
    assert map2d.place_outside(pool, layout, np.zeros((0, 8))).shape == (0, 2)


def _fake_umap(monkeypatch, fit):
    from types import SimpleNamespace

    made: list[dict] = []

    class FakeUMAP:
        def __init__(self, **kwargs):
            made.append(kwargs)

        def fit_transform(self, points):
            return fit(points)

    monkeypatch.setattr(map2d, "_import_umap", lambda: SimpleNamespace(UMAP=FakeUMAP))
    monkeypatch.setattr(map2d, "_warm_thread", None)
    monkeypatch.setattr(map2d, "_warm_error", None)
    return made


def test_warm_up_runs_once_in_the_background_under_the_umap_lock(monkeypatch):
    import threading

    release, held = threading.Event(), []

    def fit(points):
        held.append(map2d._UMAP_LOCK.locked())
        if len(held) == 1:  # the warm-up's fit: stays busy until released
            release.wait(30)
        return np.zeros((len(points), 2), dtype=np.float32)

    made = _fake_umap(monkeypatch, fit)
    assert map2d.warm_up_state() == "not started"
    callers = [threading.Thread(target=map2d.warm_up) for _ in range(4)]
    for c in callers:
        c.start()
    thread = map2d.warm_up()
    for c in callers:
        c.join()
    while not held:
        thread.join(0.01)
    assert map2d.warm_up_state() == "compiling" and map2d._UMAP_LOCK.locked()
    real = threading.Thread(target=map2d._fit_umap, args=(np.ones((50, 64), np.float32), map2d.MapConfig()))
    real.start()
    real.join(0.5)
    assert real.is_alive() and len(held) == 1  # a real fit waits for the warm-up's lock
    release.set()
    thread.join(10)
    real.join(10)
    assert held == [True, True] and map2d.warm_up_state() == "ready"
    assert map2d.warm_up() is thread and len(made) == 2  # one warm-up fit per process, never restarted
    assert made[0]["precomputed_knn"][0].shape == (map2d.WARM_UP_POINTS, 15)  # the real fits' code path


def test_a_failed_warm_up_is_reported_not_raised(monkeypatch):
    def fit(points):
        raise RuntimeError("no compiler")

    _fake_umap(monkeypatch, fit)
    map2d.warm_up().join(10)
    assert map2d.warm_up_state() == "failed"
