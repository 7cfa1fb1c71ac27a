"""Calibration sets on disk: JSONL (text + provenance + scores), a Hugging Face ``datasets``
``save_to_disk`` directory, and a safetensors token tensor (``input_ids``/``attention_mask``,
n × seqlen) that compression tools take directly."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cola_core.corpora import Record
from cola_core.corpora.jsonl import save_jsonl
from cola_core.errors import ColaError
from cola_core.storage.atomic import atomic_write


def save_hf_dataset(records: Sequence[Record], directory: str | Path) -> Path:
    """``datasets.Dataset.save_to_disk`` with columns id, text, corpus, domain, meta (JSON string)."""
    from datasets import Dataset

    rows = {
        "id": [r.id for r in records],
        "text": [r.text for r in records],
        "corpus": [r.corpus for r in records],
        "domain": [r.domain for r in records],
        "meta": [json.dumps(r.meta, default=str) for r in records],
    }
    Dataset.from_dict(rows).save_to_disk(str(directory))
    return Path(directory)


def tokenize_calibration(records: Sequence[Record], tokenizer, seqlen: int) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` of shape (n, seqlen): truncated, right-padded."""
    if seqlen <= 0:
        raise ColaError(f"sequence length must be positive, got {seqlen}")
    enc = tokenizer(
        [r.text for r in records], truncation=True, max_length=seqlen, padding="max_length", return_tensors="pt"
    )
    return {"input_ids": enc["input_ids"].contiguous(), "attention_mask": enc["attention_mask"].contiguous()}


def save_token_tensor(
    records: Sequence[Record], tokenizer, seqlen: int, path: str | Path, fingerprint: str = ""
) -> Path:
    """safetensors with ``input_ids`` and ``attention_mask``; metadata names the tokenizer vocabulary
    size so a tool can refuse a tensor made with another tokenizer."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = tokenize_calibration(records, tokenizer, seqlen)
    meta = {
        "vocab_size": str(len(tokenizer)),
        "seqlen": str(seqlen),
        "n": str(len(records)),
        "fingerprint": fingerprint,
    }
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def load_token_tensor(path: str | Path, vocab_size: int | None = None) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ColaError(f"calibration tensor {path} does not exist")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    if vocab_size is not None and meta.get("vocab_size") and int(meta["vocab_size"]) != vocab_size:
        raise ColaError(
            f"{path.name} was tokenized with a {meta['vocab_size']}-token vocabulary, the model has {vocab_size}; re-export it for this model"
        )
    return tensors


def export_all(
    records: Sequence[Record], tokenizer, seqlen: int, out: str | Path, settings: dict[str, Any]
) -> dict[str, str]:
    """Write every format next to ``out`` (a .jsonl path): ``X.jsonl``, ``X.hf/``, ``X.safetensors``."""
    out = Path(out)
    stem = out.with_suffix("")
    paths = {
        "jsonl": save_jsonl(records, out, settings),
        "hf": save_hf_dataset(records, f"{stem}.hf"),
        "tensor": save_token_tensor(records, tokenizer, seqlen, f"{stem}.safetensors", settings.get("fingerprint", "")),
    }
    return {k: str(v) for k, v in paths.items()}


def hf_dataset_zip(records: Sequence[Record]) -> bytes:
    """A ``datasets.save_to_disk`` folder of the records, zipped in memory (for downloads)."""
    import io
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = save_hf_dataset(records, Path(tmp) / "calibration")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(folder.rglob("*")):
                if f.is_file():
                    zf.write(f, f.relative_to(Path(tmp)))
    return buf.getvalue()
