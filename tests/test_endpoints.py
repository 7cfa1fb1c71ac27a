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


def _results() -> ExperimentResults:
    """'quota' keeps math (0.9 of dense) and gives up lm a little; 'cola' the other way round."""
    rng = np.random.default_rng(0)
    dense = {"math": _acc("math", np.ones(200)), "lm": _ppl("lm", np.full(100, 2.0))}
    scores, rows = {}, []
    for seed in SEEDS:
        for name, math_rate, lm_nll in (("quota", 0.9, 2.15), ("cola", 0.7, 2.05)):
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
