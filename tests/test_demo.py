"""The demo (experiments/demo.py, `python -m cola_core demo`): the built-in preset is the comparison the issue
asks for; a run writes the report and prints experiment, report, runs and verdicts; a second run
reuses every finished run. The test swaps in a smaller config so it stays cheap; the real preset's
wall time is measured in docs/cli.md."""

from __future__ import annotations

import json

import pytest

from cola_core.cli.main import main
from cola_core.compress import CompressConfig
from cola_core.evaluation.runstore import RunStore
from cola_core.experiments import demo as demo_module
from cola_core.experiments.config import load_config
from cola_core.experiments.demo import run_demo

VERDICTS = {"supported", "contradicted", "inconclusive", "untestable"}
SMALL = {
    "name": "demo-small",
    "description": "The demo's machinery on a smaller grid.",
    "model": "cola-tiny",
    "n": 8,
    "pool_size": 40,
    "seqlen": 32,
    "seeds": [0, 1],
    "limit": 10,
    "capabilities": ["lm"],  # perplexity only: generation (math) is the slow part of a run
    "calibration_sets": [
        {"name": "random", "corpora": ["math", "prose"], "strategy": "random"},
        {"name": "math-only", "corpora": ["math"], "strategy": "random"},
    ],
    "compression": [{"method": "wanda", "sparsity": 0.5}],
    "claims": [
        {
            "title": "domain match",
            "better": "math-only",
            "worse": "random",
            "capability": "lm",
            "compression": "method=wanda-sparsity=0.5",
        }
    ],
}


def test_the_builtin_demo_leads_with_the_domain_and_sets_cola_beside_it():
    """Issue #30: the headline is the robust finding (math-only vs generic text on math, a family of
    its own), with COLA, COLA-quota and random selected from one pool beside it; the claims ask about
    these items (seeds averaged item by item), one quantization setting, three seeds."""
    cfg = load_config("demo")
    sets = {s.name: cfg.curate_config(s, 0) for s in cfg.calibration_sets}
    pool = sets["random"].corpora
    assert sets["cola"].corpora == pool == sets["cola-quota"].corpora and len(pool) == 2
    assert (sets["cola"].strategy, sets["cola-quota"].strategy, sets["random"].strategy) == (
        "cola",
        "cola-quota",
        "random",
    )
    assert sets["math-only"].corpora == ("math",) and sets["generic"].corpora == ("prose",)
    assert len(cfg.seeds) == 3 and cfg.claims_over == "items"
    assert [CompressConfig(**c).is_pruning for c in cfg.compression] == [False]
    headline = [c for c in cfg.claims if c.get("family") == "headline"]
    assert [(c["better"], c["worse"], c["capability"]) for c in headline] == [("math-only", "generic", "math")]
    assert {c["better"] for c in cfg.claims} >= {"cola", "cola-quota"}


@pytest.mark.slow
def test_demo_writes_the_report_prints_verdicts_and_resumes(tmp_path, monkeypatch, capsys):
    config = tmp_path / "demo-small.json"
    config.write_text(json.dumps(SMALL))
    monkeypatch.setattr(demo_module, "DEMO_CONFIG", str(config))
    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path / "cache"))
    store_path, out = tmp_path / "runs.sqlite", tmp_path / "first.html"
    assert main(["demo", "--json", "--store", str(store_path), "--out", str(out)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["experiment"] == "demo-small" and payload["report"] == str(out) and payload["runs"] == 4
    assert [v["verdict"] in VERDICTS for v in payload["verdicts"]] == [True]
    html = out.read_text()
    assert "Experiment demo-small" in html and f">{payload['verdicts'][0]['verdict']}</span>" in html
    before = RunStore(store_path).runs()[["id", "key", "status", "started", "finished"]]

    lines: list[str] = []
    again = run_demo(RunStore(store_path), lines.append)
    assert again.runs == 4 and again.verdicts == payload["verdicts"]
    after = RunStore(store_path).runs()[["id", "key", "status", "started", "finished"]]
    assert after.equals(before)  # nothing was run again
    assert "skip random seed 0: done" in lines and not any(line.startswith("done ") for line in lines)


def test_the_demos_progress_reads_as_words_with_a_time_left():
    """Issue #30: progress names the set, setting and seed, not hashes, and estimates the time left."""
    from cola_core.app.demo_job import DemoState, readable

    line = "done demo/cola-quota/bits=3-group_size=32-method=gptq/2/9ec80dc1339a0ebb in 3s"
    assert readable(line) == "cola-quota · GPTQ 3-bit g32 · seed 2 finished (3 s)"
    assert readable("demo: experiment demo into /srv/cache/runs.sqlite") == "planning the runs"  # no server path
    assert readable("skip cola seed 0: done") == "skip cola seed 0: done"
    state = DemoState(status="running", runs_total=16, runs_done=5, first_done=100.0)
    assert state.remaining(now=120.0) == pytest.approx(5.0 * 11)  # 4 runs in 20 s, 11 to go
    assert DemoState(runs_total=16, runs_done=1, first_done=100.0).remaining(now=200.0) is None
