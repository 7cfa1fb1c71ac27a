import numpy as np
import pytest

from bench.oracles import plain_greedy, tradeoff_objective
from cola_core.curation.selection import (
    BASELINE,
    REGISTRY,
    STRATEGIES,
    apportion,
    build_tradeoff_index,
    select,
    select_cola,
    select_stratified,
    select_tradeoff,
    selection_strategy,
)
from cola_core.curation.space import cluster_space
from cola_core.errors import ColaError


@pytest.fixture(scope="module")
def blobs():
    """Six tight, well-separated blobs of 50 points in 8-d, plus two far outliers."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((6, 8)) * 10
    pts = np.concatenate([c + 0.1 * rng.standard_normal((50, 8)) for c in centres])
    outliers = np.array([np.full(8, 60.0), np.full(8, -60.0)])
    return np.concatenate([pts, outliers]).astype(np.float32)


STRATS = list(STRATEGIES)


def _groups(n):
    return ["a" if i % 3 else "b" for i in range(n)]


def _experts(n):
    """Synthetic expert usage (tokens per sample and expert) for the strategies that read it."""
    return {"experts": np.random.default_rng(n).poisson(3, (n, 8)).astype(np.float32), "expert_floor": 10}


@pytest.mark.parametrize("strategy", STRATS)
def test_size_uniqueness_and_determinism(blobs, strategy):
    kw = {"groups": _groups(len(blobs)), **_experts(len(blobs))}
    a = select(blobs, 12, strategy, seed=3, **kw)
    b = select(blobs, 12, strategy, seed=3, **kw)
    assert len(a.indices) == 12 == len(set(a.indices.tolist()))
    assert np.array_equal(a.indices, b.indices)


@pytest.mark.parametrize("strategy", STRATS)
def test_include_and_exclude_are_honoured(blobs, strategy):
    kw = {"groups": _groups(len(blobs)), **_experts(len(blobs))}
    sel = select(blobs, 10, strategy, include=[5, 7], exclude=list(range(50, 100)), **kw)
    chosen = set(sel.indices.tolist())
    assert {5, 7} <= chosen and not chosen & set(range(50, 100))


def test_random_seeds_differ(blobs):
    assert not np.array_equal(select(blobs, 10, "random", seed=0).indices, select(blobs, 10, "random", seed=1).indices)


def test_stratified_follows_the_mix(blobs):
    groups = ["x"] * 100 + ["y"] * 202
    sel = select_stratified(blobs, 20, groups=groups, mix={"x": 3, "y": 1})
    picked = [groups[i] for i in sel.indices]
    assert picked.count("x") == 15 and picked.count("y") == 5


def test_stratified_caps_a_small_group(blobs):
    groups = ["x"] * 3 + ["y"] * 299
    picked = [groups[i] for i in select_stratified(blobs, 20, groups=groups).indices]
    assert picked.count("x") == 3 and picked.count("y") == 17


def test_cola_picks_the_point_nearest_each_centroid(blobs):
    sel = select_cola(blobs, 6, seed=0)
    clusters = cluster_space(blobs, 6, seed=0)
    for i in sel.indices:
        c = clusters.labels[i]
        members = np.flatnonzero(clusters.labels == c)
        d = np.linalg.norm(blobs[members] - clusters.centers[c], axis=1)
        assert members[d.argmin()] == i
    assert len(set(clusters.labels[sel.indices].tolist())) == 6


def test_lambda_one_covers_every_blob_and_skips_outliers(blobs):
    sel = select_tradeoff(blobs, 6, lam=1.0)
    blob_of = np.arange(len(blobs)) // 50
    assert sorted(blob_of[sel.indices].tolist()) == [0, 1, 2, 3, 4, 5]


def test_lambda_zero_takes_the_extremes_first(blobs):
    sel = select_tradeoff(blobs, 2, lam=0.0)
    assert set(sel.indices.tolist()) == {300, 301}


def test_lambda_moves_metrics_monotonically(blobs):
    from cola_core.curation.metrics import pairwise_distances

    idx = build_tradeoff_index(blobs)
    div = [
        pairwise_distances(blobs[select_tradeoff(blobs, 12, lam=lam, index=idx).indices]).mean() for lam in (0.0, 1.0)
    ]
    assert div[0] > div[1]


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.7, 1.0])
def test_lazy_greedy_matches_plain_greedy(lam):
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((20, 16)) * 3
    pts = (centres[rng.integers(0, 20, 1500)] + rng.standard_normal((1500, 16))).astype(np.float32)
    idx = build_tradeoff_index(pts, anchors=256)
    lazy = select_tradeoff(pts, 40, lam=lam, index=idx).indices
    plain = plain_greedy(idx, 40, lam)
    assert tradeoff_objective(idx, lazy, lam) >= 0.99 * tradeoff_objective(idx, plain, lam)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "must be positive"),
        ({"n": 400}, "has only"),
        ({"n": 5, "lam": 1.5, "strategy": "tradeoff"}, r"λ \(lam\) must lie in \[0, 1\]"),
        ({"n": 5, "strategy": "magic"}, "unknown strategy"),
        ({"n": 5, "include": [999]}, "outside the pool"),
        ({"n": 5, "include": [1], "exclude": [1]}, "both included and excluded"),
        ({"n": 1, "include": [1, 2]}, "forced in"),
    ],
)
def test_bad_arguments(blobs, kwargs, message):
    kwargs = {"strategy": "random", **kwargs}
    with pytest.raises(ColaError, match=message):
        select(blobs, kwargs.pop("n"), kwargs.pop("strategy"), **kwargs)


def test_cluster_table_lists_sizes_and_exemplars(blobs):
    from cola_core.curation.space import cluster_table

    clusters = cluster_space(blobs, 6, seed=0)
    texts = [f"t{i}" for i in range(len(blobs))]
    corpora = ["x" if i < 150 else "y" for i in range(len(blobs))]
    table = cluster_table(texts, corpora, blobs, clusters, per_cluster=2)
    assert table["size"].sum() == len(blobs) and len(table) == 6
    assert all(len(e) == min(2, s) for e, s in zip(table["exemplars"], table["size"], strict=True))
    assert set(table["main_corpus"]) == {"x", "y"}


@pytest.fixture(scope="module")
def big_pool():
    """8000 points in 40 clusters of very unequal size (a 12-point cluster far out), 16-d."""
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((40, 16)) * 4
    sizes = rng.dirichlet(np.full(40, 0.5)) * 7988
    labels = np.repeat(np.arange(40), np.maximum(1, sizes.round().astype(int)))
    pts = centres[labels] + rng.standard_normal((len(labels), 16))
    far = np.full((12, 16), 30.0) + rng.standard_normal((12, 16))
    return np.concatenate([pts, far]).astype(np.float32)


def test_shortlist_keeps_every_cluster_and_its_extremes(big_pool):
    from cola_core.curation.tradeoff import shortlist

    rows = shortlist(big_pool, 800, seed=0)
    assert 700 <= len(rows) <= 1100 and len(set(rows.tolist())) == len(rows)
    far = rows[rows >= len(big_pool) - 12]
    assert len(far) >= 2  # the small far cluster keeps its centre and its edge
    d = np.linalg.norm(big_pool[-12:] - big_pool[-12:].mean(0), axis=1)
    assert d[far - (len(big_pool) - 12)].max() > np.median(d)


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0])
def test_cluster_first_selection_is_nearly_as_good_as_the_full_greedy(big_pool, lam):
    full = build_tradeoff_index(big_pool, anchors=512)
    short = build_tradeoff_index(big_pool, anchors=512, max_candidates=800)
    assert short.rows is not None and len(short.rows) < len(big_pool) / 5
    a = select_tradeoff(big_pool, 32, lam=lam, index=full).indices
    b = select_tradeoff(big_pool, 32, lam=lam, index=short).indices
    assert len(set(b.tolist())) == 32 and set(b.tolist()) <= set(short.rows.tolist())
    # Judged on the full pool's index: within 3% of the greedy that saw every row.
    assert tradeoff_objective(full, b, lam) >= 0.97 * tradeoff_objective(full, a, lam)


def test_cluster_first_honours_forced_and_excluded_rows(big_pool):
    short = build_tradeoff_index(big_pool, anchors=512, max_candidates=800)
    outside = [int(i) for i in np.setdiff1d(np.arange(len(big_pool)), short.rows)[:3]]
    banned = short.rows[:100].tolist()
    sel = select_tradeoff(big_pool, 20, lam=0.5, index=short, include=outside, exclude=banned)
    assert set(outside) <= set(sel.indices.tolist()) and not set(banned) & set(sel.indices.tolist())
    assert len(sel.indices) == 20


# The strategy registry (a choice is a registry entry: STYLE.md).


def test_registry_lookup_and_traits():
    import inspect
    from dataclasses import fields

    from cola_core.curation.config import CurateConfig

    assert STRATEGIES == tuple(REGISTRY) == ("random", "stratified", "cola", "cola-quota", "cola-experts", "tradeoff")
    assert selection_strategy("cola") is REGISTRY["cola"] and BASELINE == "random"
    with pytest.raises(
        ColaError,
        match="unknown strategy 'kmeans': choose one of random, stratified, cola, cola-quota, cola-experts, tradeoff",
    ):
        selection_strategy("kmeans")
    settings = {f.name for f in fields(CurateConfig)}
    for entry in REGISTRY.values():
        takes = set(inspect.signature(entry.select).parameters)
        assert {"seed", "include", "exclude"} <= takes, entry.name
        assert set(entry.knobs) <= settings & takes and set(entry.inputs) <= takes, entry.name
        assert entry.description and "\n" not in entry.description
    assert [s.name for s in REGISTRY.values() if "lam" in s.knobs] == ["tradeoff"]
    assert [s.name for s in REGISTRY.values() if not s.honours_includes] == ["random"]


@pytest.mark.parametrize("name", STRATEGIES)
def test_every_entry_selects_n_distinct_indices_under_its_name(name):
    space = np.random.default_rng(1).standard_normal((90, 6)).astype(np.float32)
    sel = select(space, 11, name, seed=2, groups=_groups(90), lam=0.3, **_experts(90))
    assert sel.strategy == name  # the entry's function is the strategy it is named after
    assert len(sel.indices) == 11 == len(set(sel.indices.tolist())) and sel.indices.max() < 90


def test_the_dashboards_sets_honour_edits_exactly_as_each_entry_says(monkeypatch):
    """calibration_sets forces the lasso's includes in for the strategies that honour them, and
    leaves the random baseline a uniform draw (its excludes still apply)."""
    from cola_core.app import workspace
    from cola_core.corpora import Record
    from cola_core.curation.embedding import Embedded

    space = np.random.default_rng(4).standard_normal((60, 6)).astype(np.float32)
    records = [Record(f"r{i}", f"text {i}", "ab"[i % 2], "d") for i in range(60)]
    prepared = workspace.PreparedSpace(
        settings=workspace.SpaceSettings(),
        embedded=Embedded(records, space, "fingerprint", _experts(60)["experts"], 10),
        preview=np.zeros((60, 2)),
        clusters=cluster_space(space, 4, 0),
        index=build_tradeoff_index(space),
    )
    monkeypatch.setattr(workspace, "probes_of", lambda prepared: {})
    drawn = set(select(space, 8, "random", seed=0, exclude=[3]).indices.tolist())
    forced = next(i for i in range(60) if i not in drawn and i != 3)  # random would not pick it by itself
    for name in STRATEGIES:
        (cs,) = workspace.calibration_sets(prepared, (name,), (0,), n=8, include=(forced,), exclude=(3,))
        chosen = {r.id for r in cs.records}
        assert (f"r{forced}" in chosen) is REGISTRY[name].honours_includes, name
        assert "r3" not in chosen and len(chosen) == 8, name
        assert cs.name.endswith("(1 forced in, 1 excluded)" if REGISTRY[name].honours_includes else "(1 excluded)")
        assert ("λ=" in cs.name) is ("lam" in REGISTRY[name].knobs)


def test_docs_method_table_opens_each_row_with_the_entrys_description():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "method.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line.split("|")[2].strip() for line in text.splitlines() if "| `" in line}
    for entry in REGISTRY.values():
        assert entry.name in rows, f"docs/method.md has no row for strategy {entry.name}"
        assert rows[entry.name].startswith(entry.description), entry.name


# cola-quota: COLA's rule within each corpus (issue #29).


def _compact_and_spread(seed=0):
    """A compact corpus (169 points near the origin) beside two spread ones (70 and 61): the shape that
    makes global k-means starve the compact one."""
    rng = np.random.default_rng(seed)
    space = np.vstack([rng.normal(0, 0.05, (169, 8)), rng.normal(0, 3, (131, 8))]).astype(np.float32)
    return space, ["math"] * 169 + ["prose"] * 70 + ["code"] * 61


@pytest.mark.parametrize("n", [16, 32, 64])
def test_cola_quota_keeps_every_corpus_within_one_of_its_share(n):
    space, groups = _compact_and_spread()
    shares = {g: groups.count(g) / len(groups) for g in set(groups)}
    quota = select(space, n, "cola-quota", seed=0, groups=groups)
    got = {g: sum(groups[i] == g for i in quota.indices) for g in shares}
    assert len(set(quota.indices.tolist())) == n
    assert all(abs(got[g] - n * shares[g]) <= 1 for g in shares), got
    assert quota.params["quota"] == got and quota.params["shortfall"] == {}
    glob = select(space, n, "cola", seed=0)
    assert sum(groups[i] == "math" for i in glob.indices) < got["math"] - 1  # global k-means starves math here


def test_cola_quota_takes_each_corpus_centroid_representatives():
    space, groups = _compact_and_spread(1)
    sel = select(space, 20, "cola-quota", seed=5, groups=groups)
    math = [i for i in sel.indices if groups[i] == "math"]
    rows = np.arange(169)
    expected = select_cola(space[rows], len(math), seed=5).indices  # the paper's rule on math alone
    assert sorted(math) == sorted(rows[expected].tolist())


def test_cola_quota_redistributes_a_shortfall_and_says_so():
    space, groups = _compact_and_spread()
    excluded = [i for i, g in enumerate(groups) if g == "prose"][:68]  # two prose samples left
    sel = select(space, 32, "cola-quota", seed=0, groups=groups, exclude=excluded, include=[0, 1])
    chosen = sel.indices.tolist()
    assert len(chosen) == 32 == len(set(chosen)) and {0, 1} <= set(chosen) and not set(chosen) & set(excluded)
    assert sel.params["shortfall"] == {"prose": 5} and sel.params["quota"]["prose"] == 2
    assert sum(sel.params["quota"].values()) == 32


def test_apportion_is_largest_remainder_with_a_seat_each():
    assert apportion(32, {"math": 169, "prose": 70, "code": 61}) == {"math": 18, "prose": 7, "code": 7}
    assert apportion(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    assert apportion(10, {"a": 0.96, "b": 0.02, "c": 0.02, "d": 0.0}) == {"a": 8, "b": 1, "c": 1, "d": 0}
    assert apportion(2, {"a": 1, "b": 1, "c": 1}) == {"a": 1, "b": 1, "c": 0}  # fewer seats than corpora
    rng = np.random.default_rng(0)
    for _ in range(200):
        weights = {g: float(w) for g, w in zip("abcde", rng.integers(1, 100, 5), strict=True)}
        n = int(rng.integers(5, 200))
        seats = apportion(n, weights)
        assert sum(seats.values()) == n and min(seats.values()) >= 1
        exact = {g: n * w / sum(weights.values()) for g, w in weights.items()}
        if min(exact.values()) >= 1:  # no seat to find for a small corpus: pure largest remainder
            assert all(abs(seats[g] - exact[g]) < 1 for g in weights), (seats, exact)
        else:  # the seats given to small corpora come from those served most above their share
            assert all(abs(seats[g] - exact[g]) < 1 + sum(e < 1 for e in exact.values()) for g in weights)
