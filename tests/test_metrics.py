import numpy as np
import pytest

from cola_core.curation.metrics import coverage, pairwise_distances, selection_metrics


def test_pairwise_distances_on_a_square():
    square = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=float)
    d = np.sort(pairwise_distances(square))
    np.testing.assert_allclose(d, [1, 1, 1, 1, np.sqrt(2), np.sqrt(2)])


def test_coverage_is_one_when_everything_is_chosen_and_lower_otherwise():
    pts = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=float)
    assert coverage(pts, pts, np.zeros(2)) == pytest.approx(1.0)
    # Choosing only (1,0): cosines are 1, 0, -1, 0 → mean 0.
    assert coverage(pts, pts[:1], np.zeros(2)) == pytest.approx(0.0)


def test_selection_metrics_by_hand():
    space = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=float)
    m = selection_metrics(
        space,
        [0, 2],
        corpora=["a", "a", "b", "b"],
        domains=["x", "x", "y", "y"],
        tokens=[5, 6, 7, 8],
        cluster_labels=np.array([0, 1, 2, 3]),
        probes={"east": np.array([[2.0, 0.1]])},
    )
    assert m.n == 2 and m.mix == {"a": 1, "b": 1} and m.domains == {"x": 1, "y": 1} and m.tokens == 12
    assert m.diversity_mean == pytest.approx(2.0) and m.diversity_min == pytest.approx(2.0)
    assert m.cluster_coverage == pytest.approx(0.5)
    assert m.representativeness == pytest.approx(0.5)  # cosines to nearest chosen: 1, 0, 1, 0
    assert m.capability_coverage["east"] == pytest.approx(np.cos(np.arctan2(0.1, 2.0)))
