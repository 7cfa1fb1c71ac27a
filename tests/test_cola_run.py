"""COLA end to end (issue #17): Stage 1 → 2 → 3 in one `curate` run, each stage's effect shown on data
made to show it; presets; the sequence length travelling with the calibration set into `compress`."""

from __future__ import annotations

import json

import pytest

from cola_core.cli.main import main
from cola_core.curation.pipeline import CurateConfig, pool_counts, pool_plan
from cola_core.errors import ColaError
from cola_core.models.loading import load_model


def _run(capsys, *argv: str) -> dict:
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_pool_counts_add_up_and_follow_the_shares():
    counts = pool_counts({"a": 0.5, "b": 0.3, "c": 0.2, "d": 0.0}, 101)
    assert sum(counts.values()) == 101 and "d" not in counts
    assert counts["a"] > counts["b"] > counts["c"]


def test_targeted_math_deployment_builds_a_math_heavy_pool(tiny_model_dir, cache):
    loaded = load_model(tiny_model_dir("llama"))
    corpora, caps = ("prose", "code", "math", "facts"), ("prose", "code", "math", "facts")
    base = CurateConfig(corpora=corpora, capabilities=caps, pool_size=200, stage1_samples=40)
    general, _ = pool_plan(loaded, base)
    targeted, why = pool_plan(loaded, CurateConfig(**{**base.__dict__, "deployment": "targeted", "target": "math"}))
    assert sum(targeted.values()) == 200 and why["source"] == "stage1" and "math" in why["why"]
    assert targeted["math"] > general["math"] and targeted["math"] == max(targeted.values())
    assert targeted["math"] >= 0.4 * 200  # the target weighs 3× the other capabilities
    equal, why_equal = pool_plan(loaded, CurateConfig(**{**base.__dict__, "stage1": False}))
    assert equal == dict.fromkeys(corpora, 50) and why_equal["source"] == "equal"
    weighted, why_w = pool_plan(loaded, CurateConfig(**{**base.__dict__, "weights": (("code", 1.0),)}))
    assert weighted["code"] == max(weighted.values()) and "code 1" in why_w["why"]
    mine, why_mine = pool_plan(loaded, CurateConfig(**{**base.__dict__, "mix": (("code", 3.0), ("prose", 1.0))}))
    assert mine == {"code": 150, "prose": 50} and why_mine["source"] == "user"


def test_curate_runs_the_three_stages_and_says_what_each_did(tiny_model_dir, cache, capsys):
    model = tiny_model_dir("llama")
    common = ["curate", "--model", model, "--corpora", "math,facts", "--capabilities", "math,facts"]
    common += ["--pool-size", "80", "--n", "8", "--per-corpus", "30", "--seqlen", "64"]
    out = _run(capsys, *common, "--deployment", "targeted", "--target", "math", "--out", str(cache / "a.jsonl"))
    assert out["stage1"]["source"] == "stage1" and out["stage1"]["deployment"] == "targeted"
    assert out["stage1"]["pool_mix"]["math"] > out["stage1"]["pool_mix"].get("facts", 0)
    assert sum(out["stage1"]["pool_mix"].values()) == 80
    s2 = out["stage2"]
    assert s2["samples_in"] == 80 and s2["samples_out"] <= 80 and s2["seqlen"] == out["seqlen"] == 64
    settings = json.loads((cache / "a.settings.json").read_text())
    assert settings["stage1"]["pool_mix"] == out["stage1"]["pool_mix"] and settings["seqlen"] == 64
    assert "seqlen" not in settings["config"]["processing"]  # the set's length is recorded once
    ablation = _run(capsys, *common, "--no-stage1", "--out", str(cache / "b.jsonl"))
    assert ablation["stage1"]["pool_mix"] == {"math": 40, "facts": 40} and ablation["stage1"]["source"] == "equal"


def test_field_mapped_qa_file_comes_out_with_explicit_reasoning(tiny_model_dir, cache, capsys):
    rows = [
        {
            "q": f"Ann has {i} apples and buys {i + 2} more. How many?",
            "a": f"{i} + {i + 2} = <<{i}+{i + 2}={2 * i + 2}>>{2 * i + 2}\n#### {2 * i + 2}",
        }
        for i in range(40)
    ]
    data = cache / "gsm.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = _run(
        capsys,
        *["curate", "--model", tiny_model_dir("llama"), "--corpora", str(data), "--capabilities", "math"],
        *["--fields", "question=q,answer=a", "--reasoning-format", "explicit", "--pool-size", "30", "--n", "6"],
        *["--per-corpus", "20", "--seqlen", "64", "--out", str(cache / "c.jsonl")],
    )
    chosen = [json.loads(line) for line in (cache / "c.jsonl").read_text().splitlines()]
    assert len(chosen) == 6
    for r in chosen:
        assert r["text"].startswith("Question: Ann has") and "\nReasoning: " in r["text"]
        assert r["text"].rsplit("\n", 1)[1] == f"Answer: {r['meta']['answer']}" and "<<" not in r["text"]
        assert r["meta"]["source"] == str(data)
    sampled = out["stage1"]["sampling"]
    assert sampled and all(v.get("seed") == 0 for v in sampled.values())
    assert out["stage1"]["source"] == "equal"  # one corpus: nothing for Stage 1 to weigh


def test_bad_field_mapping_is_one_clear_line(capsys):
    assert main(["curate", "--fields", "question=q", "--out", "x.jsonl"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "answer" in err[0]


def test_paper_preset_caps_at_the_context_and_explicit_flags_win(cache, capsys):
    out = _run(
        capsys,
        *["curate", "--preset", "paper", "--n", "16", "--pool-size", "120", "--per-corpus", "20"],
        *["--corpora", "math,facts", "--capabilities", "math,facts", "--out", str(cache / "p.jsonl")],
    )
    assert out["seqlen"] == 512  # the paper's 2,048 capped by cola-tiny's 512 positions
    assert out["n"] == 16 and out["strategy"] == "cola"  # --n given explicitly wins over the preset's 128


def test_a_set_curated_at_512_tokens_is_compressed_at_512(cache, capsys):
    calib = cache / "long.jsonl"
    _run(
        capsys,
        *["curate", "--corpora", "prose", "--capabilities", "prose", "--pool-size", "60", "--n", "4"],
        *["--seqlen", "512", "--length-mode", "pack", "--per-corpus", "20", "--out", str(calib)],
    )
    out = _run(capsys, "compress", "--calib", str(calib), "--method", "magnitude", "--out", str(cache / "m"))
    assert out["seqlen"] == 512
    short = _run(
        capsys, "compress", "--calib", str(calib), "--method", "magnitude", "--seqlen", "128", "--out", str(cache / "s")
    )
    assert short["seqlen"] == 128


def test_unknown_preset_and_bad_mix_are_refused(capsys):
    assert main(["curate", "--preset", "nope"]) == 2
    assert main(["curate", "--mix", "math=lots"]) == 2
    with pytest.raises(ColaError, match="not among"):
        CurateConfig(corpora=("math",), mix=(("code", 1.0),)).validate()


@pytest.mark.parametrize(
    "argv",
    [
        ["curate", "--seq", "512", "--preset", "paper"],  # abbreviations refused: a preset must see what was given
        ["curate", "--mix", "math=nan"],
        ["curate", "--weights", "math=inf"],
        ["curate", "--weights", "nosuch=1"],
        ["corpus-scores", "--capabilities", ""],
        ["corpus-scores", "--deployment", "targeted"],
    ],
)
def test_bad_stage1_and_preset_input_is_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")


def test_pool_mix_reports_what_was_built_when_a_corpus_falls_short(tiny_model_dir, cache):
    loaded = load_model(tiny_model_dir("llama"))
    from cola_core.curation.pipeline import build_space

    config = CurateConfig(
        corpora=("math", "facts"), capabilities=("math",), mix=(("math", 1.0), ("facts", 1.0)), pool_size=100_000
    )
    logs: list[str] = []
    with pytest.raises(ColaError, match="cannot select"):  # stops before extraction: the pool is what matters
        build_space(loaded, config, with_probes=False, log=logs.append, need=10**9)
    assert any("fewer records than their share" in line for line in logs)
