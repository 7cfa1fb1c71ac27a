import json

import pytest

from cola_core.errors import ColaError
from cola_core.evaluation.runstore import RunStore
from cola_core.experiments.config import BUILTIN_DIR, ExperimentConfig, list_builtin, load_config
from cola_core.experiments.grid import run_experiment
from cola_core.experiments.report import judge_claim, markdown_report, summarise


@pytest.fixture
def config(tiny_model_dir):
    raw = json.loads((BUILTIN_DIR / "smoke.json").read_text())
    raw["model"] = tiny_model_dir("llama")
    raw["limit"] = 8
    raw["pool_size"] = 60
    raw["n"] = 8
    return ExperimentConfig.from_dict(raw)


def test_builtin_configs_parse():
    assert {"paper-claims", "smoke"} <= set(list_builtin())
    cfg = load_config("paper-claims")
    assert len(cfg.seeds) >= 3 and len(cfg.claims) >= 3
    sets = {c.name for c in cfg.calibration_sets}
    for claim in cfg.claims:
        assert claim["better"] in sets and claim["worse"] in sets


def test_runs_are_recorded_and_resumed(config, tmp_path, monkeypatch):
    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path / "cache"))
    store = RunStore(tmp_path / "runs.sqlite")
    logs: list[str] = []
    table = run_experiment(config, store, log=logs.append)
    runs = store.runs(config.name)
    assert len(runs) == 1 + 3 * 2 and (runs["status"] == "done").all()
    assert set(table["calibration"]) == {"random", "math-only", "cola"} and table["retention"].notna().all()
    logs.clear()
    again = run_experiment(config, store, log=logs.append)
    assert len(store.runs(config.name)) == 7 and sum("skip" in line for line in logs) == 6
    assert len(again) == len(table)
    summary = summarise(table)
    verdict = judge_claim(summary, table, config.claims[0])
    assert verdict["verdict"] in {"supported", "not supported", "inconclusive"}
    report = markdown_report(config, table, "python -m cola_core experiment --config smoke")
    assert ("## Claims" in report and "| math-only |" in report) or "math-only" in report


def test_unknown_config():
    with pytest.raises(ColaError, match="no experiment config"):
        load_config("nope-not-here")
