"""Calibration sets side by side (cola_core/app/ab.py, ab_maps.py) on real experiment runs of a tiny
model in a temporary store, and the Compare page's A/B view driven with AppTest."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cola_core.app import ab_maps
from cola_core.app import jobs as jobs
from cola_core.app.ab import compare_sets, default_choice, run_compression, set_groups
from cola_core.errors import ColaError
from cola_core.evaluation.runstore import RunStore
from cola_core.experiments.config import ExperimentConfig
from cola_core.experiments.grid import run_experiment
from tests.test_pages import PAGES

WANDA = "method=wanda-sparsity=0.5"
VERDICTS = {"supported", "contradicted", "inconclusive", "untestable"}


def _config(model: str, name: str, seeds: list[int]) -> ExperimentConfig:
    """Two identical random sets under different names (their difference must be exactly 0) and a
    math-only set; small enough to run in seconds."""
    return ExperimentConfig.from_dict(
        {
            "name": name,
            "model": model,
            "n": 8,
            "pool_size": 60,
            "seqlen": 32,
            "seeds": seeds,
            "limit": 10,
            "capabilities": ["lm", "math"],
            "calibration_sets": [
                {"name": "random", "corpora": ["math", "prose"], "strategy": "random"},
                {"name": "random-again", "corpora": ["math", "prose"], "strategy": "random"},
                {"name": "math-only", "corpora": ["math"], "strategy": "random"},
            ],
            "compression": [{"method": "wanda", "sparsity": 0.5}],
        }
    ).validate()


@pytest.fixture(scope="module")
def world(tiny_model_dir, tmp_path_factory):
    """A two-seed experiment ``ab`` and a one-seed experiment ``ab1`` in one store."""
    root = tmp_path_factory.mktemp("ab")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLA_CACHE_DIR", str(root / "cache"))
        model = tiny_model_dir("llama")
        store = RunStore(root / "runs.sqlite")
        configs = {"ab": _config(model, "ab", [0, 1]), "ab1": _config(model, "ab1", [0])}
        for cfg in configs.values():
            run_experiment(cfg, store)
        yield store, model, configs


def test_set_groups_lists_each_set_once_per_compression(world):
    store, model, _ = world
    groups = set_groups(store, model)
    assert sorted(groups["group"]) == sorted(
        f"{e}/{s}" for e in ("ab", "ab1") for s in ("random", "random-again", "math-only")
    )
    assert set(groups["compression"]) == {WANDA}
    two = groups.set_index("group").loc["ab/random"]
    assert two["seeds"] == [0, 1] and len(two["run_ids"]) == 2 and two["source"] == "experiment ab"
    assert groups.set_index("group").loc["ab1/random", "seeds"] == [0]
    chosen, reference = default_choice(groups, WANDA)
    assert reference in chosen and len(chosen) >= 2 and reference.endswith("/random")


def test_dashboard_runs_get_the_experiment_label_of_the_same_setting():
    dashboard = {"method": "wanda", "sparsity": 0.5, "bits": 4, "group_size": 128, "device": "cpu", "limit": 20}
    assert run_compression(dashboard, None) == run_compression({"method": "wanda", "sparsity": 0.5}, "x") == WANDA
    assert run_compression({**dashboard, "method": "gptq", "bits": 3}, None) == "bits=3-method=gptq"


def test_identical_sets_differ_by_zero_and_are_inconclusive(world):
    store = world[0]
    ab = compare_sets(store, ["ab/random", "ab/random-again", "ab/math-only"], WANDA, "ab/random")
    same = ab.differences[ab.differences["group"] == "ab/random-again"]
    capabilities = {"lm", "math", "math_tier1", "math_tier2", "math_tier3"}  # math's tiers are scores too
    assert len(same) == 5 and set(same["capability"]) == capabilities
    lm = same[same["capability"] == "lm"]  # the random tiny model answers no arithmetic: math is undefined
    assert (lm["difference"] == 0).all() and (lm["ci_low"] == 0).all() and (lm["ci_high"] == 0).all()
    assert set(lm["verdict"]) <= {"inconclusive", "untestable"}  # untestable: at the ceiling (≥ 0.99)
    assert set(same.loc[same["capability"] != "lm", "verdict"]) == {"untestable"}
    assert (same["seeds"] == 2).all() and (same["pairs"] > 0).all()  # two seeds averaged, paired over items
    # the per-set retention: the identical sets agree exactly, and each interval holds its point
    ret = ab.retention.pivot(index="capability", columns="group", values="mean")
    assert np.allclose(ret["ab/random"], ret["ab/random-again"], equal_nan=True)
    defined = ab.retention.dropna(subset=["mean"])
    assert (defined["ci_low"] <= defined["mean"] + 1e-12).all() and len(defined) >= 3
    assert (defined["mean"] <= defined["ci_high"] + 1e-12).all()
    assert (ab.retention["seeds"] == 2).all()


def test_differences_are_holm_adjusted_with_verdict_words(world):
    store = world[0]
    ab = compare_sets(store, ["ab/random", "ab/math-only", "ab/random-again"], WANDA, "ab/random")
    d = ab.differences
    assert len(d) == 2 * 5 and set(d["verdict"]) <= VERDICTS
    tested = d[d["p_holm"].map(math.isfinite)]
    assert (tested["p_holm"] >= tested["p"] - 1e-12).all() and (tested["p_holm"] <= 1).all()
    finite = d[d["ci_low"].map(math.isfinite)]
    assert (
        (finite["ci_low"] <= finite["difference"] + 1e-12) & (finite["difference"] <= finite["ci_high"] + 1e-12)
    ).all()
    lm = d[(d["group"] == "ab/math-only") & (d["capability"] == "lm")].iloc[0]
    pivot = ab.retention.pivot(index="capability", columns="group", values="mean")
    # the paired difference is of the seeds' item-averaged scores, the table's of per-seed retentions
    assert lm["difference"] == pytest.approx(pivot.loc["lm", "ab/math-only"] - pivot.loc["lm", "ab/random"], abs=1e-3)
    # the token budget and mix come from the runs' reports where they record them
    sets = ab.sets.set_index("group")
    if sets["tokens"].notna().all():
        assert sets.loc["ab/math-only", "mix"] == {"math": 1.0}
        assert 0 < sets.loc["ab/random", "tokens"] <= 8 * 32


def test_one_seed_sets_are_paired_over_items(world):
    store = world[0]
    ab = compare_sets(store, ["ab1/random", "ab1/math-only", "ab1/random-again"], WANDA, "ab1/random")
    d = ab.differences.set_index(["group", "capability"])
    assert (d["seeds"] == 1).all() and (d.loc[("ab1/math-only", "math"), "pairs"] == 10)
    same = d.loc[("ab1/random-again", "lm")]  # identical sets: no difference and nothing to test it against
    assert same["difference"] == 0 and same["verdict"] == "untestable" and "no variation" in same["note"]
    assert set(d["verdict"]) <= VERDICTS
    tested = d[d["p_holm"].map(math.isfinite)]
    assert (tested["p_holm"] >= tested["p"] - 1e-12).all()


def test_bad_comparisons_are_refused_with_a_message(world):
    store = world[0]
    with pytest.raises(ColaError, match="itself"):
        compare_sets(store, ["ab/random", "ab/random"], WANDA, "ab/random")
    with pytest.raises(ColaError, match="at least two"):
        compare_sets(store, ["ab/random"], WANDA, "ab/random")
    with pytest.raises(ColaError, match="reference"):
        compare_sets(store, ["ab/random", "ab/math-only"], WANDA, "ab/cola")
    with pytest.raises(ColaError, match="no finished runs"):
        compare_sets(store, ["ab/random", "ab/math-only"], "method=gptq", "ab/random")


def test_maps_place_every_set_on_one_plane_with_probe_coverage(world, monkeypatch):
    store, _, configs = world
    monkeypatch.setattr(ab_maps, "load_config", lambda name: configs[name])
    ab = compare_sets(store, ["ab/random", "ab/math-only"], WANDA, "ab/random")
    maps = ab_maps.set_maps(store, ab, seed=1)
    assert all(m.placed and m.seed == 1 for m in maps.values()), [m.reason for m in maps.values()]
    rnd, math_only = maps["ab/random"], maps["ab/math-only"]
    assert len(rnd.chosen) == len(rnd.ids) == 8 and rnd.xy.shape == (len(rnd.corpus), 2)
    assert math_only.mix == {"math": 1.0} and set(math_only.corpus) == {"math"}
    for cap in ("lm", "math"):  # the same probes at the same places on both maps
        assert np.allclose(rnd.probes[cap], math_only.probes[cap])
        assert rnd.covered[cap].shape == (len(rnd.probes[cap]),)
    assert math_only.covered["math"].sum() > math_only.covered["lm"].sum()  # a math-only set misses prose
    assert 0 < rnd.tokens <= 8 * 32
    budget = ab_maps.budget_table(ab, maps).set_index("group")
    assert budget.loc["ab/math-only", "math"] == 1.0


def test_maps_say_why_a_set_cannot_be_placed(world):
    store = world[0]  # the test configs are not built-in, and no dashboard space is open
    ab = compare_sets(store, ["ab/random", "ab/math-only"], WANDA, "ab/random")
    maps = ab_maps.set_maps(store, ab)
    assert all(not m.placed and "not a built-in config" in m.reason for m in maps.values())


def test_compare_page_ab_view(world, monkeypatch):
    store, model, _ = world
    monkeypatch.setattr(jobs, "_QUEUE", jobs.JobQueue(store))
    at = AppTest.from_file(str(PAGES / "compare.py"), default_timeout=300)
    at.session_state["model"] = model
    at.run()
    assert not at.exception
    sets = next(m for m in at.multiselect if m.label.startswith("Calibration sets"))
    sets.set_value(["ab/random", "ab/math-only"]).run()
    assert not at.exception and not at.error
    reference = next(s for s in at.selectbox if s.label.startswith("Reference"))
    reference.set_value("ab/random").run()
    assert not at.exception
    shown = " ".join(str(t) for df in at.dataframe for t in df.value.astype(str).to_numpy().ravel())
    assert any(word in shown for word in ("supported", "contradicted", "inconclusive", "untestable"))
    assert "ab/math-only" in shown
    text = " ".join(m.value for m in at.markdown) + " ".join(c.value for c in at.caption)
    assert "bootstrap over the held-out items" in text and "Holm" in text
    assert len(at.get("download_button")) == 1  # one report, the view's twin (issue #30)
    assert "python -m cola_core report --experiment ab" in text  # the experiment's own report: a command


def test_dashboard_sets_are_grouped_compared_over_items_and_placed(tiny_model_dir, tmp_path, monkeypatch):
    """Runs launched from the dashboard: one set per label across seeds, one seed each so the
    difference is paired over items, and maps rebuilt from the space they were drawn from."""
    from cola_core.app.workspace import SpaceSettings, calibration_sets, prepare_space
    from cola_core.compress import CompressConfig

    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path))
    queue = jobs.JobQueue(RunStore(tmp_path / "runs.sqlite"))
    monkeypatch.setattr(jobs, "_QUEUE", queue)
    settings = SpaceSettings.of(model=tiny_model_dir("llama"), corpora=("math", "facts"), pool_size=60, seqlen=32)
    space = prepare_space(settings)
    for cs in calibration_sets(space, ("tradeoff", "random"), (0,), n=8):
        extra = {"strategy": cs.strategy, "seed": cs.seed, "proxy": cs.proxy}
        queue.submit(settings.model, cs.name, cs.records, CompressConfig(method="wanda"), 32, 4, extra)
    deadline = time.time() + 300
    while time.time() < deadline and any(j["status"] in ("queued", "running") for j in queue.snapshot()):
        time.sleep(0.2)
    groups = set_groups(queue.store, settings.model)
    assert sorted(groups["group"]) == ["dashboard/random n=8", "dashboard/tradeoff λ=0.5 n=8"]
    assert set(groups["compression"]) == {WANDA} and set(groups["limit"]) == {4}
    assert default_choice(groups, WANDA) == ([], "")  # the user picks dashboard sets
    with pytest.raises(ColaError, match="dense evaluation"):
        compare_sets(queue.store, list(groups["group"]), WANDA, "dashboard/random n=8")
    jobs.dense_scores(settings.model, 4)
    ab = compare_sets(queue.store, list(groups["group"]), WANDA, "dashboard/random n=8")
    assert (ab.differences["seeds"] == 1).all() and set(ab.differences["verdict"]) <= VERDICTS
    maps = ab_maps.set_maps(queue.store, ab, prepared=space)
    assert all(m.placed for m in maps.values()), [m.reason for m in maps.values()]
    assert all(len(m.chosen) == 8 and m.tokens > 0 for m in maps.values())
    elsewhere = ab_maps.set_maps(queue.store, ab)  # no space open: said, not faked
    assert all("not stored with the run" in m.reason for m in elsewhere.values())


def test_a_clear_difference_is_said_in_one_sentence(world):
    """Issue #30: Compare's first screen says each decided verdict in words, largest first."""
    from cola_core.app.ab import headlines

    store = world[0]
    ab = compare_sets(store, ["ab/random", "ab/math-only", "ab/random-again"], WANDA, "ab/random")
    lines = headlines(ab)
    decided = ab.differences[ab.differences["verdict"].isin(["supported", "contradicted"])]
    assert len(lines) == len(decided)
    ordered = decided.reindex(decided["difference"].abs().sort_values(ascending=False).index)
    for line, r in zip(lines, ordered.itertuples(), strict=True):
        assert f"**{r.group}** keeps {abs(r.difference):.2f}" in line and line.endswith(r.verdict)
    ab.differences.loc[:, "verdict"] = "inconclusive"
    assert headlines(ab) == []
