"""The shareable HTML report (html_report/document.py, `python -m cola_core report`): built from a small real
experiment run into a temporary store, its verdicts, intervals and settings are the experiment
statistics' own; bad input exits 2 with one line and writes nothing; and the written file, opened
from disk in Chromium with every network request blocked, asks for nothing but itself and draws
every chart with a real size (screenshot in /tmp/cola-artifacts/)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from html import unescape
from pathlib import Path

import pytest

from cola_core.cli.main import main
from cola_core.evaluation.runstore import RunStore
from cola_core.experiments.config import load_config
from cola_core.experiments.grid import run_experiment
from cola_core.experiments.plan import plan_runs
from cola_core.experiments.report import judge_claims, summarise
from cola_core.experiments.results import load_results
from cola_core.html_report.document import build_report
from cola_core.html_report.trail import experiment_trails

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path("/tmp/cola-artifacts")
TINY = {
    "name": "report-tiny",
    "description": "Two sets, two seeds, one compression: the report's test experiment.",
    "model": "cola-tiny",
    "n": 8,
    "pool_size": 40,
    "seqlen": 32,
    "seeds": [0, 1],
    "limit": 10,
    "capabilities": ["lm", "math"],
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
            "capability": "math",
            "compression": "method=wanda-sparsity=0.5",
        }
    ],
}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """(config path, store) of the tiny experiment, run for real."""
    d = tmp_path_factory.mktemp("report")
    path = d / "report-tiny.json"
    path.write_text(json.dumps(TINY))
    store = RunStore(d / "runs.sqlite")
    run_experiment(load_config(str(path)), store)
    return path, store


def _text(html: str) -> str:
    body = html.split("</style>", 1)[-1]
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body)))


def test_experiment_report_carries_the_statistics_settings_trail_and_map(experiment):
    path, store = experiment
    cfg = load_config(str(path))
    results = load_results(plan_runs(cfg), store)
    claim = judge_claims(results, cfg.claims).iloc[0]
    html = build_report(store, experiment=str(path))
    text = _text(html)
    assert "Experiment report-tiny" in text and TINY["description"] in text
    assert "8 × 32 tokens, from a pool of 40" in text and "method=wanda, sparsity=0.5" in text
    assert "4 of 4 planned compressed runs finished, and the dense run" in text
    # the verdict and its numbers are judge_claims' own
    assert re.findall(r'class="verdict"[^>]*>(\w+)<', html) == [claim["verdict"]]
    assert f"{claim['difference']:+.3f}" in text
    assert f"[{claim['boot_low']:+.3f}, {claim['boot_high']:+.3f}]" in text
    row = summarise(results).query("calibration == 'math-only' and capability == 'math'").iloc[0]
    assert f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]" in text
    # each set rebuilt, checked against its run's tokens, and mapped
    assert text.count("its tokens match run #") == 2
    assert "Pool: math 20, prose 20" in text and "Pool: math 40" in text
    assert html.count('aria-label="random · seed 0 (PCA)"') == 1
    assert "Mean relative error" in html and "random · method=wanda-sparsity=0.5" in text  # one line per set
    assert "Same prompts, each model" in text and "def add(a, b):" in text and "Not stored" not in text
    assert "<script" not in html and "src=" not in html and "url(" not in html
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) == {"http://www.w3.org/2000/svg"}


def test_a_rebuilt_set_that_differs_from_the_run_is_not_shown(experiment):
    path, _ = experiment
    cfg = load_config(str(path))
    trails = experiment_trails(cfg, {"random": (0, 7, "0000000000000000")})
    assert not trails["random"].verified and "differs from run #7" in trails["random"].status
    assert trails["random"].xy == [] and trails["math-only"].status == "no finished run of this set"
    gone = experiment_trails(replace(cfg, model="/nonexistent/model"), {"random": (0, 7, "x")})
    assert "no longer on disk" in gone["random"].status


def test_a_model_no_longer_on_disk_is_said_and_its_stored_runs_still_report(experiment, monkeypatch):
    from cola_core.html_report import document as html_report
    from cola_core.html_report import trail as calibration_trail

    path, store = experiment
    for module in (html_report, calibration_trail):
        monkeypatch.setattr(module, "model_on_disk", lambda name: False)
    text = _text(build_report(store, experiment=str(path)))
    assert "cola-tiny (no longer on disk: weights as the runs recorded)" in text
    assert "4 of 4 planned compressed runs finished" in text
    assert text.count("not rebuilt: the model cola-tiny is no longer on disk") == 4  # trail table and map list
    assert "(PCA)" not in text


def test_runs_report_compares_the_sets_the_runs_belong_to(experiment):
    _, store = experiment
    runs = store.runs()
    ids = [int(i) for i in runs.loc[runs["calibration"] != "dense", "id"]]
    text = _text(build_report(store, run_ids=ids))
    assert f"Runs {', '.join(f'#{i}' for i in ids)}" in text
    assert "report-tiny/math-only" in text and "− report-tiny/random" in text
    assert re.search(r"(supported|contradicted|inconclusive)", text)
    assert text.count("#1") >= len(ids)  # every run measured against the dense run #1
    assert "Not on disk (no saved model to answer with)" in text


def _bad(argv: list[str], capsys) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


def test_bad_input_is_one_line_exit_2_and_writes_nothing(experiment, tmp_path, capsys):
    _, store = experiment
    out = tmp_path / "r.html"
    base = ["report", "--store", str(store.path), "--out", str(out)]
    assert "unknown experiment 'nope'" in _bad([*base, "--experiment", "nope"], capsys)
    assert "unknown run id(s) 999" in _bad([*base, "--runs", "1,999"], capsys)
    assert "is a finished compressed run" in _bad([*base, "--runs", "1"], capsys)  # the dense run only
    assert "--runs takes run ids" in _bad([*base, "--runs", "a,b"], capsys)
    assert "not allowed with" in _bad([*base, "--runs", "2", "--experiment", "smoke"], capsys)
    assert "one of the arguments" in _bad(base, capsys)
    empty = ["report", "--store", str(tmp_path / "empty.sqlite"), "--out", str(out)]
    assert "no finished runs of experiment 'smoke'" in _bad([*empty, "--experiment", "smoke"], capsys)
    assert not out.exists()
    (tmp_path / "afile").write_text("x")
    unwritable = ["report", "--store", str(store.path), "--runs", "2"]
    assert "is a folder" in _bad([*unwritable, "--out", str(tmp_path)], capsys)
    assert "is a file, not a folder" in _bad([*unwritable, "--out", str(tmp_path / "afile" / "r.html")], capsys)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith((".html", ".tmp"))]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)")
def test_the_written_file_works_offline_in_a_real_browser(experiment, tmp_path, capsys):
    from playwright.sync_api import sync_playwright

    path, store = experiment
    out = tmp_path / "report.html"
    assert main(["report", "--store", str(store.path), "--experiment", str(path), "--out", str(out), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["report"] == str(out) and payload["bytes"] == out.stat().st_size
    html = out.read_text()
    charts = html.count("<svg ")
    assert charts >= 4  # verdicts, retention, two maps
    requested, blocked = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        context = browser.new_context(viewport={"width": 1200, "height": 900})

        def route(r):
            if r.request.url == out.as_uri():
                r.continue_()
            else:
                blocked.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.on("request", lambda r: requested.append(r.url))
        page.goto(out.as_uri())
        page.wait_for_load_state("load")
        boxes = [svg.bounding_box() for svg in page.locator("svg").all()]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report-tiny.png"), full_page=True)
        headings = page.locator("h2").all_inner_texts()
        browser.close()
    print(f"screenshot: {ARTIFACTS / 'report-tiny.png'}")
    assert requested == [out.as_uri()] and blocked == []
    assert len(boxes) == charts and all(b and b["width"] > 0 and b["height"] > 0 for b in boxes), boxes
    assert {"Verdicts", "Retention", "The map", "Per-layer errors"} <= set(headings)
