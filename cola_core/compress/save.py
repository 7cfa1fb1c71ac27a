"""Writing a compressed model: a ``from_pretrained`` directory in one of two formats (formats.py) and
``compression_report.json``, which states the format and the on-disk size of the weight files.

- ``dense``: dequantized weights, and for quantization the integer codes, scales and zero points in
  ``quantization.safetensors`` with a ``quantization.json`` manifest;
- ``compressed-tensors``: packed weights and ``quantization_config`` as llm-compressor writes them,
  for vLLM and transformers (formats.py)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from cola_core.compress.config import CompressConfig
from cola_core.compress.engine import CompressionResult
from cola_core.compress.formats import DEFAULT_FORMAT, check_format, write_compressed_tensors
from cola_core.errors import ColaError


def build_report(
    result: CompressionResult, config: CompressConfig, calibration_fingerprint: str, n_calibration: int, seqlen: int
) -> dict[str, Any]:
    total = zeros = 0
    fallbacks = []
    for layer in result.layers:
        for name, lin in layer["linears"].items():
            n = lin["shape"][0] * lin["shape"][1]
            total += n
            zeros += lin["sparsity"] * n
            if lin.get("fallback"):
                fallbacks.append({"layer": layer["layer"], "linear": name, "fallback": lin["fallback"]})
    return {
        "method": config.method,
        "settings": asdict(config),
        "calibration": {"fingerprint": calibration_fingerprint, "n": n_calibration, "seqlen": seqlen},
        "achieved_sparsity": zeros / max(total, 1),
        "bits": config.bits if not config.is_pruning else None,
        "layers": result.layers,
        "fallbacks": fallbacks,
        "device": result.device,
        "seconds": result.seconds,
    }


def check_output_dir(out: str | Path) -> None:
    """Refuse to replace a non-empty folder that is not an earlier compressed model (it may hold other work)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "compression_report.json").exists())):
        raise ColaError(f"{out} exists and is not a compressed-model folder; choose another --out or empty it")


def weight_files(folder: Path) -> dict[str, int]:
    """Bytes on disk of each weight file (``*.safetensors``) in ``folder``."""
    return {f.name: f.stat().st_size for f in sorted(folder.glob("*.safetensors"))}


def _write_dense(model, result: CompressionResult, report: dict[str, Any], out: Path) -> None:
    model.save_pretrained(out)
    if not result.quantized:
        return
    tensors: dict[str, torch.Tensor] = {}
    manifest = {
        "bits": report["settings"]["bits"],
        "group_size": report["settings"]["group_size"],
        "symmetric": report["settings"]["symmetric"],
        "act_order": report["settings"]["act_order"],
        "dequantize": "weight[o, i] = (codes[o, i] - zeros[o, g_idx[i]]) * scales[o, g_idx[i]]",
        "linears": {},
    }
    for name, q in result.quantized.items():
        for part, t in (("codes", q.codes), ("scales", q.scales), ("zeros", q.zeros), ("g_idx", q.group_index)):
            tensors[f"{name}.{part}"] = t.contiguous().cpu()
        manifest["linears"][name] = {"shape": list(q.codes.shape)}
    save_file(tensors, str(out / "quantization.safetensors"))
    (out / "quantization.json").write_text(json.dumps(manifest, indent=2) + "\n")


def save_compressed(
    model,
    tokenizer,
    result: CompressionResult,
    report: dict[str, Any],
    out: str | Path,
    format: str = DEFAULT_FORMAT,
) -> Path:
    """Write the compressed model in ``format`` (formats.FORMATS) and its report; adds ``format``,
    ``size_bytes`` (all weight files) and ``weight_files`` (bytes per file) to ``report``.

    Written into a temporary sibling folder, then swapped into place: a crash at any moment leaves the
    previous folder or the new one, never a half-written model."""
    check_format(format)
    out = Path(out)
    check_output_dir(out)
    final, out = out, out.parent / f".{out.name}.tmp"
    old = final.parent / f".{final.name}.old"
    for stale in (out, old):
        shutil.rmtree(stale, ignore_errors=True)
    out.mkdir(parents=True)
    try:
        if format == "compressed-tensors":
            write_compressed_tensors(model, result, report, out)
        else:
            _write_dense(model, result, report, out)
        tokenizer.save_pretrained(out)
        files = weight_files(out)
        report.update(format=format, size_bytes=sum(files.values()), weight_files=files)
        (out / "compression_report.json").write_text(json.dumps(report, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # a refused or failed write leaves nothing behind
        raise
    if final.exists():
        os.replace(final, old)
    os.replace(out, final)
    shutil.rmtree(old, ignore_errors=True)
    return final
