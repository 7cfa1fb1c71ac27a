"""Self-generated calibration data (Ji et al., "Beware of Calibration Data for Pruning Large Language
Models", ICLR 2025): prompt the model with the first tokens of real documents, let it continue to the
calibration length, drop the worst fraction by its own perplexity, and use the rest as a corpus like
any other.

Useful when the model's training data is unknown: the model's own continuations lie in the region of
activation space it was trained on. Ji et al. find them closer to the training data than common
calibration corpora, and better calibration data for Wanda, DSnoT and OWL.

Their recipe, which the defaults follow: prompts are the starts of documents from a source corpus;
sampling with top-k 50, top-p 0.95, temperature 0.6–0.8 and repetition penalty 1.1–1.2; texts at or
above the 80th percentile of perplexity are dropped. Where we differ on purpose:

- length: continuations run to our calibration length (``ProcessingConfig.seqlen``, 256 tokens;
  theirs is 2048), capped so that prompt + continuation fit the model's context;
- prompts: 8 tokens by default (see ``SelfGenConfig.prefix_tokens``) from the built-in ``prose``
  corpus, which needs no network; theirs come from Wikipedia. Any corpus spec works
  (``hf:wikitext:wikitext-2-raw-v1:train`` included);
- a text is prompt + continuation, scored as a whole, so a sample starts like the document it came
  from; a text whose continuation is empty is dropped rather than kept as real data;
- the filter keeps the ``round(n × 0.8)`` texts of lowest perplexity (ties at the cut broken by
  order) rather than every text below a percentile, so the corpus size is known in advance;
- batched Hugging Face ``generate`` with left padding, not vLLM.

On-policy reasoning traces (``prompts``): instead of continuing documents, the model answers a task's
questions in its own words — through its chat template when it has one (models/chat.py), else as
``Question: …`` — and where the data give a gold answer, only traces whose final answer is right are
kept: calibration from the model's own chain of thought on the task (reasoning-aware calibration).
Document prefixes stay plain text under any template: continuing a document is not a conversation.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import torch

from cola_core.corpora import Record, load_records
from cola_core.corpora.quality import drop_worst, score_perplexity
from cola_core.errors import ColaError
from cola_core.models.architecture import input_device
from cola_core.models.chat import CHAT_MODES, THINKING, encode, uses_template
from cola_core.models.chat import prompt as chat_prompt
from cola_core.models.loading import context_length
from cola_core.models.scoring import left_pad
from cola_core.settings import setting

PREFIX_POOL_LIMIT = 10_000  # records read from the prefix corpus: keeps a streamed hub dataset cheap


@dataclass(frozen=True)
class SelfGenConfig:
    """Settings of one self-generated corpus; sampling defaults as in Ji et al. (ICLR 2025)."""

    # texts sampled, before empty ones and the perplexity filter are dropped
    n: int = setting(200, "texts to generate")
    prefix_corpus: str = setting(
        "prose",
        "corpus whose documents' first tokens prompt the model: built-in name, file path or hf:NAME[:CONFIG[:SPLIT]]",
    )
    # 8 tokens fix the domain and register, and leave ~97% of a 256-token sample to the model: about
    # the share a 64-token prefix (the length in Ji et al.'s released file names) takes of 2048 tokens.
    prefix_tokens: int = setting(8, "first tokens of a document per prompt")
    prefixes: tuple[str, ...] = setting(
        (), "explicit prompt (repeatable), instead of the prefix corpus; '' = BOS alone", flag="--prefix", repeat=True
    )
    # = ProcessingConfig.seqlen: corpora/ may not import curation/ (a test checks)
    max_new_tokens: int = setting(256, "tokens generated per text (the calibration length)")
    temperature: float = setting(0.7, "sampling temperature")
    top_k: int = setting(50, "sample among the k likeliest tokens")
    top_p: float = setting(0.95, "nucleus sampling mass")
    repetition_penalty: float = setting(1.1, "> 1 discourages repeats")
    # Ji et al. keep texts below the 80th perplexity percentile
    drop_worst_perplexity: float = setting(0.2, "drop this highest-perplexity fraction", flag="--drop-worst-ppl")
    batch_size: int = setting(32, "prompts per generation batch", cli=False)
    seed: int = setting(0, "sampling seed")
    prompts: str = setting(
        "",
        "questions the model answers in its own words, instead of document prefixes: a file, hf:NAME or built-in corpus",
    )
    prompt_fields: str = setting(
        "", "--prompts columns: question=COL[,answer=COL]; with answers, only right ones are kept", flag="--fields"
    )
    chat_template: str = setting(
        "auto",
        "--prompts as a user turn of the tokenizer's chat template when it has one (auto), or plain (off)",
        choices=CHAT_MODES[:2],
    )
    thinking: str = setting("auto", "the chat template's thinking switch: on, off, or its default", choices=THINKING)

    def validate(self) -> None:
        if self.n <= 0 or self.max_new_tokens <= 0:
            raise ColaError("self-generation needs n > 0 and max_new_tokens > 0")
        if self.batch_size <= 0:
            raise ColaError(f"the generation batch size must be positive, got {self.batch_size}")
        if self.prompt_fields and not self.prompts:
            raise ColaError("--fields names the columns of --prompts; give --prompts FILE too")
        if self.prompts and self.prefixes:
            raise ColaError("--prompts (questions to answer) and --prefix (text to continue) exclude each other")
        if not self.prefixes and (self.prefix_tokens <= 0 or not self.prefix_corpus.strip()):
            raise ColaError("prompts from a corpus need a prefix corpus and prefix_tokens > 0")
        if self.temperature <= 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ColaError("sampling needs temperature > 0, top_p in (0, 1] and top_k ≥ 0")
        if not 0 <= self.drop_worst_perplexity < 1:
            raise ColaError(f"the perplexity drop fraction must lie in [0, 1), got {self.drop_worst_perplexity}")


def first_tokens(tokenizer, text: str, n_tokens: int) -> str:
    """The text of ``text``'s first ``n_tokens`` tokens, fewer if the cut would split a character."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:n_tokens]
    # byte-level BPE splits a UTF-8 character across tokens; a prompt ending in half of one decodes to "�"
    while ids and tokenizer.decode(ids).endswith("\ufffd"):
        ids = ids[:-1]
    return tokenizer.decode(ids)


def draw_prompts(tokenizer, config: SelfGenConfig) -> list[tuple[str, str | None]]:
    """``(prompt, id of the record it came from)`` for each of the ``config.n`` texts.

    Explicit ``prefixes`` are cycled (no source id). Otherwise documents of the prefix corpus's pool
    split are drawn in an order fixed by ``seed``, each once before any repeats, and cut to their first
    ``prefix_tokens`` tokens.
    """
    if config.prefixes:
        return [(config.prefixes[i % len(config.prefixes)], None) for i in range(config.n)]
    docs = [r for r in load_records(config.prefix_corpus, "pool", limit=PREFIX_POOL_LIMIT) if r.text.strip()]
    if not docs:
        raise ColaError(f"the prefix corpus '{config.prefix_corpus}' has no text to draw prompts from")
    order = _draw_order(len(docs), config.n, config.seed)
    return [(first_tokens(tokenizer, docs[i].text, config.prefix_tokens), docs[i].id) for i in order]


def _draw_order(items: int, n: int, seed: int) -> list[int]:
    """``n`` indices into ``items`` sources in an order fixed by ``seed``, each once before any repeats."""
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < n:
        order += rng.sample(range(items), items)
    return order[:n]


# "Answer: 42", "**Answer:** $1,234", "the answer is 5.5"; markdown bold and a currency sign allowed
_ANSWER = re.compile(r"answer[*\s]*(?:is|:)?[*\s:]*\$?(-?[\d,]*\.?\d+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")
_NEXT_QUESTION = re.compile(r"\n\s*Question:")  # a plain-text model that goes on to invent the next problem


def questions(config: SelfGenConfig) -> list[tuple[str, str | None, str]]:
    """``(question, gold answer or None, source id)`` for each of ``config.n`` texts, from ``prompts``
    (``prompt_fields`` ``question=COL[,answer=COL]`` for a file or hub dataset; built-in Q&A corpora
    such as ``math`` carry both), drawn in an order fixed by ``seed``, each once before repeats."""
    spec, mapping = config.prompts, dict(pair.split("=", 1) for pair in config.prompt_fields.split(",") if "=" in pair)
    unknown = set(mapping) - {"question", "answer"}
    if unknown or (config.prompt_fields and "question" not in mapping):
        raise ColaError(f"--fields for --prompts: use question=COL[,answer=COL], got '{config.prompt_fields}'")
    if "answer" in mapping:
        records = load_records(
            spec, "pool", limit=PREFIX_POOL_LIMIT, fields=f"question={mapping['question']},answer={mapping['answer']}"
        )
    elif "question" in mapping:
        records = load_records(spec, "pool", limit=PREFIX_POOL_LIMIT, text_field=mapping["question"])
    else:
        records = load_records(spec, "pool", limit=PREFIX_POOL_LIMIT)
    rows = [
        (str(r.meta["question"]), str(r.meta["answer"]), r.id) if r.is_qa else (r.text, None, r.id)
        for r in records
        if r.text.strip()
    ]
    if not rows:
        raise ColaError(f"--prompts {spec} holds no questions")
    return [rows[i] for i in _draw_order(len(rows), config.n, config.seed)]


def own_answer(text: str) -> str:
    """A generated answer up to where the model starts another ``Question:`` of its own invention."""
    found = _NEXT_QUESTION.search(text)
    return text[: found.start()] if found else text


def final_answer(text: str) -> str | None:
    """The answer a trace ends on: the number after its last ``Answer:`` (``the answer is``, markdown
    bold allowed), else its last number, exactly (thousands separators and trailing zeros dropped).
    None when it gives no number."""
    found = _ANSWER.findall(text) or _NUMBER.findall(text)
    return _number(found[-1]) if found else None


def _number(text: str) -> str:
    """A number's exact canonical form ("1,200.50" → "1200.5"); other text lower-cased and stripped."""
    value = text.replace(",", "").strip().rstrip(".")
    try:
        exact = Decimal(value).normalize()
    except InvalidOperation:
        return value.lower()
    return f"{exact:f}" if exact.is_finite() else value.lower()


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """The prompt with the tokenizer's own special tokens (BOS where it adds one). An empty prompt on a
    tokenizer that adds no BOS (Qwen2.5-style) starts from EOS instead, or from a newline if there is
    no EOS either: ``generate`` needs at least one token."""
    (ids,) = encode(tokenizer, [prompt])  # a rendered conversation brings its own BOS
    if not ids and tokenizer.eos_token_id is not None:
        ids = [tokenizer.eos_token_id]
    if not ids:
        ids = tokenizer("\n", add_special_tokens=False)["input_ids"]
    return ids


def _sample_batch(model, tokenizer, prompts: list[str], config: SelfGenConfig) -> list[tuple[str, str]]:
    """``(text, continuation)`` per prompt, the text being prompt + continuation."""
    rows = [prompt_ids(tokenizer, p) for p in prompts]
    max_new = min(config.max_new_tokens, context_length(model) - max(map(len, rows)))
    if max_new < 1:
        raise ColaError(f"a prompt of {max(map(len, rows))} tokens leaves no room in the model's context")
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    if pad is None:  # load_model gives every tokenizer one (ensure_pad_token); scoring needs it too
        raise ColaError("the tokenizer has no pad token; load the model with cola_core.models.loading.load_model")
    enc = left_pad(rows, pad, input_device(model))
    out = model.generate(
        **enc,
        do_sample=True,
        max_new_tokens=max_new,
        temperature=config.temperature,
        top_k=config.top_k,
        top_p=config.top_p,
        repetition_penalty=config.repetition_penalty,
        pad_token_id=pad,
        eos_token_id=eos,
    )
    results = []
    for prompt, row, new in zip(prompts, rows, out[:, enc["input_ids"].shape[1] :].tolist(), strict=True):
        new = new[: new.index(eos)] if eos in new else new  # after EOS come pad tokens
        text = tokenizer.decode(row + new, skip_special_tokens=True)
        if not text.startswith(prompt):  # a tokenizer that normalises the prompt: keep it verbatim
            text = prompt + tokenizer.decode(new, skip_special_tokens=True)
        results.append((text, text[len(prompt) :]))
    return results


@torch.inference_mode()
def sample_self_corpus(model, tokenizer, config: SelfGenConfig = SelfGenConfig(), name: str = "self") -> list[Record]:
    """Every sampled text with a non-empty continuation, scored (``meta["perplexity"]``), unfiltered.

    ``meta`` also holds the ``prompt`` and ``prefix_source``, the id of the prefix-corpus record the
    prompt came from (None for explicit prefixes).
    """
    config.validate()
    if config.prompts:
        return _answer_questions(model, tokenizer, config, name)
    prompts = draw_prompts(tokenizer, config)
    torch.manual_seed(config.seed)
    records: list[Record] = []
    for start in range(0, len(prompts), config.batch_size):
        batch = prompts[start : start + config.batch_size]
        sampled = _sample_batch(model, tokenizer, [p for p, _ in batch], config)
        for (prompt, source), (text, continuation) in zip(batch, sampled, strict=True):
            if continuation.strip():
                meta = {"prefix_source": source, "prompt": prompt}
                records.append(Record(f"{name}/{len(records):06d}", text, name, "self", meta))
    if not records:
        raise ColaError("the model generated only empty continuations; try other prompts or a higher temperature")
    return score_perplexity(records, model, tokenizer, seqlen=context_length(model))


def _answer_questions(model, tokenizer, config: SelfGenConfig, name: str) -> list[Record]:
    """On-policy reasoning traces: each question asked (through the chat template when there is one),
    the model's sampled answer kept as prompt + answer; with gold answers, only right ones."""
    asked = questions(config)
    chat = uses_template(tokenizer, config.chat_template)
    torch.manual_seed(config.seed)
    records: list[Record] = []
    graded = 0
    for start in range(0, len(asked), config.batch_size):
        batch = asked[start : start + config.batch_size]
        shown = [chat_prompt(tokenizer, q, config.thinking) if chat else f"Question: {q}\n" for q, _, _ in batch]
        for (question, gold, source), prompt, (text, answer) in zip(
            batch, shown, _sample_batch(model, tokenizer, shown, config), strict=True
        ):
            mine = own_answer(answer)
            text, answer = text[: len(text) - len(answer) + len(mine)], mine
            predicted = final_answer(answer)
            correct = None if gold is None else predicted is not None and predicted == _number(gold)
            graded += gold is not None
            if answer.strip() and correct is not False:
                meta = {
                    "prompt": prompt,
                    "prefix_source": source,
                    "task_question": question,
                    "gold_answer": gold,
                    "predicted_answer": predicted,
                    "correct": correct,
                    "chat_template": chat,
                }
                records.append(Record(f"{name}/{len(records):06d}", text, name, "self", meta))
    if not records:
        why = f"it answered none of {graded} questions right" if graded else "its answers were all empty"
        if graded and not any(_NUMBER.fullmatch(str(g).replace(" ", "")) for _, g, _ in asked if g is not None):
            why += " (the gold answers are not numbers; answers are compared as numbers)"
        raise ColaError(f"no self-generated traces to keep: {why}; try other --prompts or a higher temperature")
    return score_perplexity(records, model, tokenizer, seqlen=context_length(model))


def generate_self_corpus(model, tokenizer, config: SelfGenConfig = SelfGenConfig(), name: str = "self") -> list[Record]:
    """Sample ``config.n`` texts, score them, and keep all but the worst-perplexity fraction."""
    return drop_worst(sample_self_corpus(model, tokenizer, config, name), config.drop_worst_perplexity)


def write_self_corpus(records: list[Record], path: str | Path) -> Path:
    from cola_core.corpora.jsonl import save_jsonl

    return save_jsonl(records, path)


def cached_self_corpus(loaded, config: SelfGenConfig = SelfGenConfig()) -> Path:
    """The self-generated corpus of a model and settings as a .jsonl under ``cache/selfgen/``, made once."""
    import hashlib
    import json
    from dataclasses import asdict

    from cola_core.paths import cache_root

    key = hashlib.sha256(json.dumps([loaded.fingerprint, asdict(config)], sort_keys=True).encode()).hexdigest()[:12]
    path = cache_root() / "selfgen" / f"self-{key}.jsonl"
    if not path.exists():  # save_jsonl writes atomically: a half-written file never appears
        write_self_corpus(generate_self_corpus(loaded.model, loaded.tokenizer, config, name="self"), path)
    return path
