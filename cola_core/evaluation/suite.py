"""The built-in capability suite, with sample sizes and 95% confidence intervals, and retention.

| capability | data (held-out split) | metric | interval |
|---|---|---|---|
| `lm` | prose | perplexity (lower is better) | bootstrap over texts |
| `code` | code | perplexity | bootstrap over texts |
| `code_next_token` | code | greedy next-token accuracy | Wilson over tokens |
| `math` | math, all tiers (and `math_tier1..3`) | exact match of the greedy answer | Wilson |
| `facts` | facts | 4-way multiple choice by log-likelihood | Wilson |

Retention = compressed ÷ dense (dense ÷ compressed for perplexity, so higher is better), with a
paired bootstrap interval over the same items.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from cola_core.corpora import load_records
from cola_core.errors import ColaError
from cola_core.evaluation import tasks as cap
from cola_core.evaluation.intervals import bootstrap_perplexity, wilson
from cola_core.models.batching import BATCH_TOKENS
from cola_core.models.chat import prompt as chat_prompt
from cola_core.models.chat import uses_template
from cola_core.models.scoring import generate, per_text_nll

CAPABILITIES = ("lm", "code", "math", "facts")
# Accuracy a model reaches by guessing, per capability scored as a choice: facts picks one of four
# values (tasks.facts_choices). Retention at or below chance / dense is a floor where no set can differ.
CHANCE = {"facts": 0.25}
# One prompt per kind of capability, answered by every model a report shows side by side.
SHOWCASE_PROMPTS = (
    "Question: What is 3 plus 4?",
    "Question: In which country is Lemal?\nAnswer:",
    "def add(a, b):",
    "The history of the",
)
SHOWCASE_TOKENS = 24
DEFAULT_LIMIT = 200  # held-out items per capability (CLI, dashboard and experiments)


@dataclass
class Score:
    capability: str
    metric: str  # "perplexity" | "accuracy"
    score: float
    ci_low: float
    ci_high: float
    n: int
    items: list = field(default_factory=list, repr=False)  # per item: [nll, tokens] or [correct, total]

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("items")
        return d


def perplexity_score(name: str, nll: Sequence[float], counts: Sequence[int], seed: int) -> Score:
    lo, hi = bootstrap_perplexity(nll, counts, seed)
    value = math.exp(sum(nll) / max(sum(counts), 1))
    return Score(name, "perplexity", value, lo, hi, len(nll), [[a, b] for a, b in zip(nll, counts, strict=True)])


def accuracy_score(name: str, correct: Sequence[int], totals: Sequence[int]) -> Score:
    c, n = int(sum(correct)), int(sum(totals))
    lo, hi = wilson(c, n)
    return Score(name, "accuracy", c / max(n, 1), lo, hi, n, [[a, b] for a, b in zip(correct, totals, strict=True)])


def evaluate(
    model,
    tokenizer,
    capabilities: Sequence[str] = CAPABILITIES,
    limit: int = DEFAULT_LIMIT,
    seed: int = 0,
    batch_tokens: int = BATCH_TOKENS,
    seqlen: int = 128,
    chat_template: str = "auto",
    thinking: str = "auto",
) -> dict[str, Score]:
    """Scores of one model; deterministic (greedy decoding, fixed held-out items, seeded bootstrap).
    Every forward holds at most ``batch_tokens`` padded tokens (models/batching.py) and no
    full-vocabulary logits (models/scoring.py), so memory is bounded whatever the vocabulary.

    ``chat_template`` (models/chat.py): math questions and fact prompts go through the tokenizer's
    chat template as a user turn, answers after the assistant's generation prompt, as the model is
    served; ``auto`` where it has one. Perplexity of prose and code stays on the plain documents: a
    document is not a conversation."""
    unknown = set(capabilities) - set(CAPABILITIES)
    if unknown:
        raise ColaError(f"unknown capability {sorted(unknown)[0]!r}: choose from {', '.join(CAPABILITIES)}")
    if limit <= 0:
        raise ColaError(f"--limit must be positive, got {limit}")
    scores: dict[str, Score] = {}
    wrap = (lambda text: chat_prompt(tokenizer, text, thinking)) if uses_template(tokenizer, chat_template) else None
    if "lm" in capabilities:
        texts = [r.text for r in load_records("prose", "heldout", limit=limit)]
        nll, cnt = per_text_nll(model, tokenizer, texts, seqlen, batch_tokens)
        scores["lm"] = perplexity_score("lm", nll, cnt, seed)
    if "code" in capabilities:
        texts = [r.text for r in load_records("code", "heldout", limit=limit)]
        right: list[int] = []
        nll, cnt = per_text_nll(model, tokenizer, texts, seqlen, batch_tokens, correct=right)
        scores["code"] = perplexity_score("code", nll, cnt, seed)
        scores["code_next_token"] = accuracy_score("code_next_token", right, cnt)
    if "math" in capabilities:
        records = load_records("math", "heldout", limit=limit)
        answers = cap.math_answers(model, tokenizer, records, batch_tokens=batch_tokens, wrap=wrap)
        hits = [int(a == r.meta["answer"]) for a, r in zip(answers, records, strict=True)]
        scores["math"] = accuracy_score("math", hits, [1] * len(hits))
        for tier in (1, 2, 3):
            sub = [h for h, r in zip(hits, records, strict=True) if r.meta["tier"] == tier]
            scores[f"math_tier{tier}"] = accuracy_score(f"math_tier{tier}", sub, [1] * len(sub))
    if "facts" in capabilities:
        records = load_records("facts", "heldout", limit=limit)
        picks = cap.facts_choices(model, tokenizer, records, batch_tokens, wrap=wrap)
        hits = [int(p == r.meta["answer_index"]) for p, r in zip(picks, records, strict=True)]
        scores["facts"] = accuracy_score("facts", hits, [1] * len(hits))
    return scores


_TIER1_FORMS = ("gets", "gives away", "in a box", "on a table")  # math_problems._tier1's four templates


def _math_template(meta: dict) -> str:
    if meta["tier"] != 1:
        return f"tier{meta['tier']}"  # tiers 2 and 3 have one template each
    return "tier1:" + next((f for f in _TIER1_FORMS if f in meta["question"]), "other")


def item_clusters(score: str, limit: int = DEFAULT_LIMIT) -> list[str]:
    """The cluster of each item a score of :func:`evaluate` holds, in its order: items of one cluster
    are not independent draws, so a bootstrap resamples whole clusters
    (:func:`cola_core.evaluation.retention.bootstrap_seeds_and_items`). ``lm`` and ``code``: the
    source module a text comes from; ``facts``: the town asked about (five questions each); ``math``:
    the problem's template (tier 1 has four, tiers 2 and 3 one each)."""
    capability = score.split("_")[0]
    if capability in ("lm", "code"):
        records = load_records("prose" if capability == "lm" else "code", "heldout", limit=limit)
        return [r.meta["source"].split(":")[0] for r in records]
    if capability == "facts":
        return [r.meta["town"] for r in load_records("facts", "heldout", limit=limit)]
    if capability == "math":
        records = load_records("math", "heldout", limit=limit)
        tier = int(score.removeprefix("math_tier")) if score.startswith("math_tier") else None
        return [_math_template(r.meta) for r in records if tier is None or r.meta["tier"] == tier]
    raise ColaError(f"no item clusters for score {score!r}")


def answer_prompts(
    model, tokenizer, prompts: Sequence[str] = SHOWCASE_PROMPTS, max_new_tokens: int = SHOWCASE_TOKENS
) -> dict[str, str]:
    """Greedy answers (prompt → answer, up to the first blank line), what reports show side by side:
    stored with every experiment run, whose compressed weights are not kept."""
    answers = generate(model, tokenizer, list(prompts), max_new_tokens, ["\n\n"])
    return {p: a.strip() for p, a in zip(prompts, answers, strict=True)}
