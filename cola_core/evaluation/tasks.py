"""Capability scores of a causal LM on the built-in held-out splits.

- language modelling: per-token perplexity of held-out text, and a unigram baseline on the same
  tokens (the floor a model must beat to have learned anything beyond token frequencies);
- math: exact match of the greedy answer after ``Answer:`` on held-out word problems, per tier;
- facts: multiple-choice accuracy by the log-likelihood of each choice answering the fact's question.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence

import torch

from cola_core.corpora import Record
from cola_core.corpora.selfgen import final_answer, own_answer
from cola_core.models.batching import BATCH_TOKENS
from cola_core.models.scoring import continuation_logprobs, generate, per_text_nll

MATH_ANSWER = re.compile(r"Answer:\s*(-?\d+)")  # the first "Answer: N" of a greedy reply
MATH_NEW_TOKENS = 40
CHAT_ANSWER_FORM = "Finish with the result as: Answer: N"  # asked of a chat model, whose replies have no fixed form
CHAT_NEW_TOKENS = 256


def token_nll(
    model, tokenizer, texts: Sequence[str], seqlen: int = 128, batch_tokens: int = BATCH_TOKENS
) -> tuple[float, int]:
    """Summed negative log-likelihood over all texts and the number of predicted tokens."""
    sums, counts = per_text_nll(model, tokenizer, texts, seqlen, batch_tokens)
    return sum(sums), sum(counts)


def perplexity(model, tokenizer, texts: Sequence[str], seqlen: int = 128, batch_tokens: int = BATCH_TOKENS) -> float:
    total, count = token_nll(model, tokenizer, texts, seqlen, batch_tokens)
    return math.exp(total / max(count, 1))


def unigram_perplexity(tokenizer, train_texts: Sequence[str], texts: Sequence[str], seqlen: int = 128) -> float:
    """Perplexity of an add-one-smoothed unigram model fitted on ``train_texts``, scored on the same
    predicted tokens as :func:`perplexity` (the first token of each text is not predicted)."""
    counts: Counter[int] = Counter()
    for ids in tokenizer(list(train_texts), truncation=False)["input_ids"]:
        counts.update(ids)
    total = sum(counts.values()) + len(tokenizer)
    nll, n = 0.0, 0
    for ids in tokenizer(list(texts), truncation=True, max_length=seqlen)["input_ids"]:
        for tok in ids[1:]:
            nll -= math.log((counts[tok] + 1) / total)
            n += 1
    return math.exp(nll / max(n, 1))


def math_answers(
    model,
    tokenizer,
    records: Sequence[Record],
    max_new_tokens: int = MATH_NEW_TOKENS,
    batch_tokens: int = BATCH_TOKENS,
    wrap: Callable[[str], str] | None = None,
) -> list[int | None]:
    """Greedy answers to ``Question: …`` prompts; None where no ``Answer: N`` was produced. With
    ``wrap`` (models/chat.py) the question is a user turn of the chat template that asks for the
    ``Answer: N`` form, a chat model may write ``CHAT_NEW_TOKENS`` tokens (it reasons before it
    answers), and its final answer is read as self-generation reads it (``**Answer:** 5``, "the
    answer is 5", else the last number)."""
    if wrap is None:
        prompts = [f"Question: {r.meta['question']}\n" for r in records]
        found = (MATH_ANSWER.search(t) for t in generate(model, tokenizer, prompts, max_new_tokens, (), batch_tokens))
        return [int(m.group(1)) if m else None for m in found]
    prompts = [wrap(f"{r.meta['question']}\n{CHAT_ANSWER_FORM}") for r in records]
    texts = generate(model, tokenizer, prompts, max(max_new_tokens, CHAT_NEW_TOKENS), (), batch_tokens)
    return [_as_int(final_answer(own_answer(t))) for t in texts]


def _as_int(answer: str | None) -> int | None:
    try:
        return int(answer) if answer is not None else None
    except ValueError:  # a fraction or text: never an integer answer
        return None


def math_exact_match(model, tokenizer, records: Sequence[Record], **kwargs) -> dict[int, tuple[int, int]]:
    """Per tier: (correct, total) of greedy exact match."""
    got = math_answers(model, tokenizer, records, **kwargs)
    result: dict[int, list[int]] = {}
    for rec, ans in zip(records, got, strict=True):
        cell = result.setdefault(rec.meta["tier"], [0, 0])
        cell[0] += int(ans == rec.meta["answer"])
        cell[1] += 1
    return {tier: (c, n) for tier, (c, n) in sorted(result.items())}


@torch.inference_mode()
def facts_choices(
    model,
    tokenizer,
    records: Sequence[Record],
    batch_tokens: int = BATCH_TOKENS,
    form: str = "prompt",
    wrap: Callable[[str], str] | None = None,
) -> list[int]:
    """Index of the choice with the highest summed log-likelihood after each record's prompt
    (``form="prompt"``, ``Question: … Answer:``, never seen for an evaluated town) or its trained
    statement (``form="cloze"``); ``wrap`` renders the prompt as a user turn, the choice following the
    assistant's generation prompt."""
    prompts, conts, owners = [], [], []
    for i, rec in enumerate(records):
        for choice in rec.meta["choices"]:
            prompts.append(wrap(rec.meta[form]) if wrap else rec.meta[form])
            conts.append(f" {choice}")
            owners.append(i)
    scores = continuation_logprobs(model, tokenizer, prompts, conts, batch_tokens)
    best: dict[int, tuple[float, int]] = {}
    k = 0
    for i, rec in enumerate(records):
        for j in range(len(rec.meta["choices"])):
            if i not in best or scores[k] > best[i][0]:
                best[i] = (scores[k], j)
            k += 1
    return [best[i][1] for i in range(len(records))]


def facts_accuracy(
    model, tokenizer, records: Sequence[Record], batch_tokens: int = BATCH_TOKENS, form: str = "prompt"
) -> tuple[int, int]:
    picks = facts_choices(model, tokenizer, records, batch_tokens, form)
    return sum(p == r.meta["answer_index"] for p, r in zip(picks, records, strict=True)), len(records)
