"""Scoring primitives on a causal LM: per-text negative log-likelihood (Stage 2 quality filtering,
held-out perplexity), batched greedy generation and continuation log-probabilities (multiple choice).
Every forward masks padding, so padded batches score like single texts."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cola_core.models.architecture import input_device
from cola_core.models.loading import context_length


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
        enc = tokenizer(
            list(texts[start : start + batch_size]),
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=seqlen,
        ).to(input_device(model))
        logits = model(**enc).logits[:, :-1].float()
        targets = enc["input_ids"][:, 1:]
        mask = enc["attention_mask"][:, 1:].float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none") * mask
        sums += nll.sum(1).tolist()
        counts += mask.sum(1).long().tolist()
        if correct is not None:
            correct.extend(((logits.argmax(-1) == targets).float() * mask).sum(1).long().tolist())
    return sums, counts


def left_pad(rows: Sequence[Sequence[int]], pad_id: int, device) -> dict[str, torch.Tensor]:
    """Token rows left-padded into one batch with its attention mask (generation continues at the right)."""
    width = max(map(len, rows))
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for r, row in enumerate(rows):
        input_ids[r, width - len(row) :] = torch.tensor(row)
        mask[r, width - len(row) :] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}


def _left_padded(tokenizer, prompts: Sequence[str], max_prompt: int, device) -> dict[str, torch.Tensor]:
    ids = [p[-max_prompt:] for p in tokenizer(list(prompts))["input_ids"]]
    return left_pad(ids, tokenizer.pad_token_id, device)


@torch.inference_mode()
def generate(
    model, tokenizer, prompts: Sequence[str], max_new_tokens: int, stop: Sequence[str], batch_size: int = 16
) -> list[str]:
    """Greedy continuations, cut at the first stop string; prompts cut from the left to fit the context."""
    device = input_device(model)
    max_prompt = max(1, context_length(model) - max_new_tokens)
    out: list[str] = []
    for s in range(0, len(prompts), batch_size):
        enc = _left_padded(tokenizer, prompts[s : s + batch_size], max_prompt, device)
        ids = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        for text in tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True):
            cut = min((i for i in (text.find(x) for x in stop) if i >= 0), default=len(text))
            out.append(text[:cut])
    return out


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
