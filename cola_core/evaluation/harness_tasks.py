"""The built-in capability suite as lm-evaluation-harness tasks over local data.

``export_tasks(DIR)`` (``python -m cola_core export-tasks DIR``) writes each capability's held-out
items as a JSONL file and a task YAML beside it, readable by ``lm_eval --include_path DIR --tasks
cola_math,…`` and by :func:`evaluate_capabilities_with_harness`, which runs them through the real
harness on the in-memory model. The items are the ones the built-in suite scores, in its order, so
``--limit N`` means the same N items in both:

- ``cola_math``: ``generate_until`` on ``Question: …\\n``, greedy, at most 40 new tokens, the first
  ``Answer: N`` of the reply (regex filter), exact match — as :func:`~cola_core.evaluation.tasks.math_answers`;
- ``cola_facts``: ``multiple_choice`` on the fact's ``Question: … Answer:`` prompt over its four
  choices, each scored as `` choice`` by summed log-likelihood (``acc``) — as
  :func:`~cola_core.evaluation.tasks.facts_choices`;
- ``cola_lm`` / ``cola_code``: ``loglikelihood_rolling`` over whole held-out texts. The harness reports
  word and byte perplexity over rolling windows, not our per-token perplexity of each text's first
  128 tokens, so these two are exported for use with the harness and not compared with ours.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cola_core.corpora import load_records
from cola_core.errors import ColaError
from cola_core.evaluation.suite import CAPABILITIES, Score, accuracy_score
from cola_core.evaluation.tasks import MATH_ANSWER, MATH_NEW_TOKENS

TASKS = {"lm": "cola_lm", "code": "cola_code", "math": "cola_math", "facts": "cola_facts"}
CORPUS = {"lm": "prose"}  # the held-out split each capability is scored on, where it is not its own name
HARNESS_CAPABILITIES = ("math", "facts")  # scored the same way by both backends


def _docs(capability: str, limit: int | None) -> list[dict[str, Any]]:
    records = load_records(CORPUS.get(capability, capability), "heldout", limit=limit)
    if capability == "math":
        return [
            {"question": r.meta["question"], "answer": str(r.meta["answer"]), "tier": r.meta["tier"]} for r in records
        ]
    if capability == "facts":
        return [
            {"prompt": r.meta["prompt"], "choices": r.meta["choices"], "answer_index": r.meta["answer_index"]}
            for r in records
        ]
    return [{"text": r.text} for r in records]


def _yaml(capability: str, data: Path) -> str:
    """The task's YAML (lm-eval 0.4), written by hand: no YAML library is needed for these few keys."""
    head = [
        f"task: {TASKS[capability]}",
        "dataset_path: json",
        "dataset_kwargs:",
        "  data_files:",
        f"    test: {json.dumps(str(data.resolve()))}",
        "test_split: test",
    ]
    if capability == "math":
        body = [
            "output_type: generate_until",
            'doc_to_text: "Question: {{question}}\\n"',
            'doc_to_target: "{{answer}}"',
            "generation_kwargs:",
            "  until: []",
            f"  max_gen_toks: {MATH_NEW_TOKENS}",
            "  do_sample: false",
            "filter_list:",
            "  - name: first-answer",
            "    filter:",
            "      - function: regex",
            f"        regex_pattern: {json.dumps(MATH_ANSWER.pattern)}",
            "      - function: take_first",
            "metric_list:",
            "  - metric: exact_match",
            "    aggregation: mean",
            "    higher_is_better: true",
        ]
    elif capability == "facts":
        body = [
            "output_type: multiple_choice",
            "doc_to_text: prompt",
            "doc_to_choice: choices",
            "doc_to_target: answer_index",
            "metric_list:",
            "  - metric: acc",
            "    aggregation: mean",
            "    higher_is_better: true",
        ]
    else:
        body = [
            "output_type: loglikelihood_rolling",
            'doc_to_text: ""',
            'doc_to_target: "{{text}}"',
            "metric_list:",
            "  - metric: word_perplexity",
            "  - metric: byte_perplexity",
            "  - metric: bits_per_byte",
        ]
    return "\n".join([*head, *body, ""])


def export_tasks(
    directory: str | Path, capabilities: Sequence[str] = CAPABILITIES, limit: int | None = None
) -> dict[str, str]:
    """Write ``<task>.jsonl`` (the held-out items) and ``<task>.yaml`` per capability into
    ``directory``; returns capability → YAML path. ``limit``: the first N items only."""
    unknown = [c for c in capabilities if c not in TASKS]
    if unknown:
        raise ColaError(f"unknown capability '{unknown[0]}': choose from {', '.join(TASKS)}")
    docs = {c: _docs(c, limit) for c in capabilities}  # everything read before anything is written
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for capability in capabilities:
        data = directory / f"{TASKS[capability]}.jsonl"
        data.write_text("".join(json.dumps(doc) + "\n" for doc in docs[capability]), encoding="utf-8")
        yaml = directory / f"{TASKS[capability]}.yaml"
        yaml.write_text(_yaml(capability, data), encoding="utf-8")
        written[capability] = str(yaml)
    return written


def evaluate_capabilities_with_harness(
    model, tokenizer, capabilities: Sequence[str], limit: int, batch_size: int = 16
) -> dict[str, Score]:
    """``capabilities`` (math, facts) scored by lm-evaluation-harness itself on the in-memory model,
    over the same held-out items as the built-in suite, in its order (per-item hits in ``items``);
    accuracies with a Wilson interval."""
    other = [c for c in capabilities if c not in HARNESS_CAPABILITIES]
    if other:
        raise ColaError(
            f"the lm-eval backend scores {', '.join(HARNESS_CAPABILITIES)} as the built-in suite does; {other[0]} is a "
            "perplexity the harness computes over rolling windows instead: use --backend builtin for it "
            "(export-tasks writes its task for lm_eval itself)"
        )
    try:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise ColaError(
            "the lm-eval backend needs lm-evaluation-harness: pip install -r requirements-benchmarks.txt"
        ) from None
    adds_bos = (
        bool(tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id])
        if tokenizer.bos_token_id is not None
        else False
    )
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, add_bos_token=adds_bos)
    with tempfile.TemporaryDirectory() as folder:
        export_tasks(folder, capabilities, limit)
        output = simple_evaluate(
            model=lm,
            tasks=[TASKS[c] for c in capabilities],
            task_manager=TaskManager(include_path=folder),
            log_samples=True,
        )
    scores = {}
    for capability in capabilities:
        task = TASKS[capability]
        metric = "exact_match" if capability == "math" else "acc"
        samples = sorted(output["samples"][task], key=lambda s: s["doc_id"])
        if not samples or metric not in samples[0]:
            raise ColaError(f"lm-eval returned no per-item '{metric}' for {task}")
        hits = [int(s[metric]) for s in samples]  # per item, in the suite's order: paired with ours
        scores[capability] = accuracy_score(capability, hits, [1] * len(hits))
    return scores
