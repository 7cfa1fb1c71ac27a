from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ui import charts
from ui.charts import PROBE_PREFIX

PAGES = Path(__file__).resolve().parent.parent / "pages"


def test_setup_page_renders_and_previews():
    at = AppTest.from_file(str(PAGES / "setup.py"), default_timeout=120).run()
    assert not at.exception
    assert any("Loaded **cola-tiny**" in s.value for s in at.success)
    at.selectbox(key="preview_corpus").set_value("facts").run()
    assert not at.exception
    assert "facts/pool/000000" in at.dataframe[1].value["id"].tolist()


def test_unknown_model_shows_friendly_error():
    at = AppTest.from_file(str(PAGES / "setup.py"), default_timeout=120).run()
    at.text_input[0].input("nobody/no-such-model").run()
    assert not at.exception
    assert any("could not load model" in e.value for e in at.error)


def _space_app(model_dir, cache_dir, monkeypatch):
    monkeypatch.setenv("COLA_CACHE_DIR", str(cache_dir))
    at = AppTest.from_file(str(PAGES / "space.py"), default_timeout=300)
    at.session_state["model"] = model_dir
    at.session_state["corpora"] = ["math", "facts"]
    at.session_state["pool_size"] = 80
    at.session_state["n"] = 8
    return at


def test_space_page_explains_what_to_click_first(tiny_model_dir, tmp_path, monkeypatch):
    at = _space_app(tiny_model_dir("llama"), tmp_path, monkeypatch).run()
    assert not at.exception
    assert any("Build space" in i.value for i in at.info)


def test_space_page_builds_selects_and_reacts_to_lambda(tiny_model_dir, tmp_path, monkeypatch):
    at = _space_app(tiny_model_dir("llama"), tmp_path, monkeypatch)
    at.session_state["space_ready"] = True
    at.session_state["mix_mode"] = "equal"  # 40 math then 40 facts (Stage 1's mix depends on the model)
    at.run()
    assert not at.exception
    assert any("80 samples" in c.value for c in at.caption)
    before = at.session_state["calibration_jsonl"]
    assert before.count("\n") == 8
    at.slider(key="lam").set_value(0.0).run()
    assert not at.exception and at.session_state["calibration_jsonl"] != before
    at.session_state["exclude"] = list(range(40))
    at.run()
    ids = [line.split('"id": "')[1].split('"')[0] for line in at.session_state["calibration_jsonl"].splitlines()]
    assert len(ids) == 8 and all(i.startswith("facts/") for i in ids)  # the first 40 pool samples are math
    at.session_state["exclude"] = []
    at.radio(key="strategy").set_value("cola-quota").run()
    assert not at.exception
    mix = next(df.value for df in at.dataframe if "pool share" in df.value.columns)
    assert mix["pool"].to_dict() == {"facts": 40, "math": 40} and mix["selection"].to_dict() == {"facts": 4, "math": 4}
    assert any("within each corpus" in c.value for c in at.caption)  # the strategy's one line, from the registry


def test_compress_page_explains_the_empty_state():
    at = AppTest.from_file(str(PAGES / "compress.py"), default_timeout=120).run()
    assert not at.exception
    assert any("Activation space" in i.value for i in at.info)


def test_jobs_run_in_the_background_and_land_in_the_store(tiny_model_dir, tmp_path, monkeypatch):
    import json
    import time

    from cola_core.app.jobs import JobQueue
    from cola_core.compress import CompressConfig
    from cola_core.corpora import load_records
    from cola_core.evaluation.runstore import RunStore

    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path))
    queue = JobQueue(RunStore(tmp_path / "runs.sqlite"))
    records = load_records("math", "pool", limit=8)
    first = queue.submit(tiny_model_dir("llama"), "math", records, CompressConfig(method="wanda"), seqlen=32, limit=4)
    second = queue.submit(
        tiny_model_dir("llama"),
        "math",
        records,
        CompressConfig(method="rtn", bits=4, group_size=16),
        seqlen=32,
        limit=4,
    )
    queue.cancel(second)
    deadline = time.time() + 300
    while time.time() < deadline and any(j["status"] in ("queued", "running") for j in queue.snapshot()):
        time.sleep(0.2)
    status = {j["run_id"]: j["status"] for j in queue.snapshot()}
    assert status == {first: "done", second: "cancelled"}
    assert queue.store.get(first)["status"] == "done" and "math" in queue.store.score_items(first)
    assert queue.store.get(second)["status"] == "cancelled"
    report = json.loads(queue.store.get(first)["report"])
    assert report["out"] == str(tmp_path / "runs" / f"run-{first}") and len(report["layers"]) == 2
    assert (tmp_path / "runs" / f"run-{first}" / "compression_report.json").exists()
    assert not (tmp_path / "runs" / f"run-{second}").exists() and not list((tmp_path / "runs").glob(".*tmp"))


def test_setup_stage1_heatmap_mix_and_stage2_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path))
    at = AppTest.from_file(str(PAGES / "setup.py"), default_timeout=300)
    at.session_state["corpora"] = ["math", "facts"]
    at.run()
    assert any("Score the corpora" in c.value for c in at.caption)
    at.button(key="score_stage1").click().run()
    assert not at.exception and not at.error
    table = at.session_state["stage1"]
    assert set(table["corpus"]) == {"math", "facts"} and len(table) == 8  # 2 corpora × 4 capabilities
    assert len(at.get("plotly_chart")) == 1
    mix = at.dataframe[-1].value["recommended share"]
    assert mix.sum() == pytest.approx(1.0, abs=1e-3)
    # Targeted at math: the math corpus gets the larger share.
    at.radio(key="deployment").set_value("targeted").run()
    at.selectbox(key="target").set_value("math").run()
    mix = at.dataframe[-1].value["recommended share"]
    assert mix["math"] > mix["facts"]
    at.number_input(key="seqlen").set_value(64).run()
    at.selectbox(key="reasoning_format").set_value("plain").run()
    assert at.session_state["seqlen"] == 64 and at.session_state["reasoning_format"] == "plain"


def test_setup_adds_hf_and_self_generated_corpora(tmp_path, monkeypatch):
    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path))
    at = AppTest.from_file(str(PAGES / "setup.py"), default_timeout=300).run()
    at.text_input[1].input("hf:nobody/no-such-dataset")
    at.button(key="add_hf").click().run()
    assert not at.exception and any("could not load dataset 'nobody/no-such-dataset'" in e.value for e in at.error)
    assert at.session_state["custom_corpora"] == {}
    at.number_input[0].set_value(10)
    at.button(key="self_generate").click().run()
    assert not at.exception
    ((spec, label),) = at.session_state["custom_corpora"].items()
    assert label == "self-generated (10)" and spec.startswith(str(tmp_path / "selfgen"))
    assert spec in at.multiselect(key="corpora").options or label in at.multiselect(key="corpora").options


def test_space_page_shades_the_density_of_points_it_does_not_draw(tiny_model_dir, tmp_path, monkeypatch):
    import json

    at = _space_app(tiny_model_dir("llama"), tmp_path, monkeypatch)
    at.session_state["pool_size"] = 240
    at.session_state["space_ready"] = True
    at.run()
    next(w for w in at.number_input if w.label.startswith("Max points")).set_value(100).run()  # 100 of each 120
    assert not at.exception
    assert any("Drawing 200 of 240 points" in c.value and "density" in c.value for c in at.caption)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    legend_only = ("chosen (large, ringed)", "excluded by you (×)")  # entries that say what the marks mean
    pool = [t for t in spec["data"] if not t["name"].startswith(PROBE_PREFIX) and t["name"] not in legend_only]
    kinds = [t["type"] for t in pool]
    assert kinds[0] == "heatmap" and kinds.count("scattergl") == 2
    drawn = sum(_length(t["x"]) for t in pool if t["type"] == "scattergl")
    assert drawn == 200


def test_space_page_overlays_the_capability_probes_and_their_coverage(tiny_model_dir, tmp_path, monkeypatch):
    import json

    import numpy as np

    from cola_core.app.workspace import prepare_space, probe_positions, probes_of

    at = _space_app(tiny_model_dir("llama"), tmp_path, monkeypatch)
    at.session_state["space_ready"] = True
    at.session_state["mix_mode"] = "equal"  # 40 math then 40 facts (Stage 1's mix depends on the model)
    at.run()
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    probes = [t for t in spec["data"] if t["name"].startswith(PROBE_PREFIX)]
    assert [t["name"] for t in probes] == [f"{PROBE_PREFIX}{c}" for c in ("prose", "code", "math", "facts")]
    assert len({t["marker"]["symbol"] for t in probes}) == 4 and not any("customdata" in t for t in probes)
    # Placed by the PCA preview's own projection: the page shows what probe_positions computes.
    space = prepare_space(at.session_state["space_settings"])
    expected = probe_positions(space, probes_of(space))
    math = next(t for t in probes if t["name"].endswith("math"))
    assert _length(math["x"]) == len(expected["math"]) == 100
    np.testing.assert_allclose(_values(math["x"]), expected["math"][:, 0], rtol=1e-5, atol=1e-5)
    coverage = {m.label: float(m.value) for m in at.metric if m.label.endswith(" probes")}
    assert set(coverage) == {"prose probes", "code probes", "math probes", "facts probes"}
    assert all(-1.0 <= v <= 1.0 for v in coverage.values())
    at.toggle(key="show_probes").set_value(False).run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert not any(t["name"].startswith(PROBE_PREFIX) for t in spec["data"])
    assert len([m for m in at.metric if m.label.endswith(" probes")]) == 4  # coverage stays beside the metrics


def test_space_map_draws_each_capability_in_its_own_marker():
    import numpy as np

    rng = np.random.default_rng(0)
    xy = rng.standard_normal((20, 2))
    probes = {"math": rng.standard_normal((5, 2)), "code": rng.standard_normal((3, 2))}
    fig = charts.space_map(xy, ["a"] * 20, ["t"] * 20, np.arange(20), set(), "t", probes=probes)
    drawn = [t for t in fig.data if t.name.startswith(PROBE_PREFIX)]
    assert [t.name for t in drawn] == [f"{PROBE_PREFIX}math", f"{PROBE_PREFIX}code"]
    assert drawn[0].marker.symbol != drawn[1].marker.symbol and drawn[0].marker.color != drawn[1].marker.color
    np.testing.assert_array_equal(drawn[0].x, probes["math"][:, 0])
    assert all(t.customdata is None for t in drawn)  # a lasso over them picks no pool sample
    plain = charts.space_map(xy, ["a"] * 20, ["t"] * 20, np.arange(20), set(), "t")
    assert not any(t.name.startswith(PROBE_PREFIX) for t in plain.data)


def _values(values) -> list[float]:
    """A plotly array's numbers (plain list, or the base64 typed-array form plotly 6+ sends)."""
    if isinstance(values, dict):
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def _length(values) -> int:
    """Points in a plotly array (plain list, or the base64 typed-array form plotly 6+ sends)."""
    if isinstance(values, dict):
        import base64

        return len(base64.b64decode(values["bdata"])) // int(values["dtype"][1:])
    return len(values)


def test_a_corpus_has_one_hue_for_its_samples_and_its_probes_and_the_legend_says_what_marks_mean():
    """Issue #30: math probes were red like the facts pool; chosen and excluded had no legend."""
    import numpy as np

    from ui import charts

    xy = np.random.default_rng(0).normal(size=(6, 2))
    corpus = ["math", "math", "facts", "facts", "prose", "prose"]
    fig = charts.space_map(
        xy, corpus, [""] * 6, np.arange(6), {0, 2}, "t", probes={"math": xy[:2], "facts": xy[2:4]}, excluded={5}
    )
    by_name = {t.name: t for t in fig.data}
    assert by_name["math"].marker.color == by_name[f"{charts.PROBE_PREFIX}math"].marker.color
    assert by_name["facts"].marker.color == by_name[f"{charts.PROBE_PREFIX}facts"].marker.color
    assert by_name["math"].marker.color != by_name["facts"].marker.color
    assert "chosen (large, ringed)" in by_name and list(by_name["excluded by you (×)"].x) == [xy[5, 0]]
    from cola_core.app.palette import CORPUS_COLOURS, colours_of

    again = colours_of(["cluster 1", "math"])  # the same hue whatever else is on the map
    assert again["math"] == colours_of(["math", "code", "facts"])["math"] == CORPUS_COLOURS["math"]


def test_space_page_of_a_moe_model_offers_cola_experts_and_shows_expert_coverage(tiny_model_dir, tmp_path, monkeypatch):
    at = _space_app(tiny_model_dir("qwen3_moe"), tmp_path, monkeypatch)
    at.session_state["space_ready"] = True
    at.run()
    assert not at.exception
    assert "cola-experts" in at.radio(key="strategy").options
    assert any(m.label == "Expert coverage" for m in at.metric)
    at.radio(key="strategy").set_value("cola-experts").run()
    assert not at.exception and not at.error
    dense = _space_app(tiny_model_dir("llama"), tmp_path, monkeypatch)
    dense.session_state["space_ready"] = True
    dense.session_state["strategy"] = "cola-experts"  # kept from a MoE model's space
    dense.run()
    assert not dense.exception and "cola-experts" not in dense.radio(key="strategy").options
    assert dense.radio(key="strategy").value == "cola" and not any(m.label == "Expert coverage" for m in dense.metric)
