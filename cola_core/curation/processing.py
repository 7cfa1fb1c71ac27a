"""Stage 2 of COLA (He et al., NeurIPS 2025, §4.2): the compositional properties of calibration data.

- sequence length: truncate or pack to ``seqlen`` tokens, drop samples under ``min_tokens``, and
  record every sample's token count in ``meta["n_tokens"]``;
- format: records with question/reasoning/answer structure rendered as ``Question / Reasoning /
  Answer`` (explicit reasoning), or as plain ``Question / Answer``;
- quality: drop exact duplicates and near duplicates (MinHash over character 5-grams), and the
  worst fraction by the model's own perplexity (``meta["perplexity"]``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from cola_core.calibration.files import DEFAULT_SEQLEN
from cola_core.corpora import Record
from cola_core.corpora.math_problems import render
from cola_core.corpora.quality import drop_worst, score_perplexity
from cola_core.errors import ColaError
from cola_core.models.batching import BATCH_TOKENS
from cola_core.models.chat import CHAT_MODES, THINKING, chat_record, has_template, uses_template
from cola_core.models.loading import context_length
from cola_core.settings import setting


@dataclass(frozen=True)
class ProcessingConfig:
    """Stage 2's settings (§4.2): length, reasoning format, quality."""

    seqlen: int = setting(DEFAULT_SEQLEN, "tokens per sample (Stage 2 length)")
    min_tokens: int = setting(8, "drop samples shorter than this")
    mode: str = setting("truncate", "truncate or pack", flag="--length-mode", choices=("truncate", "pack"))
    reasoning_format: str = setting("keep", "keep, explicit or plain", choices=("keep", "explicit", "plain"))
    dedupe: bool = setting(True, "keep exact and near duplicates")  # the flag turns it off: --no-dedupe
    near_duplicate_jaccard: float = setting(0.9, "1.0 disables near-duplicate removal", cli=False)
    drop_worst_perplexity: float = setting(
        0.0, "drop this fraction of highest-perplexity samples", flag="--drop-worst-ppl"
    )
    chat_template: str = setting(
        "auto",
        "Q&A records through the tokenizer's chat template when it has one (auto), never (off), or prose too (wrap)",
        choices=CHAT_MODES,
    )
    thinking: str = setting("auto", "the chat template's thinking switch: on, off, or its default", choices=THINKING)

    def validate(self, max_positions: int | None = None) -> None:
        if self.seqlen <= 0:
            raise ColaError(f"sequence length must be positive, got {self.seqlen}")
        if max_positions and self.seqlen > max_positions:
            raise ColaError(f"sequence length {self.seqlen} exceeds the model's context of {max_positions} tokens")
        if self.mode not in ("truncate", "pack"):
            raise ColaError(f"unknown length mode '{self.mode}': use truncate or pack")
        if self.reasoning_format not in ("keep", "explicit", "plain"):
            raise ColaError(f"unknown reasoning format '{self.reasoning_format}': use keep, explicit or plain")
        if self.thinking not in THINKING:
            raise ColaError(f"--thinking is one of {', '.join(THINKING)}, got '{self.thinking}'")
        if self.chat_template not in CHAT_MODES:
            raise ColaError(f"--chat-template is one of {', '.join(CHAT_MODES)}, got '{self.chat_template}'")
        if not 0.0 <= self.drop_worst_perplexity < 1.0:
            raise ColaError(f"the perplexity drop fraction must lie in [0, 1), got {self.drop_worst_perplexity}")


def apply_format(record: Record, style: str) -> Record:
    """Re-render question/answer records; others pass through unchanged."""
    meta = record.meta
    if style == "keep" or not record.is_qa:
        return record
    reasoning = meta.get("reasoning") if style == "explicit" else None
    if style == "explicit" and not reasoning:
        return record
    return replace(record, text=render(meta["question"], reasoning, meta["answer"]))


def render_chat(
    records: Sequence[Record], tokenizer, config: ProcessingConfig
) -> tuple[list[Record], dict[str, str | int | bool]]:
    """Records as the model sees text deployed (models/chat.py): Q&A records through the tokenizer's
    chat template under ``auto`` (prose too under ``wrap``); and what Stage 2 reports of it."""
    applied = uses_template(tokenizer, config.chat_template)
    out = (
        [chat_record(r, tokenizer, config.chat_template, config.thinking, config.reasoning_format) for r in records]
        if applied
        else list(records)
    )
    report = {
        "mode": config.chat_template,
        "template": has_template(tokenizer),
        "thinking": config.thinking,
        "rendered": sum(bool(r.meta.get("chat_template")) for r in out),
    }
    return out, report


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def drop_duplicates(
    records: Sequence[Record], near_jaccard: float = 0.9, num_perm: int = 64, bands: int = 16
) -> list[Record]:
    """Exact duplicates (after whitespace/case normalisation), then near duplicates: MinHash with
    banded LSH for candidates, confirmed by exact Jaccard of the 5-gram sets. Keeps first seen."""
    seen: set[str] = set()
    unique = []
    for r in records:
        h = hashlib.sha1(_normalise(r.text).encode()).hexdigest()
        if h not in seen:
            seen.add(h)
            unique.append(r)
    if near_jaccard >= 1.0 or len(unique) < 2:
        return unique
    shingles = [_shingles(_normalise(r.text)) for r in unique]
    rng = np.random.default_rng(0)
    a = rng.integers(1, 2**31 - 1, num_perm, dtype=np.uint64)
    b = rng.integers(0, 2**31 - 1, num_perm, dtype=np.uint64)
    prime = np.uint64(2**31 - 1)
    keep = np.ones(len(unique), dtype=bool)
    buckets: dict[tuple, list[int]] = {}
    rows = num_perm // bands
    for i, sh in enumerate(shingles):
        x = np.fromiter(sh, dtype=np.uint64, count=len(sh)) if sh else np.zeros(1, dtype=np.uint64)
        sig = ((np.outer(x, a) + b) % prime).min(0)
        dup = False
        for band in range(bands):
            key = (band, *sig[band * rows : (band + 1) * rows].tolist())
            for j in buckets.get(key, []):
                if keep[j] and _jaccard(sh, shingles[j]) >= near_jaccard:
                    dup = True
                    break
            if dup:
                break
        if dup:
            keep[i] = False
            continue
        for band in range(bands):
            buckets.setdefault((band, *sig[band * rows : (band + 1) * rows].tolist()), []).append(i)
    return [r for r, k in zip(unique, keep, strict=True) if k]


def _shingles(text: str, k: int = 5) -> set[int]:
    return {
        int.from_bytes(hashlib.blake2b(text[i : i + k].encode(), digest_size=4).digest(), "big")
        for i in range(max(1, len(text) - k + 1))
    }


def _jaccard(x: set[int], y: set[int]) -> float:
    return len(x & y) / max(1, len(x | y))


def shape_lengths(records: Sequence[Record], tokenizer, config: ProcessingConfig) -> list[Record]:
    """Truncate or pack to ``seqlen`` tokens; drop short ones; store ``meta["n_tokens"]``."""
    return _shape_lengths(records, tokenizer, config)[0]


def _shape_lengths(records: Sequence[Record], tokenizer, config: ProcessingConfig) -> tuple[list[Record], int, int]:
    """:func:`shape_lengths`, and how many samples were truncated and how many dropped as too short."""
    out: list[Record] = []
    ids = tokenizer([r.text for r in records], add_special_tokens=False)["input_ids"]
    if config.mode == "truncate":
        truncated = 0
        for r, full in zip(records, ids, strict=True):
            tok = full[: config.seqlen]
            if len(tok) >= config.min_tokens:
                truncated += len(full) > config.seqlen
                text = r.text if len(full) <= config.seqlen else tokenizer.decode(tok)
                out.append(replace(r, text=text, meta={**r.meta, "n_tokens": len(tok)}))
        return out, truncated, len(records) - len(out)
    by_corpus: dict[str, list[int]] = {}
    for r, tok in zip(records, ids, strict=True):  # pack within a corpus, documents joined by EOS
        by_corpus.setdefault(r.corpus, []).extend([*tok, tokenizer.eos_token_id])
    for corpus, stream in by_corpus.items():
        domain = next(r.domain for r in records if r.corpus == corpus)
        for n, start in enumerate(range(0, len(stream) - config.min_tokens + 1, config.seqlen)):
            chunk = stream[start : start + config.seqlen]
            text = tokenizer.decode(chunk, skip_special_tokens=False)
            out.append(
                Record(f"{corpus}/packed/{n:06d}", text, corpus, domain, {"n_tokens": len(chunk), "packed": True})
            )
    return out, 0, 0


def process_records(records: Sequence[Record], tokenizer, config: ProcessingConfig, model=None) -> list[Record]:
    """Stage 2 in order: format, dedupe, length, then (with a model) perplexity scoring and filter."""
    return process_with_report(records, tokenizer, config, model)[0]


def process_with_report(
    records: Sequence[Record], tokenizer, config: ProcessingConfig, model=None, batch_tokens: int = BATCH_TOKENS
) -> tuple[list[Record], dict[str, int | str | bool]]:
    """:func:`process_records`, and what Stage 2 did: samples in and out, how many were re-rendered in
    the reasoning format, dropped as (near) duplicates, truncated or too short, packed, dropped by
    perplexity, and the tokens left."""
    config.validate(context_length(model) if model is not None else None)
    formatted = [apply_format(r, config.reasoning_format) for r in records]
    reformatted = sum(a.text != b.text for a, b in zip(records, formatted, strict=True))
    out = drop_duplicates(formatted, config.near_duplicate_jaccard) if config.dedupe else formatted
    deduped = len(out)
    out, chat = render_chat(out, tokenizer, config)  # after dedupe: a template's shared preamble is no likeness
    out, truncated, too_short = _shape_lengths(out, tokenizer, config)
    shaped = len(out)
    if model is not None:
        out = score_perplexity(out, model, tokenizer, config.seqlen + 1, batch_tokens)
        out = drop_worst(out, config.drop_worst_perplexity)
    elif config.drop_worst_perplexity > 0:
        raise ColaError("the perplexity filter needs a model")
    if not out:
        raise ColaError(f"no samples left after processing (min {config.min_tokens} tokens, seqlen {config.seqlen})")
    report = {
        "samples_in": len(records),
        "reasoning_format": config.reasoning_format,
        "reformatted": reformatted,
        # Q&A-structured records (built-in math, a --fields file): the format applies to these alone;
        # a file's were rendered when read, so "reformatted" counts only those whose text changed here
        "qa_records": sum(r.is_qa for r in records),
        "chat_template": chat,
        "duplicates_dropped": len(formatted) - deduped,
        "length_mode": config.mode,
        "seqlen": config.seqlen,
        "truncated": truncated,
        "too_short_dropped": too_short,
        "perplexity_dropped": shaped - len(out),
        "samples_out": len(out),
        "tokens": sum(r.meta.get("n_tokens", 0) for r in out),
    }
    return out, report
