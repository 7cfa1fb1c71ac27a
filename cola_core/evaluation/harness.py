"""lm-evaluation-harness (EleutherAI) as an optional backend for the public benchmarks.

Wraps the in-memory model (dense or just compressed) in the harness's ``HFLM`` without a reload,
runs ``simple_evaluate`` and turns its results into our :class:`~cola_core.evaluation.suite.Score`:
accuracies get a Wilson interval from the harness's n, perplexities the harness's point value
(it reports no interval for them, so the interval is the point). Which task and result key stand
for each of our benchmarks is its record's (:mod:`cola_core.evaluation.benchmark_registry`).
"""

from __future__ import annotations

from collections.abc import Sequence

from cola_core.errors import ColaError
from cola_core.evaluation.benchmark_registry import BENCHMARKS
from cola_core.evaluation.intervals import wilson
from cola_core.evaluation.suite import Score


def to_scores(output: dict, names: Sequence[str]) -> dict[str, Score]:
    """Our scores from a ``simple_evaluate`` output (``results`` and ``n-samples`` per task)."""
    scores: dict[str, Score] = {}
    for name in names:
        bench = BENCHMARKS[name]
        task, key, metric = bench.harness_task, bench.harness_key, bench.metric
        result = output["results"].get(task, {})
        if key not in result:
            raise ColaError(f"lm-eval returned no '{key}' for {task} (got {', '.join(result) or 'nothing'})")
        value = float(result[key])
        n = int(output.get("n-samples", {}).get(task, {}).get("effective", 0))
        lo, hi = wilson(round(value * n), n) if metric == "accuracy" and n else (value, value)
        scores[name] = Score(name, metric, value, lo, hi, n)
    return scores


def evaluate_with_harness(
    model,
    tokenizer,
    names: Sequence[str],
    limit: int | None = None,
    batch_size: int = 16,
    allow_code_execution: bool = False,
) -> dict[str, Score]:
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ColaError(
            f"unknown benchmark '{unknown[0]}' for the lm-eval backend: choose from {', '.join(BENCHMARKS)}"
        )
    try:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        raise ColaError(
            "the lm-eval backend needs lm-evaluation-harness: pip install lm-eval, or use --backend builtin"
        ) from None
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    output = simple_evaluate(
        model=lm,
        tasks=[BENCHMARKS[n].harness_task for n in names],
        limit=limit,
        confirm_run_unsafe_code=allow_code_execution,
    )
    return to_scores(output, names)
