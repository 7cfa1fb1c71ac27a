"""The built-in suite through the real lm-evaluation-harness (issue #32): exported tasks over local
data, run on the in-memory model, scoring the same items the same way as the built-in backend."""

import json
from pathlib import Path

import pytest

from cola_core.cli.main import main
from cola_core.corpora import load_records
from cola_core.evaluation.harness_tasks import TASKS, export_tasks


def test_export_writes_a_task_and_the_suites_items_per_capability(tmp_path):
    written = export_tasks(tmp_path, limit=12)
    assert set(written) == {"lm", "code", "math", "facts"}
    for capability, yaml in written.items():
        text = Path(yaml).read_text()
        assert text.startswith(f"task: {TASKS[capability]}\n") and "dataset_path: json" in text
    math = [json.loads(line) for line in (tmp_path / "cola_math.jsonl").read_text().splitlines()]
    ours = load_records("math", "heldout", limit=12)
    assert [d["question"] for d in math] == [r.meta["question"] for r in ours]
    facts = [json.loads(line) for line in (tmp_path / "cola_facts.jsonl").read_text().splitlines()]
    assert [d["answer_index"] for d in facts] == [
        r.meta["answer_index"] for r in load_records("facts", "heldout", limit=12)
    ]


def test_the_real_harness_and_the_builtin_backend_agree_item_by_item(capsys):
    pytest.importorskip("lm_eval")
    argv = ["evaluate", "--model", "cola-tiny", "--capabilities", "math,facts", "--limit", "30", "--json"]
    assert main([*argv, "--backend", "lm-eval"]) == 0
    harness = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    builtin = json.loads(capsys.readouterr().out)
    assert harness["backend"] == "lm-eval" and builtin["backend"] == "builtin"
    for capability in ("math", "facts"):
        a, b = harness["scores"][capability], builtin["scores"][capability]
        assert a["n"] == b["n"] == 30 and a["score"] == b["score"], capability


def test_item_level_agreement_and_what_the_harness_does_not_score(capsys):
    pytest.importorskip("lm_eval")
    from cola_core.evaluation.harness_tasks import evaluate_capabilities_with_harness
    from cola_core.evaluation.suite import evaluate
    from cola_core.models.loading import load_model

    loaded = load_model("cola-tiny", device="cpu")
    ours = evaluate(loaded.model, loaded.tokenizer, ["math", "facts"], limit=40)
    theirs = evaluate_capabilities_with_harness(loaded.model, loaded.tokenizer, ["math", "facts"], limit=40)
    for capability in ("math", "facts"):
        assert theirs[capability].items == ours[capability].items, capability
    assert main(["evaluate", "--model", "cola-tiny", "--capabilities", "lm", "--backend", "lm-eval"]) == 2
    err = capsys.readouterr().err
    assert "use --backend builtin" in err and "loading model" not in err
