"""The experiment's statistics against reference values, simulations and hand-worked cases
(evaluation/significance.py) and the hierarchical bootstrap of retention (evaluation/retention.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from cola_core.evaluation.retention import bootstrap_seeds_and_items, retention
from cola_core.evaluation.significance import (
    holm,
    min_detectable_effect,
    paired_t,
    spearman_bootstrap_ci,
    spearman_permutation,
    t_critical,
    verdict,
)
from cola_core.evaluation.suite import Score


def test_t_critical_values_are_exact_for_any_seed_count():
    assert t_critical(2) == pytest.approx(4.303, abs=5e-4) and t_critical(10) == pytest.approx(2.228, abs=5e-4)
    assert t_critical(30) == pytest.approx(2.042, abs=5e-4) and math.isnan(t_critical(0))
    assert t_critical(10) / 1.96 > 1.13  # the old table's 1.96 fallback at 11 seeds was 12% too narrow


def test_paired_t_matches_scipy_and_handles_zero_variance():
    d = [0.03, 0.01, 0.04, 0.02, 0.05]
    t = paired_t(d)
    ref = stats.ttest_1samp(d, 0.0)
    assert t.p == pytest.approx(ref.pvalue) and t.mean == pytest.approx(0.03)
    half = t_critical(4) * np.std(d, ddof=1) / math.sqrt(5)
    assert (t.ci_low, t.ci_high) == pytest.approx((0.03 - half, 0.03 + half))
    same = paired_t([0.02, 0.02, 0.02])
    assert (same.ci_low, same.ci_high, same.p, same.sd) == (0.02, 0.02, 0.0, 0.0) and "identical" in same.note
    assert verdict(same.mean, same.p) == "supported" and verdict(-0.02, 0.0) == "contradicted"
    zero = paired_t([0.0, 0.0, 0.0])
    assert zero.p == 1.0 and verdict(zero.mean, zero.p) == "inconclusive"
    one = paired_t([0.5])
    assert math.isnan(one.p) and one.note == "one seed: no test" and verdict(one.mean, one.p) == "inconclusive"


def test_holm_step_down():
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → monotone 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.01, math.nan, 0.02])  # untested claims stay NaN and do not count in m
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)
    assert holm([0.9, 0.8]) == [1.0, 1.0] and holm([]) == []  # 0.8·2 capped at 1, then monotone
    ps = [0.011, 0.03, 0.3]
    verdicts = [verdict(+0.1, p) for p in holm(ps)]
    assert [verdict(+0.1, p) for p in ps] == ["supported", "supported", "inconclusive"]
    assert verdicts == ["supported", "inconclusive", "inconclusive"]  # 0.011·3 = 0.033 ≤ α; 0.03·2 = 0.06 > α


def test_min_detectable_effect_has_the_stated_power():
    assert min_detectable_effect(1.0, 10) == pytest.approx(0.996, abs=2e-3)  # G*Power: dz = 0.996 at n = 10
    assert min_detectable_effect(1.0, 100) == pytest.approx(0.283, abs=2e-3)
    assert min_detectable_effect(0.02, 5, alpha=0.005) > min_detectable_effect(0.02, 5)
    assert math.isnan(min_detectable_effect(0.0, 5)) and math.isnan(min_detectable_effect(0.1, 1))
    rng = np.random.default_rng(0)
    n, sd = 6, 0.03
    delta = min_detectable_effect(sd, n)
    samples = rng.normal(delta, sd, size=(20000, n))
    p = stats.ttest_1samp(samples, 0.0, axis=1).pvalue
    assert np.mean(p < 0.05) == pytest.approx(0.80, abs=0.015)


def test_spearman_permutation_exact_and_monte_carlo():
    rho, p, how = spearman_permutation([1, 2, 3, 4], [10, 20, 30, 40])
    assert rho == pytest.approx(1.0) and p == pytest.approx(2 / 24) and how == "exact, all 24 permutations"
    rng = np.random.default_rng(1)
    x = rng.normal(size=12)
    y = x + rng.normal(scale=1.5, size=12)
    rho, p, how = spearman_permutation(x, y, seed=0)
    assert rho == pytest.approx(stats.spearmanr(x, y).statistic) and how.startswith("Monte Carlo, 10,000")
    ref = stats.permutation_test(
        (x, y),
        lambda a, b: stats.spearmanr(a, b).statistic,
        permutation_type="pairings",
        n_resamples=20000,
        rng=np.random.default_rng(2),
    )
    assert p == pytest.approx(ref.pvalue, abs=0.02)
    assert math.isnan(spearman_permutation([1, 2, 3], [5, 5, 5])[0])
    assert math.isnan(spearman_permutation([1, 2], [1, 2])[1])


def test_spearman_bootstrap_interval():
    rng = np.random.default_rng(3)
    x = rng.normal(size=30)
    y = x + rng.normal(scale=0.8, size=30)
    lo, hi = spearman_bootstrap_ci(x, y)
    assert lo < stats.spearmanr(x, y).statistic < hi and lo > 0 and hi - lo < 0.6
    assert all(math.isnan(v) for v in spearman_bootstrap_ci([1, 2, 3, 4], [1, 2, 4, 3]))


def _acc(name: str, hits) -> Score:
    hits = list(hits)
    return Score(name, "accuracy", float(np.mean(hits)), 0, 1, len(hits), [[h, 1] for h in hits])


def _ppl(nll, tokens) -> Score:
    items = [[float(a), int(b)] for a, b in zip(nll, tokens, strict=True)]
    return Score("lm", "perplexity", math.exp(sum(nll) / sum(tokens)), 0, 0, len(items), items)


def test_bootstrap_point_is_the_mean_retention_over_seeds():
    rng = np.random.default_rng(0)
    tokens = rng.integers(20, 60, size=40)
    dense = _ppl(tokens * 2.0, tokens)
    seeds = [_ppl(tokens * (2.2 + 0.05 * s) + rng.normal(0, 3, 40), tokens) for s in range(4)]
    point, reps = bootstrap_seeds_and_items(dense, [seeds], rounds=500)
    assert point[0] == pytest.approx(np.mean([retention(dense, s)[0] for s in seeds]))
    lo, hi = np.percentile(reps[:, 0], [2.5, 97.5])
    assert lo < point[0] < hi and reps.shape == (500, 1)


def test_shared_items_carry_the_item_variance_that_nested_draws_average_away():
    """Every seed scored on the same items with no seed-to-seed change: the spread is all item
    sampling, which does not shrink with more seeds when the items are shared (crossed design)."""
    rng = np.random.default_rng(1)
    dense = _acc("math", np.ones(200))
    hits = rng.random(200) < 0.6
    arm = [_acc("math", hits)] * 8
    _, shared = bootstrap_seeds_and_items(dense, [arm], rounds=2000, items="shared")
    _, nested = bootstrap_seeds_and_items(dense, [arm], rounds=2000, items="per_seed")
    one_seed = retention(dense, arm[0], rounds=2000)
    assert np.std(shared) == pytest.approx((one_seed[2] - one_seed[1]) / 3.92, rel=0.15)
    assert np.std(nested) < 0.5 * np.std(shared)  # ≈ 1/√8 of it


def test_cluster_bootstrap_widens_the_interval_of_correlated_items():
    """Issue #29: 20 towns × 5 questions where a town is known or not as a whole: resampling questions
    as if independent understates the spread by about √5; resampling towns does not."""
    rng = np.random.default_rng(2)
    known = rng.random(20) < 0.6
    hits = np.repeat(known, 5)
    towns = [f"town{i}" for i in range(20) for _ in range(5)]
    dense, arm = _acc("facts", np.ones(100)), [_acc("facts", hits)] * 4
    _, items = bootstrap_seeds_and_items(dense, [arm], rounds=3000)
    _, clustered = bootstrap_seeds_and_items(dense, [arm], rounds=3000, clusters=towns)
    assert np.std(clustered) == pytest.approx(np.sqrt(5) * np.std(items), rel=0.2)
    one = bootstrap_seeds_and_items(dense, [arm], rounds=50, clusters=["all"] * 100)[1]
    assert np.all(one == hits.mean())  # one cluster: no item variance left
    singletons = bootstrap_seeds_and_items(dense, [arm], rounds=3000, clusters=[str(i) for i in range(100)])[1]
    assert np.std(singletons) == pytest.approx(np.std(items), rel=0.1)  # one item per cluster: the item bootstrap
    with pytest.raises(Exception, match="one label per item"):
        bootstrap_seeds_and_items(dense, [arm], clusters=towns[:10])


def test_item_clusters_follow_the_evaluated_items():
    from cola_core.corpora import load_records
    from cola_core.evaluation.suite import item_clusters

    assert item_clusters("facts", 10) == [r.meta["town"] for r in load_records("facts", "heldout", limit=10)]
    assert len(set(item_clusters("facts", 200))) == 40  # 40 evaluated towns, five questions each
    math = item_clusters("math", 60)
    assert len(math) == 60 and set(math) <= {f"tier1:{f}" for f in ("gets", "gives away", "in a box", "on a table")} | {
        "tier2",
        "tier3",
    }
    assert len(item_clusters("math_tier2", 60)) == 20 and set(item_clusters("math_tier2", 60)) == {"tier2"}
    assert item_clusters("code_next_token", 30) == item_clusters("code", 30) and len(set(item_clusters("lm", 300))) > 10


def test_paired_arms_and_zero_variance():
    dense = _acc("math", [1] * 10)
    same = [_acc("math", [1] * 5 + [0] * 5)] * 3
    point, reps = bootstrap_seeds_and_items(dense, [same, same], rounds=300)
    assert np.all(reps[:, 0] == reps[:, 1]) and point.tolist() == [0.5, 0.5]
    flat = [_acc("math", [1] * 10)] * 3
    point, reps = bootstrap_seeds_and_items(dense, [flat], rounds=300)
    assert np.all(reps == 1.0) and point[0] == 1.0
    with pytest.raises(Exception, match="different items"):
        bootstrap_seeds_and_items(dense, [[_acc("math", [1] * 4)]])


def test_bootstrap_p_is_two_sided_with_the_plus_one_correction():
    from cola_core.evaluation.significance import bootstrap_p

    assert bootstrap_p(np.full(999, 0.1)) == 2 / 1000  # every replicate above 0: the smallest p possible
    assert bootstrap_p(np.linspace(-1, 1, 1001)) == 1.0
    tilted = np.r_[np.full(50, -0.1), np.full(950, 0.1)]
    assert abs(bootstrap_p(tilted) - 2 * 51 / 1001) < 1e-12
    assert bootstrap_p([]) != bootstrap_p([])  # NaN: nothing to test


def test_a_verdict_must_survive_item_sampling_too():
    assert verdict(0.02, 0.001) == "supported" and verdict(-0.02, 0.001) == "contradicted"
    assert verdict(0.02, 0.001, interval=(0.005, 0.03)) == "supported"
    assert verdict(0.02, 0.001, interval=(-0.001, 0.03)) == "inconclusive"  # the bootstrap interval holds 0
    assert verdict(-0.02, 0.001, interval=(-0.03, -0.01)) == "contradicted"
    assert verdict(0.02, 0.001, interval=(-0.03, -0.01)) == "inconclusive"  # sides disagree
    assert verdict(0.02, 0.2, interval=(0.01, 0.03)) == "inconclusive"  # not Holm-significant over seeds


def test_components_t_sums_corrected_components_on_satterthwaite_df():
    """Issue #29's one rule: each variance component from a bootstrap of its own level, corrected by
    n / (n − 1); se the root of their sum, p and interval on Student's t with the Welch–Satterthwaite
    degrees of freedom, so the two agree; the detectable difference has the stated power."""
    from cola_core.evaluation.significance import bootstrap_p, component_variance, components_t

    rng = np.random.default_rng(1)
    seeds = rng.normal(0.0, 0.01, 4000)  # replicates resampling 10 seeds
    items = rng.normal(0.0, 0.01, 4000)  # replicates resampling 6 item clusters
    v_s, df_s = component_variance(seeds, 10)
    v_i, df_i = component_variance(items, 6)
    assert v_s == pytest.approx(seeds.var(ddof=1) * 10 / 9) and (df_s, df_i) == (9.0, 5.0)
    test = components_t(0.05, [(v_s, df_s), (v_i, df_i)])
    se = np.sqrt(v_s + v_i)
    df = (v_s + v_i) ** 2 / (v_s**2 / 9 + v_i**2 / 5)
    assert test.se == pytest.approx(se) and test.df == pytest.approx(df) and 5 < test.df < 14
    assert test.p == pytest.approx(2 * stats.t.sf(0.05 / se, df))
    assert test.ci_low == pytest.approx(0.05 - stats.t.ppf(0.975, df) * se)
    assert (test.p <= 0.05) == (test.ci_low > 0)
    shifted = seeds + 0.05  # the percentile bootstrap of one joint level overstates the evidence of few seeds
    assert components_t(0.05, [component_variance(shifted, 4)]).p > bootstrap_p(shifted)
    delta = test.detectable(0.05, 0.8)  # a true difference of delta is found 80% of the time
    t_c = stats.t.ppf(0.975, df)
    power = stats.nct.sf(t_c, df, delta / se) + stats.nct.cdf(-t_c, df, delta / se)
    assert power == pytest.approx(0.8, abs=1e-6) and test.detectable(0.05 / 10) > delta
    flat = components_t(0.1, [(0.0, 9.0), (0.0, 5.0)])
    assert np.isnan(flat.p) and "no variation" in flat.note
    assert np.isnan(components_t(0.1, [component_variance(seeds, 1)]).p)  # one seed: nothing to test
