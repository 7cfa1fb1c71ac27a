import json
import subprocess
import sys

import numpy as np

from cola_core.curation.activations import ActivationConfig, cached_activations
from cola_core.curation.pipeline import CurateConfig, curate, recommend_mix, score_corpora
from cola_core.models.loading import load_model


def test_activation_cache_hit_equals_fresh(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path))
    loaded = load_model(tiny_model_dir("llama"))
    texts = ["one two three", "four five", "six"]
    first = cached_activations(loaded.model, loaded.tokenizer, loaded.fingerprint, texts, ActivationConfig())
    second = cached_activations(loaded.model, loaded.tokenizer, loaded.fingerprint, texts, ActivationConfig())
    assert isinstance(second["layer0"], np.memmap)
    for k in first:
        np.testing.assert_array_equal(first[k], second[k])
    other = cached_activations(
        loaded.model, loaded.tokenizer, loaded.fingerprint, texts, ActivationConfig(pooling="last")
    )
    assert not np.array_equal(other["layer0"], first["layer0"])


def test_curate_pipeline_end_to_end(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path / "cache"))
    loaded = load_model(tiny_model_dir("llama"))
    cfg = CurateConfig(
        corpora=("math", "facts"),
        pool_size=120,
        n=12,
        strategy="tradeoff",
        lam=0.7,
        capabilities=("math", "facts"),
        probe_size=30,
    )
    result = curate(loaded, cfg, tmp_path / "calib.jsonl")
    m = result.metrics
    assert m.n == 12 and sum(m.mix.values()) == 12 and set(m.capability_coverage) == {"math", "facts"}
    assert 0 < m.cluster_coverage <= 1 and m.tokens > 0
    lines = (tmp_path / "calib.jsonl").read_text().splitlines()
    assert len(lines) == 12 and json.loads(lines[0])["id"] == result.chosen[0].id


def test_stage1_scores_and_mix(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path))
    loaded = load_model(tiny_model_dir("llama"))
    table = score_corpora(loaded, ["math", "random"], ["math"], CurateConfig(), per_corpus=30)
    assert len(table) == 2 and set(table.columns) >= {"corpus", "capability", "activation", "token", "score"}
    scores = table.set_index("corpus")["score"]
    assert scores["math"] > scores["random"]  # token distributions alone separate them
    assert recommend_mix(table)["math"] > 0.5


def _curate_json(tmp_path, *argv: str) -> dict:
    """``curate ARGV --out … --json`` in a subprocess, as a user runs it; its one JSON object."""
    out = subprocess.run(
        [sys.executable, "-m", "cola_core", "curate", *argv, "--out", str(tmp_path / "c.jsonl"), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "COLA_CACHE_DIR": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_cli_curate_json_contract(tiny_model_dir, tmp_path):
    argv = ["--model", tiny_model_dir("llama"), "--corpora", "math,facts", "--pool-size", "80", "--n", "8"]
    payload = _curate_json(tmp_path, *argv, "--strategy", "cola", "--capabilities", "math")
    assert {
        "n",
        "strategy",
        "representativeness",
        "diversity",
        "cluster_coverage",
        "mix",
        "tokens",
        "seconds",
        "out",
    } <= set(payload)
    assert payload["n"] == 8 and payload["strategy"] == "cola"


def test_cli_curate_bad_lambda_is_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "cola_core", "curate", "--strategy", "tradeoff", "--lam", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2 and out.stderr.strip().splitlines() == ["error: λ (lam) must lie in [0, 1], got 2.0"]


def test_probes_are_cached_per_model_and_settings(tiny_model_dir, tmp_path, monkeypatch):
    """Probe sets go through the activation cache like the pool: a second space with the same model
    and settings extracts nothing; a new probe size extracts only the probes; another batch budget
    computes the same vectors, so it extracts nothing either."""
    import cola_core.curation.activations as activations
    from cola_core.curation.pipeline import build_space

    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path))
    loaded = load_model(tiny_model_dir("llama"))
    calls: list[int] = []
    real = activations.extract_activations
    monkeypatch.setattr(
        activations,
        "extract_activations",
        lambda m, t, texts, *a, **k: calls.append(len(texts)) or real(m, t, texts, *a, **k),
    )
    cfg = CurateConfig(corpora=("math", "facts"), pool_size=40, n=4, capabilities=("math", "code"), probe_size=12)
    first = build_space(loaded, cfg)
    stage1 = 2 * 2 * cfg.stage1_samples  # Stage 1 scores each corpus against each capability's probes
    assert sorted(calls) == sorted([12, 12, len(first.embedded.records)] + [cfg.stage1_samples] * 4)
    assert sum(calls) == 24 + len(first.embedded.records) + stage1
    calls.clear()
    again = build_space(loaded, cfg)
    assert calls == [] and np.array_equal(again.probes["code"], first.probes["code"])
    build_space(loaded, CurateConfig(**{**cfg.__dict__, "probe_size": 8}))
    assert calls == [8, 8]
    calls.clear()
    wide = CurateConfig(**{**cfg.__dict__, "activations": ActivationConfig(batch_tokens=64)})
    build_space(loaded, wide)
    assert calls == []


def test_cli_cola_quota_keeps_the_pools_mix(tiny_model_dir, tmp_path):
    """Issue #29: with Stage 1 targeting math, cola-quota selects every corpus within ±1 of n × its
    share of the pool, and --json shows the selection's mix beside the pool's."""
    argv = ["--model", tiny_model_dir("llama"), "--corpora", "math,facts,prose", "--pool-size", "90", "--n", "16"]
    argv += ["--strategy", "cola-quota", "--deployment", "targeted", "--target", "math", "--per-corpus", "20"]
    payload = _curate_json(tmp_path, *argv)
    pool, mix = payload["pool_mix"], payload["mix"]
    assert sum(mix.values()) == 16 and set(mix) <= set(pool)
    total = sum(pool.values())
    assert all(abs(mix.get(c, 0) - 16 * k / total) <= 1 for c, k in pool.items()), (mix, pool)
    assert payload["selection"]["quota"] == {c: mix.get(c, 0) for c in pool} and payload["selection"]["shortfall"] == {}


def test_stage2_says_how_many_qa_records_it_formats(tmp_path, capsys):
    """Issue #32: "0 re-rendered" read as if nothing had the Q&A structure; Stage 2 now counts the Q&A
    records and says which of them its format changed, and .settings.json records the extraction length."""
    from cola_core.cli.main import main

    argv = ["curate", "--corpora", "math,prose", "--pool-size", "40", "--n", "4", "--seqlen", "48", "--json"]
    assert main([*argv, "--reasoning-format", "plain", "--out", str(tmp_path / "c.jsonl")]) == 0
    stage2 = json.loads(capsys.readouterr().out)["stage2"]
    assert stage2["qa_records"] == 20 and 0 < stage2["reformatted"] <= 20
    settings = json.loads((tmp_path / "c.settings.json").read_text())
    assert settings["config"]["activations"]["seqlen"] == settings["seqlen"] == 48
