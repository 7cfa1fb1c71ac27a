"""Fingerprints: one function per kind of thing fingerprinted, so "the same" means one thing.

- a model: :func:`fingerprint_directory` (config + weights files) or :func:`fingerprint_module`
  (config + parameter bytes, for a model in memory);
- a pool of samples: :func:`pool_fingerprint` (ids and texts, in order);
- a calibration set: :func:`calibration_fingerprint` (the token ids the compressor saw, so a
  ``.jsonl`` and the ``.safetensors`` exported beside it fingerprint alike).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import torch

WEIGHT_SUFFIXES = (".safetensors", ".bin")
CALIBRATION_FINGERPRINT_KIND = "tokens"  # what the run store's calibration_fingerprint column holds


def _file_digest(path: Path, edge: int = 1 << 20) -> str:
    """Whole-file hash up to 64 MiB; above that, size plus the first and last MiB (weights files are
    immutable once written, and hashing gigabytes on every launch would be slow)."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        if size <= 64 << 20:
            h.update(f.read())
        else:
            h.update(f.read(edge))
            f.seek(size - edge)
            h.update(f.read(edge))
    return h.hexdigest()


def fingerprint_directory(path: str | Path) -> str:
    """A stable id for a model directory: its config and the identity of every weights file."""
    path = Path(path)
    h = hashlib.sha256()
    config = json.loads((path / "config.json").read_text())
    h.update(json.dumps(config, sort_keys=True).encode())
    for weights in sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES):
        h.update(weights.name.encode())
        h.update(_file_digest(weights).encode())
    return h.hexdigest()[:16]


def fingerprint_module(model: torch.nn.Module) -> str:
    """A stable id for an in-memory model: its config and every parameter's bytes."""
    h = hashlib.sha256()
    config = getattr(model, "config", None)
    if config is not None:
        h.update(json.dumps(config.to_dict(), sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def pool_fingerprint(texts: Sequence[str], ids: Sequence[str] | None = None) -> str:
    """A pool's (or any sample set's) identity: ids and texts, in order. Keys activation caches and
    prepared spaces."""
    h = hashlib.sha256()
    for i, text in enumerate(texts):
        h.update(f"{ids[i] if ids else i}\x00{text}\x01".encode())
    return h.hexdigest()[:16]


def calibration_fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """A calibration set's identity: the bytes of its token ids (after length capping)."""
    return hashlib.sha256(tensors["input_ids"].numpy().tobytes()).hexdigest()[:16]
