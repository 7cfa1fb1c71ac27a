"""The mean-retention endpoint and the sign table (issue #29) on results built by hand: a set that
buys math with language modelling wins one capability, loses the other, and the mean says which
weighs more."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cola_core.evaluation.retention import retention
from cola_core.evaluation.suite import Score
from cola_core.experiments.endpoints import MEAN, endpoint_bootstrap, sign_table
from cola_core.experiments.report import judge_claims, markdown_report
from cola_core.experiments.results import TABLE_COLUMNS, ExperimentResults

SEEDS = list(range(6))


def _acc(name, hits):
    hits = np.asarray(hits, dtype=int)
    return Score(name, "accuracy", float(hits.mean()), 0, 1, len(hits), [[int(h), 1] for h in hits])


def _ppl(name, nll):
    return Score(name, "perplexity", float(np.exp(np.mean(nll))), 0, 1, len(nll), [[float(x), 1] for x in nll])


def _results(seed: int = 0, quota_math: float = 0.9) -> ExperimentResults:
    """'quota' keeps math (0.9 of dense) and gives up lm a little; 'cola' the other way round."""
    rng = np.random.default_rng(seed)
    dense = {"math": _acc("math", np.ones(200)), "lm": _ppl("lm", np.full(100, 2.0))}
    scores, rows = {}, []
    for seed in SEEDS:
        for name, math_rate, lm_nll in (("quota", quota_math, 2.15), ("cola", 0.7, 2.05)):
            s = {
                "math": _acc("math", rng.random(200) < math_rate),
                "lm": _ppl("lm", lm_nll + rng.normal(0, 0.05, 100)),
            }
            scores[(name, "w50", seed)] = s
            for cap, score in s.items():
                value, lo, hi = retention(dense[cap], score)
                rows.append(
                    {
                        "calibration": name,
                        "compression": "w50",
                        "seed": seed,
                        "capability": cap,
                        "retention": value,
                        "ci_low": lo,
                        "ci_high": hi,
                        "score": score.score,
                        "coverage": np.nan,
                    }
                )
    return ExperimentResults(pd.DataFrame(rows, columns=TABLE_COLUMNS), dense, scores)


def test_the_mean_endpoint_averages_the_capabilities_retention():
    results = _results()
    point, reps = endpoint_bootstrap(results, ["quota", "cola"], "w50", MEAN, SEEDS, 400)
    by_cap = [endpoint_bootstrap(results, ["quota", "cola"], "w50", c, SEEDS, 400)[0] for c in ("lm", "math")]
    assert point == pytest.approx(np.mean(by_cap, axis=0)) and reps.shape == (400, 2)
    table = results.table.groupby(["calibration", "capability"])["retention"].mean()
    assert point[0] == pytest.approx((table["quota", "lm"] + table["quota", "math"]) / 2)


def test_claims_on_the_mean_and_the_trade_off_they_hide():
    results = _results()
    claims = [
        {"title": "primary", "better": "quota", "worse": "cola", "capability": MEAN, "compression": "w50"},
        {"title": "math", "better": "quota", "worse": "cola", "capability": "math", "compression": "w50"},
        {"title": "lm", "better": "quota", "worse": "cola", "capability": "lm", "compression": "w50"},
    ]
    judged = judge_claims(results, claims).set_index("title")
    assert judged.loc["math", "verdict"] == "supported" and judged.loc["lm", "verdict"] == "contradicted"
    mean = judged.loc["primary"]
    assert mean["difference"] == pytest.approx((judged.loc["math", "difference"] + judged.loc["lm", "difference"]) / 2)
    assert sign_table(results, "quota", "cola").loc["w50"].to_dict() == {"lm": "−", "math": "+"}
    assert sign_table(results, "quota", "nothing").empty


def test_the_report_prints_the_sign_table():
    from cola_core.experiments.config import CalibrationSpec, ExperimentConfig

    cfg = ExperimentConfig(
        name="x",
        calibration_sets=(CalibrationSpec("quota"), CalibrationSpec("cola")),
        compression=({"method": "wanda"},),
        seeds=tuple(SEEDS),
        capabilities=("lm", "math"),
        claims=({"title": "primary", "better": "quota", "worse": "cola", "capability": MEAN, "compression": "w50"},),
    )
    text = markdown_report(cfg, _results(), "test")
    assert "## Trade-offs" in text and "**quota − cola**" in text and "| w50 | − | + |" in text.replace("  ", " ")


def test_a_config_may_claim_on_the_mean():
    from cola_core.errors import ColaError
    from cola_core.experiments.config import ExperimentConfig

    d = {
        "name": "x",
        "calibration_sets": [{"name": "a"}, {"name": "b"}],
        "compression": [{"method": "wanda", "sparsity": 0.5}],
        "claims": [
            {
                "title": "t",
                "better": "a",
                "worse": "b",
                "capability": "mean",
                "compression": "method=wanda-sparsity=0.5",
            }
        ],
    }
    ExperimentConfig.from_dict(d).validate()
    d["claims"][0]["capability"] = "average"
    with pytest.raises(ColaError, match="unknown capability 'average'"):
        ExperimentConfig.from_dict(d).validate()


def test_an_experiment_can_resample_item_clusters():
    from cola_core.experiments.config import ExperimentConfig

    d = {"name": "x", "calibration_sets": [{"name": "a"}], "compression": [{"method": "wanda"}], "limit": 50}
    assert ExperimentConfig.from_dict(d).item_clusters() is None
    cfg = ExperimentConfig.from_dict({**d, "cluster_items": True, "capabilities": ["math", "facts"]})
    clusters = cfg.item_clusters()
    assert set(clusters) == set(cfg.scores) and len(clusters["facts"]) == 50 and len(set(clusters["facts"])) == 10
    results = _results()
    claim = {"title": "m", "better": "quota", "worse": "cola", "capability": "math", "compression": "w50"}
    plain = judge_claims(results, [claim]).iloc[0]
    blocks = {"math": [f"block{i // 20}" for i in range(200)]}  # 10 clusters of 20 items
    clustered = judge_claims(results, [claim], clusters=blocks).iloc[0]
    assert clustered["difference"] == pytest.approx(plain["difference"])  # same point, another interval
    assert (clustered["boot_low"], clustered["boot_high"]) != (plain["boot_low"], plain["boot_high"])


def test_primaries_and_their_secondaries_are_separate_holm_families():
    """Issue #29: each primary claim on the mean brings its per-capability differences as a family of
    their own; adding them leaves the primaries' Holm adjustment as it was."""
    from cola_core.experiments.claims import PRIMARY, with_secondaries

    results = _results()
    primaries = [
        {"title": "q", "better": "quota", "worse": "cola", "capability": MEAN, "compression": "w50"},
        {"title": "c", "better": "cola", "worse": "quota", "capability": "lm", "compression": "w50"},
    ]
    claims = with_secondaries(primaries, ["lm", "math"])
    assert [(c["capability"], c.get("family", PRIMARY)) for c in claims][:3] == [
        (MEAN, PRIMARY),
        ("lm", "secondary to quota vs cola, w50"),
        ("math", "secondary to quota vs cola, w50"),
    ]
    judged = judge_claims(results, claims)
    alone = judge_claims(results, primaries)
    mine = judged[judged["family"] == PRIMARY]
    assert mine["p_holm"].tolist() == pytest.approx(alone["p_holm"].tolist())
    assert set(judged["m"]) == {2} and len(judged) == 4
    secondary = judged[judged["family"] != PRIMARY].set_index("capability")
    assert secondary.loc["math", "verdict"] == "supported" and secondary.loc["lm", "verdict"] == "contradicted"


def test_claims_pooled_over_models_resample_the_models():
    """Issue #29: the model as a random effect. Pooled over three models the point is the models'
    mean, the test has models − 1 degrees of freedom, and models that disagree widen the interval."""
    claim = {"title": "m", "better": "quota", "worse": "cola", "capability": "math", "compression": "w50"}
    alike = [_results(seed) for seed in (0, 1, 2)]
    apart = [_results(0, 0.95), _results(1, 0.72), _results(2, 0.9)]  # the models disagree on the effect
    each = [judge_claims(r, [claim]).iloc[0] for r in alike]
    pooled = judge_claims(alike, [claim]).iloc[0]
    assert pooled["models"] == 3 and pooled["difference"] == pytest.approx(np.mean([e["difference"] for e in each]))
    assert pooled["verdict"] == "supported"
    spread = judge_claims(apart, [claim]).iloc[0]
    assert spread["se"] > 2 * pooled["se"] and spread["verdict"] == "inconclusive"


def test_a_config_on_model_variants_runs_once_per_model():
    from cola_core.errors import ColaError
    from cola_core.experiments.config import ExperimentConfig, load_config

    d = {"name": "x", "calibration_sets": [{"name": "a"}], "compression": [{"method": "wanda"}]}
    cfg = ExperimentConfig.from_dict({**d, "models": ["cola-tiny", "cola-tiny-s1"]}).validate()
    assert [(p.name, p.model, p.models) for p in cfg.per_model()] == [
        ("x@cola-tiny", "cola-tiny", ()),
        ("x@cola-tiny-s1", "cola-tiny-s1", ()),
    ]
    assert ExperimentConfig.from_dict(d).per_model()[0].name == "x"
    part = cfg.per_model()[1]  # Ray workers get a part as its dict: it must read back as itself
    assert ExperimentConfig.from_dict(part.to_dict()) == part
    with pytest.raises(ColaError, match="model or models, not both"):
        ExperimentConfig.from_dict({**d, "model": "m", "models": ["a", "b"]})
    with pytest.raises(ColaError, match="two or more distinct"):
        ExperimentConfig.from_dict({**d, "models": ["a", "a"]}).validate()
    part = load_config("paper-claims-models@cola-tiny-s2")
    assert part.model == "cola-tiny-s2" and part.name == "paper-claims-models@cola-tiny-s2"
    with pytest.raises(ColaError, match="runs no model 'gpt2'"):
        load_config("paper-claims-models@gpt2")


def test_a_claims_family_is_a_name_and_other_keys_are_errors():
    from cola_core.errors import ColaError
    from cola_core.experiments.config import ExperimentConfig

    claim = {"title": "t", "better": "a", "worse": "b", "capability": "mean", "compression": "method=wanda"}
    d = {"name": "x", "calibration_sets": [{"name": "a"}, {"name": "b"}], "compression": [{"method": "wanda"}]}
    ExperimentConfig.from_dict({**d, "claims": [{**claim, "family": "domain"}]}).validate()
    with pytest.raises(ColaError, match="family must be a name"):
        ExperimentConfig.from_dict({**d, "claims": [{**claim, "family": 3}]}).validate()
    with pytest.raises(ColaError, match="unknown key 'famly'"):
        ExperimentConfig.from_dict({**d, "claims": [{**claim, "famly": "x"}]}).validate()


def test_claims_over_items_ask_about_these_items_and_name_one_score():
    """Issue #30: a config may ask its claims of the held-out items (the demo's question): p from a
    paired t-test over items with the seeds averaged; the mean endpoint belongs to the seeds rule."""
    from cola_core.errors import ColaError
    from cola_core.experiments.config import ExperimentConfig

    results = _results()
    claim = {"title": "m", "better": "quota", "worse": "cola", "capability": "math", "compression": "w50"}
    items = judge_claims(results, [claim], over="items").iloc[0]
    seeds = judge_claims(results, [claim]).iloc[0]
    assert items["pairs"] == 200 and items["seeds"] == len(SEEDS) and items["verdict"] == "supported"
    assert items["difference"] == pytest.approx(seeds["difference"], abs=1e-9)  # accuracy: the same point
    d = {"name": "x", "calibration_sets": [{"name": "a"}, {"name": "b"}], "compression": [{"method": "wanda"}]}
    mean = {"title": "t", "better": "a", "worse": "b", "capability": "mean", "compression": "method=wanda"}
    with pytest.raises(ColaError, match="not the mean"):
        ExperimentConfig.from_dict({**d, "claims_over": "items", "claims": [mean]}).validate()
    with pytest.raises(ColaError, match="seeds or items"):
        ExperimentConfig.from_dict({**d, "claims_over": "runs"}).validate()


def test_the_html_report_of_a_models_config_names_its_parts(tmp_path):
    from cola_core.errors import ColaError
    from cola_core.evaluation.runstore import RunStore
    from cola_core.html_report.document import build_report

    with pytest.raises(ColaError, match="runs on 3 models: report one of paper-claims-models@cola-tiny"):
        build_report(RunStore(tmp_path / "runs.sqlite"), experiment="paper-claims-models")
