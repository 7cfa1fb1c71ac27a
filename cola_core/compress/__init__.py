"""Compression engine: pruning (magnitude, Wanda, SparseGPT) and quantization (RTN, GPTQ) of any
Hugging Face causal LM, driven by an explicit calibration set."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from cola_core.compress.config import METHODS, CompressConfig
from cola_core.compress.engine import Cancelled, CompressionResult, compress_model
from cola_core.compress.save import build_report, check_output_dir, save_compressed
from cola_core.errors import ColaError

__all__ = [
    "METHODS",
    "Cancelled",
    "CompressConfig",
    "CompressionResult",
    "compress_model",
    "load_calibration",
    "save_compressed",
]


def load_calibration(path: str | Path, tokenizer, seqlen: int = 256) -> tuple[dict[str, torch.Tensor], str]:
    """Token tensors from a calibration set (.safetensors as exported, or .jsonl tokenized here),
    capped at ``seqlen`` tokens, and their fingerprint."""
    from cola_core.corpora.jsonl import load_jsonl
    from cola_core.curation.export import load_token_tensor, tokenize_calibration

    path = Path(path)
    if seqlen <= 0:
        raise ColaError(f"sequence length must be positive, got {seqlen}")
    if path.suffix == ".safetensors":
        tensors = load_token_tensor(path, vocab_size=len(tokenizer))
        tensors = {k: v[:, :seqlen].contiguous() for k, v in tensors.items()}
    elif path.suffix == ".jsonl":
        tensors = tokenize_calibration(load_jsonl(path), tokenizer, seqlen)
    else:
        raise ColaError(f"calibration set {path.name}: use the .jsonl or .safetensors written by `curate`")
    digest = hashlib.sha256(tensors["input_ids"].numpy().tobytes()).hexdigest()[:16]
    return tensors, digest


def compress_and_save(
    loaded,
    calib_path: str | Path,
    config: CompressConfig,
    out: str | Path,
    seqlen: int = 256,
    progress=None,
    should_cancel=None,
) -> dict:
    """Load a calibration set, compress the loaded model in place, and write the output directory."""
    config.validate()
    check_output_dir(out)  # before the work, not after it
    tensors, fingerprint = load_calibration(calib_path, loaded.tokenizer, seqlen)
    result = compress_model(loaded.model, tensors, config, progress, should_cancel)
    report = build_report(result, config, fingerprint, len(tensors["input_ids"]), tensors["input_ids"].shape[1])
    save_compressed(loaded.model, loaded.tokenizer, result, report, out)
    return report
