"""Launching several calibration sets, saved run models, and the Compare page's frames and views."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from transformers import AutoModelForCausalLM

from cola_core.app import jobs as jobs
from cola_core.app.compare import answers_side_by_side, finished_runs, layer_errors, proxy_vs_retention, retention_table
from cola_core.app.workspace import SpaceSettings, calibration_sets, prepare_space
from cola_core.compress import CompressConfig
from cola_core.evaluation.runstore import RunStore
from tests.test_pages import PAGES


def _wait(queue, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline and any(j["status"] in ("queued", "running") for j in queue.snapshot()):
        time.sleep(0.2)


@pytest.fixture
def world(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path))
    queue = jobs.JobQueue(RunStore(tmp_path / "runs.sqlite"))
    monkeypatch.setattr(jobs, "_QUEUE", queue)
    settings = SpaceSettings.of(model=tiny_model_dir("llama"), corpora=("math", "facts"), pool_size=60, seqlen=32)
    return queue, settings, prepare_space(settings)


def test_launch_sets_save_models_and_compare(world):
    queue, settings, space = world
    sets = calibration_sets(space, ("tradeoff", "random"), (0, 1), n=8)
    assert [s.name for s in sets] == [
        "tradeoff λ=0.5 n=8 seed=0",
        "tradeoff λ=0.5 n=8 seed=1",
        "random n=8 seed=0",
        "random n=8 seed=1",
    ]
    assert all(len(s.records) == 8 and set(s.proxy) == {"lm", "code", "math", "facts"} for s in sets)
    assert {r.id for r in sets[2].records} != {r.id for r in sets[3].records}  # seeds differ
    for cs in sets[:3]:
        queue.submit(
            settings.model,
            cs.name,
            cs.records,
            CompressConfig(method="wanda"),
            seqlen=32,
            limit=4,
            extra={"strategy": cs.strategy, "seed": cs.seed, "proxy": cs.proxy},
        )
    _wait(queue)
    runs = finished_runs(queue.store, settings.model)
    assert len(runs) == 3
    dense_of = {int(i): jobs.dense_scores(settings.model, 4) for i in runs["id"]}
    table = retention_table(queue.store, runs, dense_of)
    assert set(table["capability"]) >= {"lm", "code", "math", "facts"}
    scored = (table["dense"] > 0) | (table["capability"].isin(["lm", "code"]))  # perplexities always are
    assert np.isfinite(table.loc[scored, "retention"]).all() and scored.any()
    assert table.loc[~scored, "retention"].isna().all()  # a dense accuracy of 0 leaves nothing to retain
    errors = layer_errors(runs)
    assert len(errors) == 3 * 2 and (errors["mean_error"] > 0).all()
    points, corr = proxy_vs_retention(runs, table)
    assert set(points["capability"]) >= {"lm", "code", "math", "facts"} and (corr["runs"] == 3).all()
    import json

    out = json.loads(runs.iloc[0]["report"])["out"]
    saved = AutoModelForCausalLM.from_pretrained(out)
    w = saved.model.layers[0].mlp.down_proj.weight
    assert float((w == 0).float().mean()) == pytest.approx(0.5)
    answers = answers_side_by_side(
        {"dense": settings.model, "wanda": out}, ["Question: What is 2 plus 2?\n", "The town of"], 8
    )
    assert list(answers.columns) == ["prompt", "dense", "wanda"] and len(answers) == 2


def test_compress_and_compare_pages(world):
    queue, settings, _ = world
    at = AppTest.from_file(str(PAGES / "compress.py"), default_timeout=300)
    at.session_state["space_settings"] = settings
    at.session_state["n"] = 8
    at.run()
    assert not at.exception
    at.multiselect[0].set_value(["random"])
    at.text_input[0].input("0,1")
    at.button[0].click().run()  # the form's Launch
    assert not at.exception and not at.error
    assert len(queue.snapshot()) == 4  # (tradeoff + random) × 2 seeds
    _wait(queue)
    page = AppTest.from_file(str(PAGES / "compare.py"), default_timeout=300)
    page.session_state["space_settings"] = settings
    page.run()
    assert not page.exception
    assert len(page.get("plotly_chart")) == 3  # retention, per-layer error, proxy vs retention
    page.button[0].click().run()
    assert not page.exception and len(page.table) == 1


def test_compare_page_empty_state(world):
    at = AppTest.from_file(str(PAGES / "compare.py"), default_timeout=120).run()
    assert not at.exception and any("No finished compression runs" in i.value for i in at.info)


def test_awq_table_lists_each_group_of_awq_runs_only(tiny_model_dir, calib):
    """The Compare page's AWQ table comes from the runs' reports: one row per layer and group."""
    import json

    from transformers import AutoModelForCausalLM

    from cola_core.app.compare import awq_groups
    from cola_core.compress import compress_model
    from cola_core.compress.save import build_report
    from tests.conftest import make_config

    model = AutoModelForCausalLM.from_config(make_config("llama", 300)).eval()
    cfg = CompressConfig(method="awq", bits=4, group_size=16, device="cpu")
    report = build_report(compress_model(model, calib, cfg), cfg, "fp", 12, 24)
    runs = pd.DataFrame(
        [
            {"id": 1, "settings": json.dumps({"method": "awq"}), "calibration": "cola", "report": json.dumps(report)},
            {"id": 2, "settings": json.dumps({"method": "wanda"}), "calibration": "cola", "report": "{}"},
        ]
    )
    table = awq_groups(runs)
    groups = sum(len(layer["awq"]["groups"]) for layer in report["layers"])
    assert len(table) == groups > 0 and set(table["run"]) == {"#1 AWQ 4-bit g128 · cola"}
    assert (table["error AWQ"] <= table["error RTN"] + 1e-9).all()


def test_awq_table_names_a_mixture_of_experts_group_compactly():
    from cola_core.app.compare import compact_names

    block = ["mlp.gate", *(f"mlp.experts.{e}.{p}" for e in range(64) for p in ("gate_proj", "up_proj"))]
    assert compact_names(block) == "mlp.gate, mlp.experts.*.gate_proj (×64), mlp.experts.*.up_proj (×64)"
    assert compact_names(["mlp.experts.3.down_proj"]) == "mlp.experts.3.down_proj"
    assert compact_names(["self_attn.q_proj", "self_attn.k_proj"]) == "self_attn.q_proj, self_attn.k_proj"


def test_moe_runs_show_tokens_per_expert_in_compare(tiny_model_dir, tmp_path, monkeypatch):
    """A mixture-of-experts model through the dashboard: the space reports expert coverage, the job
    compresses every expert, and Compare shows each expert's calibration tokens."""
    import json

    from cola_core.app.compare import expert_tokens
    from cola_core.curation.pipeline import measure, run_selection

    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path))
    queue = jobs.JobQueue(RunStore(tmp_path / "runs.sqlite"))
    monkeypatch.setattr(jobs, "_QUEUE", queue)
    settings = SpaceSettings.of(model=tiny_model_dir("qwen3_moe"), corpora=("math", "facts"), pool_size=40, seqlen=32)
    space = prepare_space(settings)
    (cs,) = calibration_sets(space, ("cola",), (0,), n=8)
    selection = run_selection(space.embedded, settings.selection(8, "cola", seed=0))
    assert [space.records[i] for i in selection.indices] == cs.records
    assert 0 <= measure(space.embedded, selection).expert_coverage <= 1
    queue.submit(settings.model, cs.name, cs.records, CompressConfig(method="wanda"), seqlen=32, limit=4)
    queue.submit(settings.model, cs.name, cs.records, CompressConfig(method="awq", group_size=16), seqlen=32, limit=4)
    _wait(queue)
    runs = finished_runs(queue.store, settings.model)
    assert len(runs) == 2
    table = expert_tokens(runs)
    assert len(table) == 2 * 2 * 8 and (table["statistic tokens"] >= table["routed tokens"]).all()
    report = json.loads(runs.iloc[0]["report"])
    assert report["experts"]["experts"] == 16
    page = AppTest.from_file(str(PAGES / "compare.py"), default_timeout=300)
    page.session_state["space_settings"] = settings
    page.run()
    assert not page.exception
    assert any("calibration tokens per expert" in h.value for h in page.subheader)
    awq = next(d.value for d in page.dataframe if "alpha" in d.value.columns)  # the block as one group
    block = "mlp.gate, mlp.experts.*.gate_proj (×8), mlp.experts.*.up_proj (×8)"
    assert (awq["linears"] == block).sum() == 2 and (awq["folded into"] == "post_attention_layernorm").any()
