"""Text as a chat or thinking model sees it deployed: rendered through the tokenizer's chat template.

An instruct model is served through its template (``<|im_start|>user …``, ``<|start_header_id|>…``),
so calibration on raw text measures its activations on a distribution it never sees deployed (the
paper's models are Instruct models; llm-compressor's examples render calibration the same way). Stage 2
(curation/processing.py) renders every question/answer record as a user turn and an assistant turn;
evaluation renders its prompts as a user turn followed by the assistant's generation prompt; the
self-generation prompts likewise.

- ``auto`` (the default): through the template when the tokenizer has one; plain text otherwise;
- ``off``: plain text always;
- ``wrap``: also plain text (prose, code) as the assistant's turn. ``auto`` leaves prose alone: a
  document has no user turn, and wrapping it claims the model said it in a conversation.
``thinking`` (``on``/``off``) passes ``enable_thinking`` to templates that read it (Qwen3-style);
``auto`` leaves the template's own default.

Rendered text begins with the template's own special tokens (a Llama-3 template writes
``<|begin_of_text|>`` itself), so :func:`encode` does not add the tokenizer's BOS a second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cola_core.errors import ColaError

if TYPE_CHECKING:  # models/ sits below corpora/ (docs/architecture.md): the record type only
    from cola_core.corpora import Record

CHAT_MODES = ("auto", "off", "wrap")
# Llama-3.1-style templates write today's date into the system turn unless given one: a fixed date keeps
# the rendered calibration (and its fingerprint) the same from one day to the next
DATE = "26 Jul 2024"
THINKING = ("auto", "on", "off")


def has_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def uses_template(tokenizer: Any, mode: str) -> bool:
    """Whether text is rendered through the template under ``mode``; ``wrap`` without one is an error."""
    if mode not in CHAT_MODES:
        raise ColaError(f"--chat-template is one of {', '.join(CHAT_MODES)}, got '{mode}'")
    if mode == "wrap" and not has_template(tokenizer):
        raise ColaError(
            "--chat-template wrap needs a tokenizer with a chat template; this one has none (use auto or off)"
        )
    return mode != "off" and has_template(tokenizer)


def render(tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool, thinking: str = "auto") -> str:
    """The conversation as the template writes it, as text."""
    extra = {} if thinking == "auto" else {"enable_thinking": thinking == "on"}
    try:
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt, date_string=DATE, **extra
        )
    except Exception as exc:  # a Jinja template raises what it likes (e.g. "roles must alternate")
        roles = "/".join(m["role"] for m in messages)
        raise ColaError(f"the tokenizer's chat template refused a {roles} conversation: {exc}") from None


def prompt(tokenizer: Any, text: str, thinking: str = "auto") -> str:
    """A user turn and the assistant's generation prompt: what an evaluation or generation prompt is."""
    return render(tokenizer, [{"role": "user", "content": text}], generation_prompt=True, thinking=thinking)


def chat_record(record: Record, tokenizer: Any, mode: str, thinking: str, reasoning: str) -> Record:
    """``record`` rendered through the template: a question/answer record as a user turn and the
    assistant's answer (with its reasoning unless ``reasoning`` is ``plain``); other records only
    under ``wrap``, as the assistant's turn. ``meta["chat_template"]`` marks a rendered record."""
    meta = record.meta
    if record.is_qa:
        steps = meta.get("reasoning") if reasoning != "plain" else None
        answer = f"{steps}\nAnswer: {meta['answer']}" if steps else f"Answer: {meta['answer']}"
        messages = [{"role": "user", "content": str(meta["question"])}, {"role": "assistant", "content": answer}]
    elif mode == "wrap":
        messages = [{"role": "assistant", "content": record.text}]
    else:
        return record
    text = render(tokenizer, messages, generation_prompt=False, thinking=thinking)
    return replace(record, text=text, meta={**meta, "chat_template": True})


def encode(tokenizer: Any, texts: Sequence[str], **kwargs: Any) -> list[list[int]]:
    """Token ids of each text; the tokenizer's special tokens (BOS) are added except to a text that
    already begins with its BOS token (a rendered conversation)."""
    bos = getattr(tokenizer, "bos_token", None)
    rendered = [bool(bos) and t.lstrip().startswith(bos) for t in texts]
    out: list[list[int]] = [[] for _ in texts]
    for flag in (False, True):
        index = [i for i, r in enumerate(rendered) if r == flag]
        if index:
            ids = tokenizer([texts[i] for i in index], add_special_tokens=not flag, **kwargs)["input_ids"]
            for i, row in zip(index, ids, strict=True):
                out[i] = list(row)
    return out
