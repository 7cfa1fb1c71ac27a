"""The calibration set on disk, written and read here and nowhere else. ``export_all`` writes, next
to ``X.jsonl``:

- ``X.jsonl``: the records (text + provenance + scores), and ``X.settings.json`` beside it with the
  settings that made them and the set's length under ``"seqlen"`` (:mod:`cola_core.corpora.jsonl`);
- ``X.hf/``: a Hugging Face ``datasets`` ``save_to_disk`` folder;
- ``X.safetensors``: ``input_ids`` and ``attention_mask`` (n × seqlen) that compression tools take
  directly, with the tokenizer's vocabulary size and the length in its metadata.

Curation writes a set with :func:`export_all`; compression reads it with :func:`load_calibration`.
The length a set was made at is read only through :func:`calibration_seqlen`."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from cola_core.corpora import Record
from cola_core.corpora.jsonl import load_jsonl, save_jsonl
from cola_core.errors import ColaError
from cola_core.models.chat import encode
from cola_core.storage.atomic import atomic_write
from cola_core.storage.fingerprints import calibration_fingerprint

DEFAULT_SEQLEN = 256  # tokens per sample: Stage 2's default, and a .jsonl's that records no length
SEQLEN = "seqlen"  # the key of the set's length in the .settings.json and the .safetensors metadata


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
    """``input_ids`` and ``attention_mask`` of shape (n, seqlen): truncated, padded on the tokenizer's
    padding side (right unless it says left); no second BOS on a rendered conversation (models/chat.py)."""
    if seqlen <= 0:
        raise ColaError(f"sequence length must be positive, got {seqlen}")
    rows = encode(tokenizer, [r.text for r in records], truncation=True, max_length=seqlen)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), seqlen), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), seqlen), dtype=torch.long)
    left = getattr(tokenizer, "padding_side", "right") == "left"
    for i, row in enumerate(rows):
        span = slice(seqlen - len(row), seqlen) if left else slice(0, len(row))
        ids[i, span] = torch.tensor(row, dtype=torch.long)
        mask[i, span] = 1
    return {"input_ids": ids, "attention_mask": mask}


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
        SEQLEN: str(seqlen),
        "n": str(len(records)),
        "fingerprint": fingerprint,
    }
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def load_token_tensor(path: str | Path, vocab_size: int | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` set; refused if made with a vocabulary of another size."""
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
    """Write every format next to ``out`` (a .jsonl path): ``X.jsonl`` with ``settings`` and the
    length in ``X.settings.json``, ``X.hf/``, ``X.safetensors``."""
    out = Path(out)
    stem = out.with_suffix("")
    paths = {
        "jsonl": save_jsonl(records, out, {**settings, SEQLEN: seqlen}),
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


def calibration_seqlen(path: str | Path) -> int | None:
    """The tokens per sample a calibration set was made at, as its files record it: the
    ``.safetensors`` metadata, or the ``.settings.json`` beside a ``.jsonl`` (sidecars written before
    the length had its own key hold it only in the curation config); None if unrecorded."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                return int((f.metadata() or {})[SEQLEN])
        settings = json.loads(path.with_suffix(".settings.json").read_text())
        return int(settings.get(SEQLEN) or settings["config"]["processing"]["seqlen"])
    except Exception:  # unreadable or unrecorded: the loader reports a broken file in its own words
        return None


def choose_seqlen(path: str | Path, seqlen: int | None = None) -> tuple[int | None, str | None]:
    """The tokens per sample a set is used at (None: a tensor's whole width), and a line saying why
    when ``seqlen`` does not simply say it: the set's own length, Stage 2's default for a ``.jsonl``
    that records none, or a given length that truncates the set."""
    path = Path(path)
    recorded = calibration_seqlen(path)
    if seqlen is not None:
        truncates = recorded is not None and seqlen < recorded
        why = f"sequence length {seqlen} truncates the calibration set, curated at {recorded} tokens per sample"
        return seqlen, why if truncates else None
    if recorded is not None:
        own = None if path.suffix == ".safetensors" else recorded  # a tensor is used whole: its own length
        return own, f"calibration tokens per sample: {recorded} (the set's own length)"
    if path.suffix == ".jsonl":
        return DEFAULT_SEQLEN, f"{path} records no length: tokenised to {DEFAULT_SEQLEN} tokens (Stage 2's default)"
    return None, None


def check_calibration_path(path: str | Path) -> None:
    """One line for a calibration set that cannot be one: a missing file or another kind of file.
    Checked before the model loads and before anything is said about the set's length."""
    path = Path(path)
    if path.suffix not in (".safetensors", ".jsonl"):
        raise ColaError(f"calibration set {path.name}: use the .jsonl or .safetensors written by `curate`")
    if not path.is_file():
        raise ColaError(
            f"calibration file {path} does not exist; curate one first (python -m cola_core curate --out {path.name})"
        )


def load_calibration(
    path: str | Path, tokenizer, seqlen: int | None = None, log: Callable[[str], None] | None = None
) -> tuple[dict[str, torch.Tensor], str]:
    """Token tensors from a calibration set (.safetensors as exported, or .jsonl tokenized here) at
    the length :func:`choose_seqlen` decides (``log`` hears its line), and their fingerprint
    (:func:`~cola_core.storage.fingerprints.calibration_fingerprint`)."""
    path = Path(path)
    if seqlen is not None and seqlen <= 0:
        raise ColaError(f"sequence length must be positive, got {seqlen}")
    check_calibration_path(path)
    seqlen, why = choose_seqlen(path, seqlen)
    if why and log:
        log(why)
    if path.suffix == ".safetensors":
        tensors = load_token_tensor(path, vocab_size=len(tokenizer))
        tensors = {k: v[:, :seqlen].contiguous() for k, v in tensors.items()}
    else:
        tensors = tokenize_calibration(load_jsonl(path), tokenizer, seqlen)
    return tensors, calibration_fingerprint(tensors)
