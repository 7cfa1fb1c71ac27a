import numpy as np
import pytest

from cola_core.curation.correspondence import (
    correspondence_table,
    recommend_mix,
    token_similarity,
    unigram_distribution,
)
from cola_core.errors import ColaError


def _table():
    rng = np.random.default_rng(0)
    a, b = np.array([5.0, 0, 0]), np.array([0, 5.0, 0])
    corpora = {"A": a + rng.standard_normal((30, 3)), "B": b + rng.standard_normal((30, 3))}
    probes = {"capA": a + rng.standard_normal((20, 3)), "capB": b + rng.standard_normal((20, 3))}
    ua, ub = unigram_distribution([[0, 1, 1, 2]] * 5, 8), unigram_distribution([[5, 6, 6, 7]] * 5, 8)
    return correspondence_table(corpora, probes, {"A": ua, "B": ub}, {"capA": ua, "capB": ub}, alpha=0.5)


def test_matching_domains_score_highest():
    t = _table().set_index(["corpus", "capability"])["score"]
    assert t["A", "capA"] > t["B", "capA"] and t["B", "capB"] > t["A", "capB"]
    assert t.between(0, 1).all()


def test_token_similarity_bounds():
    p = unigram_distribution([[0, 1, 2]], 16)
    assert token_similarity(p, p) == pytest.approx(1.0)
    assert token_similarity(p, unigram_distribution([[9, 10, 11] * 50], 16)) < 0.9


def test_mix_general_and_targeted():
    table = _table()
    general = recommend_mix(table, "general")
    assert general.sum() == pytest.approx(1.0) and general["A"] == pytest.approx(0.5, abs=0.05)
    targeted = recommend_mix(table, "targeted", target="capB")
    assert targeted["B"] > 0.7
    with pytest.raises(ColaError, match="target capability"):
        recommend_mix(table, "targeted", target="nope")
    with pytest.raises(ColaError, match="unknown deployment"):
        recommend_mix(table, "everything")
