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
