"""The experiment grid on the smoke config with a tiny random model: runs recorded and resumed only
under their full settings, the report read from the current config's runs only, claims validated."""

import json
import shutil
import sqlite3

import pytest

from cola_core.errors import ColaError
from cola_core.evaluation.runstore import RunStore
from cola_core.evaluation.suite import SHOWCASE_PROMPTS
from cola_core.experiments.config import BUILTIN_DIR, ExperimentConfig, list_builtin, load_config
from cola_core.experiments.grid import run_experiment
from cola_core.experiments.plan import plan_runs
from cola_core.experiments.report import dense_baselines, judge_claims, markdown_report, summarise
from cola_core.experiments.results import load_results
from tests.test_cli import run_cli


def smoke(model: str, **changes) -> dict:
    raw = json.loads((BUILTIN_DIR / "smoke.json").read_text())
    raw.update(model=model, limit=8, pool_size=60, n=8)
    raw.update(changes)
    return raw


@pytest.fixture(scope="module")
def finished(tiny_model_dir, tmp_path_factory):
    """The smoke config run once for the module (one cache directory); tests get copies of its store."""
    root = tmp_path_factory.mktemp("experiment")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLA_CACHE_DIR", str(root / "cache"))
        cfg = ExperimentConfig.from_dict(smoke(tiny_model_dir("llama")))
        logs: list[str] = []
        table = run_experiment(cfg, RunStore(root / "runs.sqlite"), log=logs.append)
        yield cfg, root, table, logs


@pytest.fixture
def store(finished, tmp_path, monkeypatch):
    _, root, _, _ = finished
    monkeypatch.setenv("COLA_CACHE_DIR", str(root / "cache"))
    shutil.copy(root / "runs.sqlite", tmp_path / "runs.sqlite")
    return RunStore(tmp_path / "runs.sqlite")


def test_builtin_configs_parse():
    assert {"paper-claims", "smoke"} <= set(list_builtin())
    cfg = load_config("paper-claims")
    assert len(cfg.seeds) >= 3 and len(cfg.claims) >= 3
    sets = {c.name for c in cfg.calibration_sets}
    for claim in cfg.claims:
        assert claim["better"] in sets and claim["worse"] in sets


def test_runs_are_recorded_resumed_and_reported(finished, store):
    cfg, _, table, logs = finished
    assert sum(line.startswith("done") for line in logs) == 7
    runs = store.runs(cfg.name)
    assert len(runs) == 1 + 3 * 2 and (runs["status"] == "done").all()
    assert runs["settings_hash"].notna().all() and runs["model_fingerprint"].nunique() == 1
    compressed = runs[runs["calibration"] != "dense"]
    layers = json.loads(compressed.iloc[0]["report"])["layers"]
    assert layers and all(v["relative_error"] >= 0 for layer in layers for v in layer["linears"].values())
    answers = [json.loads(r)["answers"] for r in runs["report"]]  # the dense run's too: weights are not kept
    assert all(set(a) == set(SHOWCASE_PROMPTS) and all(isinstance(v, str) for v in a.values()) for a in answers)
    assert set(table["calibration"]) == {"random", "math-only", "cola"}
    assert table.loc[table["capability"] == "lm", "retention"].notna().all()  # perplexity: always defined
    assert set(table["capability"]) == set(cfg.scores)  # config.SCORES_OF is what evaluate reports
    logs = []
    again = run_experiment(cfg, store, log=logs.append)
    assert len(store.runs(cfg.name)) == 7 and sum("skip" in line for line in logs) == 6
    assert not any(line.startswith("done") for line in logs) and len(again) == len(table)

    results = load_results(plan_runs(cfg), store)
    assert list(dense_baselines(results)["capability"]) == list(results.dense) and not results.missing
    summary = summarise(results).dropna(subset=["mean"])  # undefined where the dense accuracy is 0
    assert len(summary) >= 3
    tol = 1e-12
    assert (summary["ci_low"] <= summary["mean"] + tol).all() and (summary["mean"] <= summary["ci_high"] + tol).all()
    claims = judge_claims(results, cfg.claims)
    assert len(claims) == 2 and set(claims["verdict"]) <= {"supported", "contradicted", "inconclusive", "untestable"}
    tested = claims[~claims["untestable"]]
    assert (tested["p_holm"] >= tested["p"]).all() and (claims["seeds"] == 2).all()
    report = markdown_report(cfg, results, "python -m cola_core experiment --config smoke")
    assert "## Dense model" in report and "| math-only |" in report and "p (Holm)" in report
    assert "not supported" not in report
    # packed sets: on the smoke config every set gives the compressor exactly n × seqlen real tokens
    shared = cfg.shared
    assert shared.processing.mode == "pack"
    assert set(results.budgets["tokens"]) == {shared.n * shared.processing.seqlen}
    assert set(results.budgets.index) == {"random", "math-only", "cola"} and results.seconds > 0
    assert f"Compute: {results.seconds / 60:.1f} min" in report and "real tokens" in report
    stored = store.runs(keys=plan_runs(cfg).keys)
    assert results.span == pytest.approx(float(stored["finished"].max() - stored["started"].min()))
    assert results.span > 0 and f"Wall time: {results.span / 60:.1f} min" in report


def test_claims_at_the_floor_are_untestable_and_leave_holms_family(finished, store):
    cfg, _, _, _ = finished
    results = load_results(plan_runs(cfg), store)
    lm_claim = next(c for c in cfg.claims if c["capability"] == "lm")
    results.table.loc[results.table["capability"] == "lm", "retention"] = 1e-9  # both sets destroyed
    for scores in results.scores.values():  # perplexity e^50 on every text: retention ≈ 0
        s = scores["lm"]
        scores["lm"] = type(s)(**{**s.__dict__, "items": [[50.0 * tokens, tokens] for _, tokens in s.items]})
    judged = judge_claims(results, [lm_claim]).iloc[0]
    assert judged["verdict"] == "untestable" and "floor" in judged["note"]
    assert judged["p_holm"] != judged["p_holm"]  # NaN: left out of Holm's family


def test_a_claim_on_a_capability_the_dense_model_lacks_is_untestable(finished, store):
    cfg, _, _, _ = finished
    results = load_results(plan_runs(cfg), store)
    assert results.dense["math"].score == 0  # a random tiny model answers no arithmetic
    judged = judge_claims(results, cfg.claims)
    math_claim = judged[judged["capability"] == "math"].iloc[0]
    assert math_claim["verdict"] == "untestable" and "dense model scores 0" in math_claim["note"]


def test_one_rule_interval_p_and_verdict_agree(finished, store):
    """Issue #29: the interval, p and verdict of a claim come from one bootstrap standard error on
    Student's t with seeds − 1 degrees of freedom: p ≤ 0.05 exactly where the interval excludes 0, and
    the verdict is the Holm-adjusted p with the sign."""
    from scipy import stats

    cfg, _, _, _ = finished
    results = load_results(plan_runs(cfg), store)
    judged = judge_claims(results, cfg.claims)
    for r in judged[~judged["untestable"]].itertuples():
        df = r.seeds - 1
        half = stats.t.ppf(0.975, df) * r.se
        assert r.boot_low == pytest.approx(r.difference - half) and r.boot_high == pytest.approx(r.difference + half)
        assert r.p == pytest.approx(2 * stats.t.sf(abs(r.difference) / r.se, df))
        assert (r.p <= 0.05) == (r.boot_low > 0 or r.boot_high < 0)
        expected = "inconclusive" if r.p_holm > 0.05 else "supported" if r.difference > 0 else "contradicted"
        assert r.verdict == expected


def test_a_changed_setting_recomputes_and_old_runs_stay_out_of_the_report(finished, tiny_model_dir, store):
    cfg = finished[0]
    logs: list[str] = []
    changed = ExperimentConfig.from_dict(smoke(tiny_model_dir("llama"), limit=6))
    table = run_experiment(changed, store, log=logs.append)
    assert sum(line.startswith("done") for line in logs) == 7 and not any("skip" in line for line in logs)
    assert len(store.runs(cfg.name)) == 14
    results = load_results(plan_runs(changed), store)
    assert {s.n for scores in results.scores.values() for k, s in scores.items() if k == "lm"} == {6}
    assert len(table) == len(results.table) == 3 * 2 * len(changed.scores)

    fewer = smoke(tiny_model_dir("llama"), limit=6)
    fewer["calibration_sets"] = [s for s in fewer["calibration_sets"] if s["name"] != "cola"]
    fewer["claims"] = [c for c in fewer["claims"] if "cola" not in (c["better"], c["worse"])]
    fewer = ExperimentConfig.from_dict(fewer).validate()
    logs.clear()
    table = run_experiment(fewer, store, log=logs.append)
    assert sum("skip" in line for line in logs) == 4 and not any(line.startswith("done") for line in logs)
    assert set(table["calibration"]) == {"random", "math-only"}
    report = markdown_report(fewer, load_results(plan_runs(fewer), store), "cmd")
    assert "| cola |" not in report and "| random |" in report


def test_a_changed_calibration_set_reruns_its_finished_runs(tiny_model_dir, store):
    raw = smoke(tiny_model_dir("llama"), seeds=[0], claims=[])
    raw["calibration_sets"] = raw["calibration_sets"][:1]
    raw["compression"] = [{"method": "wanda", "sparsity": 0.5}, {"method": "magnitude", "sparsity": 0.5}]
    cfg = ExperimentConfig.from_dict(raw).validate()
    run_experiment(cfg, store)
    wanda, magnitude = plan_runs(cfg).runs
    with sqlite3.connect(store.path) as db:  # as if the calibration set had come out differently
        db.execute("UPDATE runs SET calibration_fingerprint='0000' WHERE key=?", (wanda.key,))
        db.execute("UPDATE runs SET status='failed' WHERE key=?", (magnitude.key,))
    logs: list[str] = []
    run_experiment(cfg, store, log=logs.append)
    assert sum(line.startswith("done") for line in logs) == 2
    assert any(line.startswith(f"recomputed {wanda.key}: calibration set 0000 →") for line in logs)
    fingerprints = store.runs(keys=[wanda.key, magnitude.key])["calibration_fingerprint"]
    assert fingerprints.nunique() == 1 and "0000" not in set(fingerprints)


@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        ("compression", "method=wanda-sparsity=0.7", "method=wanda-sparsity=0.5"),
        ("better", "math-onyl", "random, math-only, cola"),
        ("capability", "facts", "lm, math, math_tier1, math_tier2, math_tier3, mean"),
    ],
)
def test_unknown_labels_in_claims_are_errors(field, value, valid):
    raw = smoke("cola-tiny")
    raw["claims"][0][field] = value
    with pytest.raises(ColaError) as caught:
        ExperimentConfig.from_dict(raw).validate()
    assert str(caught.value) == f"claim 1 (domain match): unknown {field} '{value}': the config has {valid}"


def test_cli_refuses_a_bad_claim_in_one_line(tmp_path):
    raw = smoke("cola-tiny")
    raw["claims"][1]["compression"] = "method=wanda-sparsity=0.7"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    out = run_cli("experiment", "--config", str(path), "--store", str(tmp_path / "runs.sqlite"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "claim 2 (COLA vs random)" in out.stderr


def test_unknown_config():
    with pytest.raises(ColaError, match="no experiment config"):
        load_config("nope-not-here")


def test_set_budgets_average_a_corpus_over_every_seed():
    """Issue #29: a set with no math at one seed holds 3.5 math windows on average over seeds 7 and 0,
    not 7 (the mean over the seeds where math appears)."""
    from cola_core.experiments.results import set_budgets

    sets = [
        {"calibration": "cola", "seed": 0, "tokens": 100, "math": 7, "prose": 9},
        {"calibration": "cola", "seed": 1, "tokens": 120, "prose": 16},
        {"calibration": "random", "seed": 0, "tokens": 110, "math": 4, "prose": 12},
    ]
    b = set_budgets(sets)
    assert b.loc["cola", "math"] == 3.5 and b.loc["cola", "prose"] == 12.5 and b.loc["cola", "tokens"] == 110
    assert b.loc["random", "math"] == 4


def test_a_choice_capability_floors_at_chance():
    """Issue #29: facts is 4-way multiple choice, so retention at chance / dense accuracy is a floor
    where no calibration set can differ."""
    from cola_core.evaluation.suite import Score
    from cola_core.experiments.claims import FLOOR, floor_of, separation_limit

    dense = Score("facts", "accuracy", 0.8, 0.7, 0.9, 40)
    assert floor_of("facts", dense) == 0.25 / 0.8 and floor_of("math", dense) == FLOOR
    assert "floor" in separation_limit([0.3, 0.31], floor_of("facts", dense))
    assert separation_limit([0.3, 0.31]) == ""  # above the generic floor
