"""The landing page (pages/home.py): first in the app, COLA's three stages, the stepper across Setup →
Space → Compress → Compare (ui/flow.py) and the way to what comes next."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cola_core.app import demo_job, jobs
from cola_core.app.workspace import SpaceSettings
from cola_core.curation import map2d
from cola_core.evaluation.runstore import RunStore
from cola_core.experiments.config import BUILTIN_DIR, compression_label
from ui.diagram import stages_svg
from ui.flow import steps

VERDICTS = {"supported", "contradicted", "inconclusive", "untestable"}
APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def app(tmp_path, monkeypatch):
    """The whole app (navigation included) on an empty run store; the UMAP warm-up recorded, not run."""
    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path))
    store = RunStore(tmp_path / "runs.sqlite")
    monkeypatch.setattr(jobs, "_QUEUE", jobs.JobQueue(store))
    warmed: list[int] = []
    monkeypatch.setattr(map2d, "warm_up", lambda *a, **k: warmed.append(1))
    return AppTest.from_file(APP, default_timeout=120), store, warmed


def _status(at: AppTest) -> dict[str, str]:
    """Step name → its status, as the stepper shows them (link label '2. Space', caption ':blue[**next**] · …')."""
    names = [link.proto.label.split(". ", 1)[1] for link in at.get("page_link")]
    return dict(zip(names, [c.value.split("**")[1] for c in at.caption], strict=True))


def test_the_landing_page_comes_first_tells_cola_in_three_stages_and_opens_setup(app):
    at, _, warmed = app
    at.run()
    assert not at.exception
    assert [t.value for t in at.title] == ["COLA Studio"]
    text = " ".join(m.value for m in at.markdown)
    for stage in ("Stage 1 · which data", "Stage 2 · how it is shaped", "Stage 3 · which samples"):
        assert stage in text
    for idea in ("domain correspondence", "reasoning format", "random-project", "k-means (k = n)", "nearest each"):
        assert idea in text
    assert "<svg" in text and text.count("<svg") == 1
    assert warmed == [1]  # app.py starts the UMAP warm-up
    assert [b.label for b in at.button if "demo" in b.label.lower()] == ["Run the demo"]
    at.button(key="next_step").click().run()  # "Start: choose the model and corpora on Setup →"
    assert not at.exception
    assert [t.value for t in at.title] == ["Setup"]


def test_the_stepper_follows_the_session(app):
    at, store, _ = app
    at.run()
    assert _status(at) == {"Setup": "next", "Space": "later", "Compress": "later", "Compare": "later"}
    links = {link.proto.label: link.proto.page for link in at.get("page_link")}
    assert links["→ 1. Setup"] == "setup"
    at.session_state["model_loaded"] = True
    at.run()
    assert _status(at)["Setup"] == "done" and _status(at)["Space"] == "next"
    assert "build the activation space" in at.button(key="next_step").label
    at.session_state["space_settings"] = SpaceSettings()
    at.run()
    assert _status(at) == {"Setup": "done", "Space": "done", "Compress": "next", "Compare": "later"}
    run_id = store.create(SpaceSettings().model, calibration="math")
    store.finish(run_id, {})
    at.run()  # another session's run (or the demo another session ran) is not this session's step
    assert _status(at)["Compress"] == "next"
    at.session_state["launched"] = [run_id]  # as the Compress page records a launch
    at.run()
    assert _status(at)["Compress"] == "done" and _status(at)["Compare"] == "next"


def test_steps_imply_earlier_ones_and_say_what_to_do():
    statuses = [s.status for s in steps(model_loaded=False, space_built=False, runs_finished=0)]
    assert statuses == ["next", "later", "later", "later"]
    statuses = [s.status for s in steps(model_loaded=False, space_built=True, runs_finished=0)]
    assert statuses == ["done", "done", "next", "later"]  # a built space implies a setup
    running = steps(model_loaded=True, space_built=True, runs_finished=0, runs_active=1)
    assert running[2].status == "next" and running[2].action.startswith("Watch")
    finished = steps(model_loaded=True, space_built=True, runs_finished=2)
    assert [s.status for s in finished] == ["done", "done", "done", "next"]


def test_the_diagram_is_self_contained_svg():
    svg = stages_svg()
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "\n" not in svg
    assert "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no network asset
    for title in ("1 · Which data", "2 · How it is shaped", "3 · Which samples", "k-means"):
        assert title in svg


def test_run_the_demo_runs_in_the_background_and_lands_on_the_verdicts(app, tmp_path, monkeypatch):
    """The landing page's button runs the demo (cola_core.experiments.demo.run_demo, here on a smaller config of
    the same shape), shows progress, then lands on Compare, whose A/B view shows verdict words."""
    at, store, _ = app
    raw = json.loads((BUILTIN_DIR / "demo.json").read_text())
    raw.update(n=8, pool_size=60, seqlen=32, limit=8, seeds=[0, 1], compression=raw["compression"][:1])
    raw["claims"] = [c for c in raw["claims"] if c["compression"] == compression_label(raw["compression"][0])]
    config = tmp_path / "demo-small.json"
    config.write_text(json.dumps(raw))
    runner = demo_job.DemoRunner(store, str(config))
    monkeypatch.setattr(demo_job, "_RUNNERS", {f"{store.path}|None": runner})
    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path / "cache"))
    at.run()
    at.button(key="run_demo").click().run()
    assert not at.exception
    for _ in range(600):  # the runner's thread, not the page, does the work
        if runner.snapshot().status != "running":
            break
        time.sleep(0.5)
    final = runner.snapshot()
    assert final.status == "done", final.error
    assert final.runs_done == final.runs_total == 1 + 5 * 2  # dense + 5 sets × 2 seeds × 1 setting
    assert {v["verdict"] for v in final.result.verdicts} <= VERDICTS
    at.run()  # the progress fragment sees it finished and switches to Compare
    assert not at.exception
    assert [t.value for t in at.title] == ["Compare"]
    shown = " ".join(str(df.value.to_dict()) for df in at.dataframe)
    assert any(word in shown for word in ("supported", "contradicted", "inconclusive"))
