"""Compression engine: pruning and quantization of any Hugging Face causal LM, driven by an explicit
calibration set. The methods (magnitude, Wanda, SparseGPT, RTN, GPTQ, …) are the entries of
``methods.REGISTRY``."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from cola_core.compress.config import METHODS, QUANTIZATION, CompressConfig
from cola_core.compress.engine import Cancelled, CompressionResult, compress_model
from cola_core.compress.formats import DEFAULT_FORMAT, FORMATS, check_compressed_tensors, check_format
from cola_core.compress.methods import REGISTRY, CompressionMethod, compression_method
from cola_core.compress.save import build_report, check_output_dir, save_compressed
from cola_core.errors import ColaError
from cola_core.storage.fingerprints import calibration_fingerprint

__all__ = [
    "FORMATS",
    "METHODS",
    "QUANTIZATION",
    "REGISTRY",
    "Cancelled",
    "CompressConfig",
    "CompressionMethod",
    "CompressionResult",
    "compress_model",
    "compression_method",
    "load_calibration",
    "save_compressed",
]


def curated_seqlen(path: str | Path) -> int | None:
    """The sequence length a calibration set was curated at, as ``curate`` recorded it: in the
    ``.safetensors`` metadata, or in the ``.settings.json`` beside the ``.jsonl``; None if unrecorded."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                return int((f.metadata() or {})["seqlen"])
        settings = json.loads(path.with_suffix(".settings.json").read_text())
        return int(settings.get("seqlen") or settings["config"]["processing"]["seqlen"])
    except Exception:  # unreadable or unrecorded: the loader reports a broken file in its own words
        return None


def load_calibration(path: str | Path, tokenizer, seqlen: int | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """Token tensors from a calibration set (.safetensors as exported, or .jsonl tokenized here),
    capped at ``seqlen`` tokens (default: the set's own length, as curated), and their fingerprint
    (:func:`~cola_core.storage.fingerprints.calibration_fingerprint`)."""
    from cola_core.corpora.jsonl import load_jsonl
    from cola_core.curation.export import load_token_tensor, tokenize_calibration

    path = Path(path)
    if seqlen is not None and seqlen <= 0:
        raise ColaError(f"sequence length must be positive, got {seqlen}")
    if path.suffix == ".safetensors":
        tensors = load_token_tensor(path, vocab_size=len(tokenizer))
        tensors = {k: v[:, :seqlen].contiguous() for k, v in tensors.items()}
    elif path.suffix == ".jsonl":
        if seqlen is None:
            from cola_core.curation.processing import ProcessingConfig

            seqlen = curated_seqlen(path) or ProcessingConfig.seqlen
        tensors = tokenize_calibration(load_jsonl(path), tokenizer, seqlen)
    else:
        raise ColaError(f"calibration set {path.name}: use the .jsonl or .safetensors written by `curate`")
    return tensors, calibration_fingerprint(tensors)


def compress_and_save(
    loaded,
    calib_path: str | Path,
    config: CompressConfig,
    out: str | Path,
    seqlen: int | None = None,
    progress=None,
    should_cancel=None,
    format: str = DEFAULT_FORMAT,
) -> dict:
    """Load a calibration set, compress the loaded model in place, and write the output directory in
    ``format`` (formats.FORMATS)."""
    config.validate()
    check_output_dir(out)  # before the work, not after it
    check_format(format)
    if format == "compressed-tensors":
        check_compressed_tensors(config, loaded.model)
    tensors, fingerprint = load_calibration(calib_path, loaded.tokenizer, seqlen)
    keep_codes = format == "compressed-tensors"  # dense output needs no codes: no second copy in memory
    result = compress_model(loaded.model, tensors, config, progress, should_cancel, keep_codes=keep_codes)
    report = build_report(result, config, fingerprint, len(tensors["input_ids"]), tensors["input_ids"].shape[1])
    save_compressed(loaded.model, loaded.tokenizer, result, report, out, format=format)
    return report
