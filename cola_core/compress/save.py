"""Writing a compressed model: a ``from_pretrained`` directory in one of two formats (formats.py) and
``compression_report.json``, which states the format and the on-disk size of the weight files.

- ``dense``: plain weights (quantized ones dequantized) in the model's dtype, for any tool; the
  integer codes are not kept (the compressed-tensors format is where they live), so a dense run
  holds no second copy of the quantized model in memory;
- ``compressed-tensors``: packed weights and ``quantization_config`` as llm-compressor writes them,
  for vLLM and transformers (formats.py)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cola_core.compress.config import CompressConfig
from cola_core.compress.engine import CompressionResult
from cola_core.compress.formats import DEFAULT_FORMAT, check_format, serving_text, write_compressed_tensors
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
            for stage in (lin, lin.get("quantized") or {}):
                if stage.get("fallback"):
                    fallbacks.append({"layer": layer["layer"], "linear": name, "fallback": stage["fallback"]})
    experts = experts_summary(result.layers, config)
    return {
        "method": config.method,
        "quantize": config.quantize,  # the quantizer that followed a pruning method, if any
        "settings": asdict(config),
        "calibration": {"fingerprint": calibration_fingerprint, "n": n_calibration, "seqlen": seqlen},
        "achieved_sparsity": zeros / max(total, 1),
        "bits": config.bits if not config.is_pruning or config.quantize else None,
        "layers": result.layers,
        "fallbacks": fallbacks,
        **({"experts": experts} if experts else {}),
        "device": result.device,
        "seconds": result.seconds,
    }


def experts_summary(layers: list[dict[str, Any]], config: CompressConfig) -> dict[str, Any] | None:
    """A mixture-of-experts run at a glance (None for a dense model): how many experts were compressed,
    the spread of the real tokens the router sent them, which fell below the floor and took their
    statistics from every token, and the routers kept dense."""
    modules = [(r["layer"], name, e) for r in layers for name, e in r.get("experts", {}).items()]
    if not modules:
        return None
    routed = sorted(n for _, _, e in modules for n in e["routed_tokens"])
    return {
        "calibration": config.moe_calibration,
        "experts": len(routed),
        "routed_tokens": {"min": routed[0], "median": routed[len(routed) // 2], "max": routed[-1]},
        "floor_tokens": sorted({e["floor_tokens"] for _, _, e in modules}),
        "all_tokens_for": [
            {"layer": li, "module": name, "experts": e["all_tokens_for"]}
            for li, name, e in modules
            if e["all_tokens_for"]
        ],
        "routers_kept_dense": sorted({n for r in layers for n in r.get("ignored", [])}),
    }


def check_output_dir(out: str | Path) -> None:
    """Refuse to replace a non-empty folder that is not an earlier compressed model (it may hold other work)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "compression_report.json").exists())):
        raise ColaError(f"{out} exists and is not a compressed-model folder; choose another --out or empty it")


def weight_files(folder: Path) -> dict[str, int]:
    """Bytes on disk of each weight file (``*.safetensors``) in ``folder``."""
    return {f.name: f.stat().st_size for f in sorted(folder.glob("*.safetensors"))}


def tool_version() -> str:
    """COLA Studio's version, from pyproject.toml (the package is used in place, not installed)."""
    import tomllib

    try:
        return tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]["version"]
    except (OSError, KeyError, ValueError):
        return "unknown"


def model_card(report: dict[str, Any], base_model: str | None, calibration: dict[str, Any] | None = None) -> str:
    """README.md of a compressed model, as the Hub reads one: front matter with ``base_model`` and
    ``base_model_relation`` (``quantized``, or ``pruned`` for a pruning-only run), so a pushed
    checkpoint is listed under its base model; then the method and its settings, the calibration set
    (fingerprint, size, mix), what can serve it, and the tool's version."""
    known = CompressConfig.__dataclass_fields__
    config = CompressConfig(**{k: v for k, v in report["settings"].items() if k in known})
    relation = "quantized" if config.quantizes else "pruned"
    fmt = report.get("format", DEFAULT_FORMAT)
    tags = ["cola-studio", config.method, *filter(None, [config.quantize]), *([fmt] if fmt != "dense" else [])]
    front = ["---"]
    if base_model:
        front += [f"base_model: {base_model}", f"base_model_relation: {relation}"]
    front += ["library_name: transformers", "tags:", *[f"- {t}" for t in tags], "---", ""]
    calib, calibration = report["calibration"], calibration or {}
    rows = [("method", f"`{report['method']}`" + (f" then `{config.quantize}`" if config.quantize else ""))]
    if config.is_pruning:
        rows.append(("sparsity achieved", f"{report['achieved_sparsity']:.1%}"))
    if relation == "quantized":
        grid = "symmetric" if config.symmetric else "asymmetric"
        rows.append(("bits, group size, grid", f"{config.bits}, {config.group_size}, {grid}"))
    rows.append(
        ("calibration", f"{calib['n']} samples × {calib['seqlen']} tokens, fingerprint `{calib['fingerprint']}`")
    )
    if calibration.get("mix"):
        rows.append(("calibration mix", ", ".join(f"{k} {v}" for k, v in calibration["mix"].items())))
    if calibration.get("file"):
        rows.append(("calibration file", f"`{calibration['file']}`"))
    if report.get("experts"):
        experts = report["experts"]
        rows.append(("experts", f"{experts['experts']} compressed ({experts['calibration']} statistics)"))
    rows.append(("compressed on", f"{report['device']} in {report['seconds']:.0f} s"))
    body = [
        f"# {base_model or 'Compressed model'} · {config.short_name}",
        "",
        f"Compressed by COLA Studio {tool_version()} ({relation}), written in the `{fmt}` format.",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in rows],
        "",
        f"**Serving.** {serving_text(fmt, report.get('bits'))}",
        "",
        "**Evaluation.** Not evaluated when written: `python -m cola_core evaluate --model THIS_FOLDER` "
        "scores it with 95% intervals. Every setting is in `compression_report.json`.",
        "",
    ]
    return "\n".join(front + body)


def _write_dense(model, result: CompressionResult, report: dict[str, Any], out: Path) -> None:
    model.save_pretrained(out)


def save_compressed(
    model,
    tokenizer,
    result: CompressionResult,
    report: dict[str, Any],
    out: str | Path,
    format: str = DEFAULT_FORMAT,
    base_model: str | None = None,
    calibration: dict[str, Any] | None = None,
) -> Path:
    """Write the compressed model in ``format`` (formats.FORMATS), its report and its model card
    (README.md: ``base_model``, the calibration set's ``mix`` and ``file``); adds ``format``,
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
        (out / "README.md").write_text(model_card(report, base_model, calibration), encoding="utf-8")
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # a refused or failed write leaves nothing behind
        raise
    if final.exists():
        os.replace(final, old)
    os.replace(out, final)
    shutil.rmtree(old, ignore_errors=True)
    return final
