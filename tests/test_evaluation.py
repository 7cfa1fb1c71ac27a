import math

import numpy as np
import pytest

from cola_core.evaluation.intervals import bootstrap_perplexity, wilson
from cola_core.evaluation.retention import retention
from cola_core.evaluation.suite import Score, accuracy_score, evaluate, perplexity_score
from cola_core.models.loading import load_model


def test_wilson_known_values():
    lo, hi = wilson(81, 263)  # a textbook example: 0.2553 … 0.3662
    assert lo == pytest.approx(0.2553, abs=1e-3) and hi == pytest.approx(0.3662, abs=1e-3)
    assert wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12) and wilson(10, 10)[1] == pytest.approx(1.0)
    assert wilson(0, 0) == (0.0, 1.0)


def test_perplexity_of_a_known_distribution():
    # Every token has probability 1/8 → perplexity exactly 8, and the interval collapses on it.
    nll = [math.log(8) * n for n in (10, 20, 30)]
    s = perplexity_score("lm", nll, [10, 20, 30], seed=0)
    assert s.score == pytest.approx(8.0) and s.ci_low == pytest.approx(8.0) and s.ci_high == pytest.approx(8.0)


def test_bootstrap_interval_contains_the_estimate_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = rng.uniform(1, 3, 20)
    big = rng.uniform(1, 3, 2000)
    lo_s, hi_s = bootstrap_perplexity(small * 10, [10] * 20)
    lo_b, hi_b = bootstrap_perplexity(big * 10, [10] * 2000)
    assert lo_s <= math.exp(small.mean()) <= hi_s
    assert hi_b - lo_b < hi_s - lo_s


def test_retention_direction():
    dense = accuracy_score("math", [1] * 80 + [0] * 20, [1] * 100)
    worse = accuracy_score("math", [1] * 40 + [0] * 60, [1] * 100)
    value, lo, hi = retention(dense, worse)
    assert value == pytest.approx(0.5) and lo < 0.5 < hi < 1
    d_ppl = Score("lm", "perplexity", 0, 0, 0, 3, [[20.0, 10], [20.0, 10], [20.0, 10]])
    c_ppl = Score("lm", "perplexity", 0, 0, 0, 3, [[30.0, 10], [30.0, 10], [30.0, 10]])
    value, lo, hi = retention(d_ppl, c_ppl)
    assert value == pytest.approx(math.exp(2) / math.exp(3)) and value < 1  # higher perplexity → retention below 1


def test_evaluate_on_a_tiny_model_is_deterministic(tiny_model_dir):
    loaded = load_model(tiny_model_dir("llama"))
    a = evaluate(loaded.model, loaded.tokenizer, limit=12)
    b = evaluate(loaded.model, loaded.tokenizer, limit=12)
    assert set(a) == {"lm", "code", "code_next_token", "math", "math_tier1", "math_tier2", "math_tier3", "facts"}
    for k in a:
        assert a[k].summary() == b[k].summary()
        assert a[k].ci_low <= a[k].score <= a[k].ci_high
    assert a["math"].n == 12 and a["facts"].n == 12
    assert a["lm"].score > 50  # an untrained model is close to uniform over its 300 tokens
    from cola_core.evaluation.suite import item_clusters

    assert all(len(item_clusters(k, 12)) == len(a[k].items) for k in a)  # a cluster label for every item
