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


def _zipf_stream(rng, ranks_to_ids, n_tokens, a=1.1):
    ranks = rng.zipf(a, size=n_tokens)
    ranks = ranks[ranks <= len(ranks_to_ids)] - 1
    return ranks_to_ids[ranks]


def test_token_similarity_discriminates_on_a_real_size_vocabulary():
    """Two Zipf streams over a 128,256-token vocabulary (Llama-3's size): sharing no token they score
    near 0, drawn from the same distribution near 1, and a half-shared vocabulary in between."""
    vocab = 128_256
    rng = np.random.default_rng(0)
    perm = rng.permutation(vocab)
    a_ids, b_ids = perm[: vocab // 2], perm[vocab // 2 :]
    half = np.concatenate([a_ids[: vocab // 4], b_ids[: vocab // 4]])
    rng.shuffle(half)

    def dist(ids):
        return unigram_distribution([_zipf_stream(rng, ids, 50_000)], vocab)

    same_a, same_b = dist(a_ids), dist(a_ids)
    disjoint = token_similarity(same_a, dist(b_ids))
    identical = token_similarity(same_a, same_b)
    partial = token_similarity(same_a, dist(half))
    # two samples of one distribution differ in the long tail: 0.83 measured here; disjoint: 0.0
    assert disjoint < 0.05 and identical > 0.75 and disjoint < partial < identical
