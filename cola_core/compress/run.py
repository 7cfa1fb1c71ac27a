"""Compression, composed once: calibration set → :func:`~cola_core.compress.engine.compress_model` →
fingerprint → report → saved model. The CLI's ``compress``, the dashboard's jobs
(:mod:`cola_core.app.jobs`) and the experiment cells (:mod:`cola_core.experiments.cells`) all call
:func:`compress_with_calibration`, so a run means the same thing everywhere."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cola_core.calibration.files import load_calibration
from cola_core.compress.config import CompressConfig
from cola_core.compress.engine import CompressionResult, compress_model
from cola_core.compress.formats import DEFAULT_FORMAT, check_compressed_tensors, check_format
from cola_core.compress.save import build_report, check_output_dir, save_compressed
from cola_core.storage.fingerprints import calibration_fingerprint


@dataclass
class CompressionRun:
    """What a compression hands back: its report (as written to ``compression_report.json`` when
    saved) and the per-layer result (:class:`~cola_core.compress.engine.CompressionResult`)."""

    report: dict[str, Any]
    result: CompressionResult


def calibration_card(path: str | Path) -> dict[str, Any]:
    """What the model card says of a calibration set on disk: its file name and, from the set's
    records (the ``.jsonl``, or the one beside a ``.safetensors``), the samples per corpus."""
    path = Path(path)
    records = path.with_suffix(".jsonl")
    mix: dict[str, int] = {}
    if records.is_file():
        import json

        for line in records.read_text(encoding="utf-8").splitlines():
            if line.strip():
                corpus = json.loads(line).get("corpus", "?")
                mix[corpus] = mix.get(corpus, 0) + 1
    return {"file": path.name, "mix": dict(sorted(mix.items()))}


def compress_with_calibration(
    loaded,
    calibration: str | Path | Mapping[str, torch.Tensor],
    config: CompressConfig,
    *,
    out: str | Path | None = None,
    format: str = DEFAULT_FORMAT,
    seqlen: int | None = None,
    progress: Callable[[int, int, dict], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    keep_codes: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> CompressionRun:
    """Compress ``loaded.model`` in place with a calibration set and, when ``out`` is given, write it
    there in ``format`` (formats.FORMATS) with ``loaded.tokenizer``.

    ``calibration`` is a set's ``.jsonl`` or ``.safetensors`` (read at ``seqlen`` tokens per sample,
    by default the set's own length: :func:`~cola_core.calibration.files.choose_seqlen`, whose line
    goes to ``log``), or token tensors already in hand (``input_ids``, ``attention_mask``), used as
    they are. ``keep_codes`` (default: only for ``compressed-tensors``) keeps the integer codes of
    quantized weights; dense output needs none, so no second copy is held in memory. The settings,
    the format and the output folder are checked before any weight changes."""
    config.validate()
    if out is not None:
        check_output_dir(out)  # before the work, not after it
    check_format(format)
    if format == "compressed-tensors":
        check_compressed_tensors(config, loaded.model)
    if isinstance(calibration, Mapping):
        tensors = dict(calibration)
        fingerprint = calibration_fingerprint(tensors)
    else:
        tensors, fingerprint = load_calibration(calibration, loaded.tokenizer, seqlen, log)
    if keep_codes is None:
        keep_codes = format == "compressed-tensors"
    result = compress_model(loaded.model, tensors, config, progress, should_cancel, keep_codes=keep_codes)
    ids = tensors["input_ids"]
    report = build_report(result, config, fingerprint, len(ids), ids.shape[1])
    if out is not None:
        card = calibration_card(calibration) if not isinstance(calibration, Mapping) else None
        save_compressed(loaded.model, loaded.tokenizer, result, report, out, format, loaded.name, card)
    return CompressionRun(report, result)
