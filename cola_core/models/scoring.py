"""Scoring primitives on a causal LM: per-text negative log-likelihood (Stage 2 quality filtering,
held-out perplexity), batched greedy generation and continuation log-probabilities (multiple choice).
Every forward masks padding, so padded batches score like single texts."""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch

from cola_core.models.architecture import input_device
from cola_core.models.batching import BATCH_TOKENS, length_batches
from cola_core.models.chat import encode
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


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int, device, left: bool = False) -> dict[str, torch.Tensor]:
    """Token rows padded into one batch with its attention mask: on the right for scoring, on the
    left for generation (which continues at the right)."""
    width = max(map(len, rows))
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for r, row in enumerate(rows):
        cols = slice(width - len(row), width) if left else slice(0, len(row))
        input_ids[r, cols] = torch.tensor(row, dtype=torch.long)
        mask[r, cols] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}


@torch.inference_mode()
def per_text_nll(
    model,
    tokenizer,
    texts: Sequence[str],
    seqlen: int = 128,
    batch_tokens: int = BATCH_TOKENS,
    correct: list[int] | None = None,
) -> tuple[list[float], list[int]]:
    """Summed negative log-likelihood (nats) of each text's predicted tokens, and their counts.

    Texts are truncated to ``seqlen`` tokens and batched by token budget (models/batching.py);
    padding is masked out. If ``correct`` is a list, the number of tokens each text's greedy (argmax)
    prediction gets right is appended to it. Memory stays bounded whatever the vocabulary
    (:func:`target_logprobs`)."""
    rows = encode(tokenizer, list(texts), truncation=True, max_length=seqlen) if len(texts) else []
    sums, counts, right = [0.0] * len(rows), [0] * len(rows), [0] * len(rows)
    for batch in length_batches([len(r) for r in rows], batch_tokens):
        enc = pad_rows([rows[i] for i in batch], tokenizer.pad_token_id, input_device(model))
        logp, hits = target_logprobs(model, enc["input_ids"], enc["attention_mask"], argmax=correct is not None)
        mask = enc["attention_mask"][:, 1:].float().cpu()
        for r, i in enumerate(batch):
            sums[i], counts[i] = float((-logp[r] * mask[r]).sum()), int(mask[r].sum())
            if correct is not None:
                right[i] = int((hits[r].float() * mask[r]).sum())
    if correct is not None:
        correct.extend(right)
    return sums, counts


def left_pad(rows: Sequence[Sequence[int]], pad_id: int, device) -> dict[str, torch.Tensor]:
    """Token rows left-padded into one batch with its attention mask (generation continues at the right)."""
    return pad_rows(rows, pad_id, device, left=True)


@torch.inference_mode()
def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int,
    stop: Sequence[str],
    batch_tokens: int = BATCH_TOKENS,
) -> list[str]:
    """Greedy continuations, cut at the first stop string; prompts cut from the left to fit the
    context, batched so that prompt + new tokens of a batch stay within ``batch_tokens``."""
    device = input_device(model)
    max_prompt = max(1, context_length(model) - max_new_tokens)
    rows = [p[-max_prompt:] for p in encode(tokenizer, list(prompts))] if len(prompts) else []
    out = [""] * len(rows)
    for batch in length_batches([len(r) + max_new_tokens for r in rows], batch_tokens):
        enc = left_pad([rows[i] for i in batch], tokenizer.pad_token_id, device)
        ids = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        texts = tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        for i, text in zip(batch, texts, strict=True):
            cut = min((j for j in (text.find(x) for x in stop) if j >= 0), default=len(text))
            out[i] = text[:cut]
    return out


@torch.inference_mode()
def continuation_logprobs(
    model,
    tokenizer,
    prompts: Sequence[str],
    conts: Sequence[str],
    batch_tokens: int = BATCH_TOKENS,
    max_length: int | None = None,
) -> list[float]:
    """Summed log-probability of each continuation given its prompt (right padding, masked), batched
    by token budget.

    With ``max_length``, prompts are cut from the left so prompt + continuation fit."""
    if not len(prompts):
        return []
    p_ids = encode(tokenizer, list(prompts))
    c_ids = tokenizer(list(conts), add_special_tokens=False)["input_ids"]
    if max_length:
        p_ids = [p[max(0, len(p) + len(c) - max_length) :] or p[-1:] for p, c in zip(p_ids, c_ids, strict=True)]
    seqs = [p + c for p, c in zip(p_ids, c_ids, strict=True)]
    out = [0.0] * len(seqs)
    device = input_device(model)
    for batch in length_batches([len(s) for s in seqs], batch_tokens):
        enc = pad_rows([seqs[i] for i in batch], tokenizer.pad_token_id, device)
        logp, _ = target_logprobs(model, enc["input_ids"], enc["attention_mask"])  # logp[r, i]: token i + 1
        for r, i in enumerate(batch):
            start = len(p_ids[i]) - 1
            out[i] = logp[r, start : start + len(c_ids[i])].sum().item()
    return out
