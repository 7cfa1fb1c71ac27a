"""Public benchmarks on local copies of their data (the hub is unreachable here), the code sandbox,
and the lm-eval adapter."""

from __future__ import annotations

import json
import math
import random
import re
import sys
import types

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from cola_core.corpora import load_records
from cola_core.errors import ColaError
from cola_core.evaluation import benchmarks as bm
from cola_core.evaluation.harness import evaluate_with_harness, to_scores
from cola_core.evaluation.sandbox import Limits, run_untrusted
from cola_core.models.loading import load_model
from tests.test_cli import run_cli


@pytest.fixture(scope="module")
def tiny():
    return load_model("cola-tiny")


def _facts(limit: int = 300):
    return load_records("facts", "heldout", limit=limit)


def hellaswag_rows(shift: int = 0) -> list[dict]:
    """cola-tiny's held-out facts in HellaSwag's schema; ``shift`` moves the gold label off the truth."""
    return [
        {
            "activity_label": "Facts",
            "ctx_a": r.meta["cloze"],
            "ctx_b": "",
            "endings": [c + "." for c in r.meta["choices"]],
            "label": str((r.meta["answer_index"] + shift) % 4),
        }
        for r in _facts(100)
    ]


def winogrande_rows(truthful: bool = True) -> list[dict]:
    """'The town of _ lies in X.' with the true town and a random other one."""
    facts = _facts()
    towns = sorted({r.meta["town"] for r in facts})
    rng = random.Random(0)
    rows = []
    for r in facts:
        if not r.meta["cloze"].startswith("The town of"):
            continue
        rest = r.meta["cloze"][len(f"The town of {r.meta['town']}") :]
        other = rng.choice([t for t in towns if t != r.meta["town"]])
        rows.append(
            {
                "sentence": f"The town of _{rest} {r.meta['choices'][r.meta['answer_index']]}.",
                "option1": r.meta["town"],
                "option2": other,
                "answer": "1" if truthful else "2",
            }
        )
    return rows


def test_multiple_choice_follows_the_model_knowledge(tiny):
    good = bm.choice_accuracy(tiny.model, tiny.tokenizer, "hellaswag", hellaswag_rows(), 100, 32)
    bad = bm.choice_accuracy(tiny.model, tiny.tokenizer, "hellaswag", hellaswag_rows(shift=1), 100, 32)
    assert good.n == 100 and good.score > 0.6 > 0.4 > bad.score  # chance is 0.25
    assert good.ci_low < good.score < good.ci_high
    wg = bm.choice_accuracy(tiny.model, tiny.tokenizer, "winogrande", winogrande_rows(), 100, 32)
    wrong = bm.choice_accuracy(tiny.model, tiny.tokenizer, "winogrande", winogrande_rows(False), 100, 32)
    assert wg.score > 0.8 and wrong.score < 0.2 and wg.n == wrong.n > 30


def test_choice_items_of_each_schema():
    ctx, conts, gold = bm.choice_items(
        "arc_easy", {"question": "Q?", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "B"}
    )
    assert ctx == ["Question: Q?\nAnswer:"] * 2 and conts == [" a", " b"] and gold == 1
    ctx, conts, gold = bm.choice_items("piqa", {"goal": "g", "sol1": "x", "sol2": "y", "label": 1})
    assert conts == [" x", " y"] and gold == 1
    ctx, conts, gold = bm.choice_items(
        "winogrande", {"sentence": "A _ b c.", "option1": "o1", "option2": "o2", "answer": "2"}
    )
    assert ctx == ["A o1", "A o2"] and conts == [" b c."] * 2 and gold == 1
    ctx, _, _ = bm.choice_items(
        "hellaswag",
        {"activity_label": "Cook", "ctx_a": "He [title] cuts.", "ctx_b": "then", "endings": ["a"], "label": "0"},
    )
    assert ctx == ["Cook: He. cuts. Then"]


def test_wikitext_perplexity_is_exp_mean_nll_over_windows(tiny_model_dir):
    path = tiny_model_dir("llama")
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    rows = [{"text": r.text} for r in load_records("prose", "heldout", limit=20)]
    score = bm.wikitext_perplexity(model, tok, rows, limit=7, seqlen=32, batch_tokens=96, seed=0)
    ids = tok("\n\n".join(r["text"] for r in rows), return_tensors="pt")["input_ids"][0][: 7 * 32].reshape(7, 32)
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss  # mean over 7 × 31 predicted tokens
    assert score.n == 7 and score.metric == "perplexity"
    assert score.score == pytest.approx(math.exp(float(loss)), rel=1e-4)
    assert score.ci_low <= score.score <= score.ci_high


def test_gsm8k_scoring(monkeypatch, tiny):
    rows = [{"question": f"q{i}", "answer": f"work\n#### {1000 + i:,}"} for i in range(6)]
    seen = {}

    def fake_generate(model, tok, prompts, max_new_tokens, stop, batch_tokens):
        seen["prompts"] = prompts
        return [" so #### 1,002", " it is 1003.", " no idea", " 1005"]

    monkeypatch.setattr(bm, "generate", fake_generate)
    score = bm.gsm8k_exact_match(tiny.model, tiny.tokenizer, rows, limit=4, shots=2, batch_tokens=4096)
    assert score.n == 4 and score.score == 0.75
    assert seen["prompts"][0].startswith("Question: q0\nAnswer: work\n#### 1,000\n\nQuestion: q1")
    assert seen["prompts"][0].endswith("Question: q2\nAnswer:")
    assert bm._final_number("x 3, then 4.5 and 12.") == "12" and bm._final_number("nothing") is None


def test_generate_cuts_at_stop_strings(tiny):
    out = bm.generate(tiny.model, tiny.tokenizer, ["Question: What is 2 plus 3?\n"] * 2, 30, ["\n"], 2)
    assert len(out) == 2 and out[0] == out[1] and "\n" not in out[0]


def test_code_pass_at_1_runs_tests_in_the_sandbox(monkeypatch, tiny):
    rows = [
        {"prompt": "def add(a, b):\n", "test": "def check(f):\n    assert f(2, 3) == 5", "entry_point": "add"},
        {"prompt": "def sub(a, b):\n", "test": "def check(f):\n    assert f(2, 3) == -1", "entry_point": "sub"},
    ]
    monkeypatch.setattr(bm, "generate", lambda *a, **k: ["    return a + b\n", "    return b - a\n"])
    score = bm.code_pass_at_1(tiny.model, tiny.tokenizer, "humaneval", rows, 10, 2, Limits(seconds=10))
    assert score.n == 2 and score.score == 0.5
    mbpp = [{"text": "Add.", "test_list": ["assert add(1, 1) == 2"], "test_setup_code": ""}]
    monkeypatch.setattr(bm, "generate", lambda *a, **k: ["def add(a, b):\n    return a + b\n"])
    assert bm.code_pass_at_1(tiny.model, tiny.tokenizer, "mbpp", mbpp, 10, 2, Limits()).score == 1.0


@pytest.mark.parametrize(
    ("program", "passed", "reason"),
    [
        ("assert 1 + 1 == 2", True, "passed"),
        ("assert 1 + 1 == 3, 'wrong sum'", False, "wrong sum"),
        ("while True:\n    pass", False, "timeout"),
        ("x = bytearray(2_000_000_000)", False, "MemoryError"),
        ("import os\nprint(os.environ.get('HF_HOME', 'clean'))\nassert 'HF_HOME' not in os.environ", True, "passed"),
    ],
)
def test_sandbox_limits(program, passed, reason, monkeypatch):
    monkeypatch.setenv("HF_HOME", "/secret")
    outcome = run_untrusted(program, Limits(seconds=2, memory_mb=256))
    assert outcome.passed is passed and reason in outcome.reason


def test_unreachable_data_and_code_without_opt_in_are_skipped_not_fatal(tmp_path, tiny):
    path = tmp_path / "hs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in hellaswag_rows()[:20]))
    scores, skipped = bm.run_benchmarks(
        tiny.model, tiny.tokenizer, ["gsm8k", "humaneval", "hellaswag"], limit=20, sources={"hellaswag": str(path)}
    )
    assert set(scores) == {"hellaswag"} and scores["hellaswag"].n == 20
    assert "--benchmark-data gsm8k=PATH" in skipped["gsm8k"] and "--allow-code-execution" in skipped["humaneval"]
    with pytest.raises(ColaError, match="unknown benchmark 'mmlu'"):
        bm.run_benchmarks(tiny.model, tiny.tokenizer, ["mmlu"])


def test_local_copies_in_every_format(tmp_path):
    import datasets

    rows = hellaswag_rows()[:5]
    ds = datasets.Dataset.from_list(rows)
    ds.to_parquet(str(tmp_path / "hs.parquet"))
    ds.save_to_disk(str(tmp_path / "hs_dir"))
    datasets.DatasetDict({"validation": ds}).save_to_disk(str(tmp_path / "hs_dict"))
    (tmp_path / "hs.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    bench = bm.BENCHMARKS["hellaswag"]
    for name in ("hs.parquet", "hs_dir", "hs_dict", "hs.jsonl"):
        assert bm.load_rows(bench, str(tmp_path / name)) == rows, name
    with pytest.raises(ColaError, match="not a dataset folder"):
        bm.load_rows(bench, str(tmp_path / "missing.txt"))


def test_harness_adapter(monkeypatch, tiny):
    calls = {}

    class FakeHFLM:
        def __init__(self, pretrained, tokenizer, batch_size):
            calls["model"], calls["tokenizer"] = pretrained, tokenizer

    def simple_evaluate(model, tasks, limit, confirm_run_unsafe_code):
        calls["tasks"], calls["limit"] = tasks, limit
        return {
            "results": {"piqa": {"acc,none": 0.7, "acc_stderr,none": 0.01}, "wikitext": {"word_perplexity,none": 21.5}},
            "n-samples": {"piqa": {"effective": 100}, "wikitext": {"effective": 62}},
        }

    lm_eval = types.ModuleType("lm_eval")
    lm_eval.simple_evaluate = simple_evaluate
    models = types.ModuleType("lm_eval.models")
    hf = types.ModuleType("lm_eval.models.huggingface")
    hf.HFLM = FakeHFLM
    monkeypatch.setitem(sys.modules, "lm_eval", lm_eval)
    monkeypatch.setitem(sys.modules, "lm_eval.models", models)
    monkeypatch.setitem(sys.modules, "lm_eval.models.huggingface", hf)
    scores = evaluate_with_harness(tiny.model, tiny.tokenizer, ["piqa", "wikitext2"], limit=100)
    assert calls["model"] is tiny.model and calls["tasks"] == ["piqa", "wikitext"] and calls["limit"] == 100
    assert (
        scores["piqa"].score == 0.7 and scores["piqa"].n == 100 and scores["piqa"].ci_low < 0.7 < scores["piqa"].ci_high
    )
    assert scores["wikitext2"].metric == "perplexity" and scores["wikitext2"].score == 21.5
    with pytest.raises(ColaError, match="no 'acc,none'"):
        to_scores({"results": {"piqa": {}}}, ["piqa"])


def test_harness_missing_is_one_clear_error(monkeypatch, tiny):
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    with pytest.raises(ColaError, match="pip install lm-eval"):
        evaluate_with_harness(tiny.model, tiny.tokenizer, ["piqa"])


def test_cli_evaluate_with_benchmarks(tmp_path):
    path = tmp_path / "hs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in hellaswag_rows()[:30]))
    out = run_cli(
        "evaluate",
        "--model",
        "cola-tiny",
        "--capabilities",
        "lm",
        "--limit",
        "30",
        "--benchmarks",
        "hellaswag",
        "--benchmark-data",
        f"hellaswag={path}",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    assert set(payload["scores"]) == {"lm", "hellaswag"} and payload["scores"]["hellaswag"]["n"] == 30
    assert payload["scores"]["hellaswag"]["score"] > 0.5 and payload["skipped"] == {}
    asked = run_cli(
        "evaluate", "--model", "cola-tiny", "--benchmarks", "hellaswag,gsm8k", "--benchmark-data", f"hellaswag={path}"
    )
    errors = [line for line in asked.stderr.splitlines() if line.startswith("error: ")]
    assert asked.returncode == 2 and len(errors) == 1 and "benchmark gsm8k cannot run" in errors[0]
    assert "loading model" not in asked.stderr  # refused before the model loads
    bad = run_cli("evaluate", "--model", "cola-tiny", "--benchmarks", "mmlu")
    assert bad.returncode == 2 and "unknown benchmark 'mmlu'" in bad.stderr
    bad = run_cli("evaluate", "--model", "cola-tiny", "--benchmark-data", "piqa")
    assert bad.returncode == 2 and "NAME=PATH" in bad.stderr


# The benchmark registry: one record per benchmark, read by evaluation, the harness adapter and --help.


def test_records_carry_what_each_kind_of_scoring_needs():
    from typing import get_args

    from cola_core.evaluation.benchmark_registry import BENCHMARKS, Kind, benchmark

    assert set(bm.SCORERS) == set(get_args(Kind)) and bm.BENCHMARKS is BENCHMARKS
    for b in BENCHMARKS.values():
        assert (b.items is not None) is (b.kind == "choice") and (b.programs is not None) is (b.kind == "code")
        assert b.description and "\n" not in b.description and b.harness_task and b.harness_key
    assert [b.name for b in BENCHMARKS.values() if b.per_character] == ["hellaswag", "arc_easy", "arc_challenge"]
    assert [b.name for b in BENCHMARKS.values() if b.runs_code] == ["mbpp", "humaneval"]
    with pytest.raises(ColaError, match="unknown benchmark 'mmlu': choose from wikitext2, gsm8k, piqa"):
        benchmark("mmlu")
    with pytest.raises(ColaError, match="gsm8k is not a multiple-choice benchmark"):
        bm.choice_items("gsm8k", {})


def test_every_record_is_listed_in_the_help():
    import argparse

    from cola_core.cli.args import add_evaluate_args

    parser = argparse.ArgumentParser()
    add_evaluate_args(parser)
    (flag,) = [a for a in parser._actions if a.dest == "benchmarks"]
    listed = re.findall(r"\w+", flag.help)
    assert all(name in listed for name in bm.BENCHMARKS), flag.help
    assert flag.help in " ".join(parser.format_help().split())


def test_harness_tasks_come_from_the_records(monkeypatch):
    from dataclasses import replace

    from cola_core.evaluation import harness

    pinned = {  # the lm-eval names these records have always mapped to
        "wikitext2": ("wikitext", "word_perplexity,none", "perplexity"),
        "gsm8k": ("gsm8k", "exact_match,strict-match", "accuracy"),
        "piqa": ("piqa", "acc,none", "accuracy"),
        "hellaswag": ("hellaswag", "acc_norm,none", "accuracy"),
        "arc_easy": ("arc_easy", "acc_norm,none", "accuracy"),
        "arc_challenge": ("arc_challenge", "acc_norm,none", "accuracy"),
        "winogrande": ("winogrande", "acc,none", "accuracy"),
        "mbpp": ("mbpp", "pass_at_1,none", "accuracy"),
        "humaneval": ("humaneval", "pass@1,create_test", "accuracy"),
    }
    assert {n: (b.harness_task, b.harness_key, b.metric) for n, b in bm.BENCHMARKS.items()} == pinned
    renamed = {**bm.BENCHMARKS, "piqa": replace(bm.BENCHMARKS["piqa"], harness_task="piqa_v2", harness_key="acc,x")}
    monkeypatch.setattr(harness, "BENCHMARKS", renamed)
    output = {"results": {"piqa_v2": {"acc,x": 0.5}}, "n-samples": {"piqa_v2": {"effective": 10}}}
    assert harness.to_scores(output, ["piqa"])["piqa"].score == 0.5
