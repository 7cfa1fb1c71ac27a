"""Scoring primitives on a causal LM: per-text negative log-likelihood (Stage 2 quality filtering,
held-out perplexity), batched greedy generation and continuation log-probabilities (multiple choice).
Every forward masks padding, so padded batches score like single texts."""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch

from cola_core.models.architecture import input_device
from cola_core.models.loading import context_length

_HEAD_PATH_OK: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model → checked once
LOGIT_BUDGET = 1 << 24  # logits held at once, in floats (64 MiB in fp32), whatever the vocabulary


def _head_path_ok(model) -> bool:
    """Whether the output head applied to the base model's last hidden state reproduces the model's
    logits (true for the decoder families we support; a model with extra logit processing fails the
    check and is scored from its full logits instead). Checked once per model on a tiny input."""
    if model in _HEAD_PATH_OK:
        return _HEAD_PATH_OK[model]
    ok = False
    head = model.get_output_embeddings()
    if head is not None and getattr(model, "base_model", None) is not None and model.base_model is not model:
        ids = torch.arange(1, 9, device=input_device(model)).remainder(model.config.vocab_size)[None]
        try:
            full = model(input_ids=ids, use_cache=False).logits.float()
            ours = head(model.base_model(input_ids=ids, use_cache=False).last_hidden_state).float()
            ok = torch.allclose(full, ours, rtol=1e-4, atol=1e-4)
        except (TypeError, AttributeError, RuntimeError):
            ok = False
    _HEAD_PATH_OK[model] = ok
    return ok


@torch.inference_mode()
def target_logprobs(
    model, input_ids: torch.Tensor, attention_mask: torch.Tensor, argmax: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probability of each next token (``[batch, length − 1]``, fp32, on the CPU) and, with
    ``argmax``, whether the greedy prediction got it right.

    The full-vocabulary logits are never held for the whole batch: the output head and log-softmax
    run over chunks of positions holding at most :data:`LOGIT_BUDGET` floats, and only the target
    tokens' log-probabilities are kept, so memory does not grow with vocabulary × batch × length."""
    targets = input_ids[:, 1:]
    vocab = model.config.vocab_size
    if _head_path_ok(model):
        hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        hidden, head = hidden.last_hidden_state[:, :-1], model.get_output_embeddings()
    else:
        hidden, head = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, :-1], None
    step = max(1, LOGIT_BUDGET // max(1, len(input_ids) * vocab))
    logps, hits = [], []
    for a in range(0, targets.shape[1], step):
        logits = (head(hidden[:, a : a + step]) if head is not None else hidden[:, a : a + step]).float()
        want = targets[:, a : a + step].to(logits.device)
        logps.append(logits.log_softmax(-1).gather(-1, want[..., None])[..., 0].cpu())
        if argmax:
            hits.append((logits.argmax(-1) == want).cpu())
        del logits
    return torch.cat(logps, 1), (torch.cat(hits, 1) if argmax else None)


@torch.inference_mode()
def per_text_nll(
    model, tokenizer, texts: Sequence[str], seqlen: int = 128, batch_size: int = 32, correct: list[int] | None = None
) -> tuple[list[float], list[int]]:
    """Summed negative log-likelihood (nats) of each text's predicted tokens, and their counts.

    Texts are truncated to ``seqlen`` tokens; padding is masked out. If ``correct`` is a list, the
    number of tokens each text's greedy (argmax) prediction gets right is appended to it.
    Memory stays bounded whatever the vocabulary (:func:`target_logprobs`).
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
        logp, hits = target_logprobs(model, enc["input_ids"], enc["attention_mask"], argmax=correct is not None)
        mask = enc["attention_mask"][:, 1:].float().cpu()
        sums += (-logp * mask).sum(1).tolist()
        counts += mask.sum(1).long().tolist()
        if correct is not None:
            correct.extend((hits.float() * mask).sum(1).long().tolist())
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
        device = input_device(model)
        logp, _ = target_logprobs(model, ids.to(device), mask.to(device))  # logp[r, i]: token i + 1
        for r, (p, c) in enumerate(zip(p_ids, c_ids, strict=True)):
            positions = torch.arange(len(p) - 1, len(p) + len(c) - 1)
            out.append(logp[r, positions].sum().item())
    return out
