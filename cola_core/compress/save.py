"""Writing a compressed model: a ``from_pretrained`` directory, ``compression_report.json``, and for
quantization the integer codes, scales and zero points in ``quantization.safetensors`` with a
``quantization.json`` manifest."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from cola_core.compress.config import CompressConfig
from cola_core.compress.engine import CompressionResult


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


def save_compressed(model, tokenizer, result: CompressionResult, report: dict[str, Any], out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "compression_report.json").write_text(json.dumps(report, indent=2) + "\n")
    if result.quantized:
        tensors: dict[str, torch.Tensor] = {}
        manifest = {"bits": report["settings"]["bits"], "group_size": report["settings"]["group_size"],
                    "symmetric": report["settings"]["symmetric"], "act_order": report["settings"]["act_order"],
                    "dequantize": "weight[o, i] = (codes[o, i] - zeros[o, g_idx[i]]) * scales[o, g_idx[i]]", "linears": {}}  # fmt: skip
        for name, q in result.quantized.items():
            for part, t in (("codes", q.codes), ("scales", q.scales), ("zeros", q.zeros), ("g_idx", q.group_index)):
                tensors[f"{name}.{part}"] = t.contiguous().cpu()
            manifest["linears"][name] = {"shape": list(q.codes.shape)}
        save_file(tensors, str(out / "quantization.safetensors"))
        (out / "quantization.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out
