"""Capability scores of a causal LM on the built-in held-out splits.

- language modelling: per-token perplexity of held-out text, and a unigram baseline on the same
  tokens (the floor a model must beat to have learned anything beyond token frequencies);
- math: exact match of the greedy answer after ``Answer:`` on held-out word problems, per tier;
- facts: multiple-choice accuracy by the log-likelihood of each choice completing the fact's cloze.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import torch

from cola_core.architecture import input_device
from cola_core.corpora import Record
from cola_core.models import context_length

_ANSWER = re.compile(r"Answer:\s*(-?\d+)")


@torch.inference_mode()
def per_text_nll(
    model, tokenizer, texts: Sequence[str], seqlen: int = 128, batch_size: int = 32, correct: list[int] | None = None
) -> tuple[list[float], list[int]]:
    """Summed negative log-likelihood (nats) of each text's predicted tokens, and their counts.

    Texts are truncated to ``seqlen`` tokens; padding is masked out. If ``correct`` is a list, the
    number of tokens each text's greedy (argmax) prediction gets right is appended to it.
    """
    sums: list[float] = []
    counts: list[int] = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[start : start + batch_size]), return_tensors="pt", padding=True,
                        truncation=True, max_length=seqlen).to(input_device(model))  # fmt: skip
        logits = model(**enc).logits[:, :-1].float()
        targets = enc["input_ids"][:, 1:]
        mask = enc["attention_mask"][:, 1:].float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none") * mask
        sums += nll.sum(1).tolist()
        counts += mask.sum(1).long().tolist()
        if correct is not None:
            correct.extend(((logits.argmax(-1) == targets).float() * mask).sum(1).long().tolist())
    return sums, counts


def token_nll(model, tokenizer, texts: Sequence[str], seqlen: int = 128, batch_size: int = 32) -> tuple[float, int]:
    """Summed negative log-likelihood over all texts and the number of predicted tokens."""
    sums, counts = per_text_nll(model, tokenizer, texts, seqlen, batch_size)
    return sum(sums), sum(counts)


def perplexity(model, tokenizer, texts: Sequence[str], seqlen: int = 128, batch_size: int = 32) -> float:
    total, count = token_nll(model, tokenizer, texts, seqlen, batch_size)
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


def _left_padded(tokenizer, prompts: Sequence[str], max_prompt: int, device) -> dict[str, torch.Tensor]:
    ids = [p[-max_prompt:] for p in tokenizer(list(prompts))["input_ids"]]
    width = max(map(len, ids))
    input_ids = torch.full((len(ids), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for r, row in enumerate(ids):
        input_ids[r, width - len(row) :] = torch.tensor(row)
        mask[r, width - len(row) :] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}


@torch.inference_mode()
def generate(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str],
             batch_size: int = 16) -> list[str]:  # fmt: skip
    """Greedy continuations, cut at the first stop string; prompts cut from the left to fit the context."""
    device = input_device(model)
    max_prompt = max(1, context_length(model) - max_new_tokens)
    out: list[str] = []
    for s in range(0, len(prompts), batch_size):
        enc = _left_padded(tokenizer, prompts[s : s + batch_size], max_prompt, device)
        ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)  # fmt: skip
        for text in tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True):
            cut = min((i for i in (text.find(x) for x in stop) if i >= 0), default=len(text))
            out.append(text[:cut])
    return out


def math_answers(
    model, tokenizer, records: Sequence[Record], max_new_tokens: int = 40, batch_size: int = 64
) -> list[int | None]:
    """Greedy answers to ``Question: …`` prompts; None where no ``Answer: N`` was produced."""
    prompts = [f"Question: {r.meta['question']}\n" for r in records]
    found = (_ANSWER.search(t) for t in generate(model, tokenizer, prompts, max_new_tokens, (), batch_size))
    return [int(m.group(1)) if m else None for m in found]


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
def facts_choices(model, tokenizer, records: Sequence[Record], batch_size: int = 64) -> list[int]:
    """Index of the choice with the highest summed log-likelihood after each record's cloze."""
    prompts, conts, owners = [], [], []
    for i, rec in enumerate(records):
        for choice in rec.meta["choices"]:
            prompts.append(rec.meta["cloze"])
            conts.append(f" {choice}.")
            owners.append(i)
    scores = continuation_logprobs(model, tokenizer, prompts, conts, batch_size)
    best: dict[int, tuple[float, int]] = {}
    k = 0
    for i, rec in enumerate(records):
        for j in range(len(rec.meta["choices"])):
            if i not in best or scores[k] > best[i][0]:
                best[i] = (scores[k], j)
            k += 1
    return [best[i][1] for i in range(len(records))]


@torch.inference_mode()
def continuation_logprobs(
    model, tokenizer, prompts: Sequence[str], conts: Sequence[str], batch_size: int = 64, max_length: int | None = None
) -> list[float]:
    """Summed log-probability of each continuation given its prompt (right padding, masked).

    With ``max_length``, prompts are cut from the left so prompt + continuation fit."""
    out: list[float] = []
    for start in range(0, len(prompts), batch_size):
        p_ids = tokenizer(list(prompts[start : start + batch_size]))["input_ids"]
        c_ids = tokenizer(list(conts[start : start + batch_size]), add_special_tokens=False)["input_ids"]
        if max_length:
            p_ids = [p[max(0, len(p) + len(c) - max_length) :] or p[-1:] for p, c in zip(p_ids, c_ids, strict=True)]
        seqs = [p + c for p, c in zip(p_ids, c_ids, strict=True)]
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = torch.tensor(s)
            mask[r, : len(s)] = 1
        logp = (
            model(input_ids=ids.to(input_device(model)), attention_mask=mask.to(input_device(model)))
            .logits.float()
            .log_softmax(-1)
            .cpu()
        )
        for r, (p, c) in enumerate(zip(p_ids, c_ids, strict=True)):
            positions = torch.arange(len(p) - 1, len(p) + len(c) - 1)
            out.append(logp[r, positions, torch.tensor(c)].sum().item())
    return out


def facts_accuracy(model, tokenizer, records: Sequence[Record], batch_size: int = 64) -> tuple[int, int]:
    picks = facts_choices(model, tokenizer, records, batch_size)
    return sum(p == r.meta["answer_index"] for p, r in zip(picks, records, strict=True)), len(records)
