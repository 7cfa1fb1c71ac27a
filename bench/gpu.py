"""GPU figures: extraction and per-layer compression on CUDA in bf16 with Llama-3-8B-shaped decoder
layers (hidden 4096, MLP 14336, 32 query / 8 key-value heads), and the peak GPU memory of compressing
a whole model layer by layer (model kept on CPU, one layer on the GPU at a time) ÷ the model's size.

Same baselines and ratios as the CPU sections (bench/activations.py, bench/compression.py).
"""

from __future__ import annotations

import time

import torch

from bench import activations, compression
from cola_core.compress import CompressConfig, compress_model

SHAPE = {"width": 4096, "intermediate": 14336, "heads": 32, "kv_heads": 8}


def _bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def peak_memory(model, method: str, n: int = 128, seqlen: int = 256) -> dict:
    """Compress a CPU-resident model on the GPU; peak GPU allocation ÷ model size."""
    ids = torch.randint(0, 1024, (n, seqlen), generator=torch.Generator().manual_seed(0))
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    t = time.perf_counter()
    compress_model(model, {"input_ids": ids}, CompressConfig(method=method, device="cuda"))
    seconds = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated() - base
    layer = _bytes(model.model.layers[0])
    return {
        "method": method,
        "layers": len(model.model.layers),
        "tokens": n * seqlen,
        "model_gib": _bytes(model) / 2**30,
        "layer_gib": layer / 2**30,
        "peak_gib": peak / 2**30,
        "peak_vs_model": peak / _bytes(model),
        "peak_vs_layer": peak / layer,
        "seconds": seconds,
    }


def run(quick: bool = False) -> dict:
    if not torch.cuda.is_available():
        print("no CUDA GPU here: the gpu section is skipped")
        return {}
    from cola_core.models.loading import load_model

    bf16 = torch.bfloat16
    shape = {"width": 1024, "intermediate": 3584, "heads": 8, "kv_heads": 2} if quick else SHAPE
    out: dict = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "shape": shape}
    out["compression"] = compression.run(**shape, dtype=bf16, device="cuda")
    tok = load_model("cola-tiny").tokenizer  # vocabulary 1,024, as the random model's
    model = compression.make_model(**shape, layers=8, dtype=bf16, device="cuda")
    out["activations"] = [
        activations.run_one(f"Llama-3-8B-shaped ×8, bf16 ({tag})", model, tok, n=2000, layers=layers, naive_n=200)
        for tag, layers in (("last layer", (-1,)), ("layer 4", (4,)))
    ]
    model.to("cpu")
    torch.cuda.empty_cache()
    out["peak_memory"] = [peak_memory(model, method) for method in ("wanda", "sparsegpt", "gptq")]
    for row in out["peak_memory"]:
        print(row, flush=True)
    return out


def to_markdown(gpu: dict) -> str:
    lines = [
        f"GPU: {gpu['device']}, torch {gpu['torch']}; bf16 weights, fp32 statistics; "
        f"layer shape hidden {gpu['shape']['width']} × MLP {gpu['shape']['intermediate']}.",
        "",
        activations.to_markdown(gpu["activations"]),
        "",
        compression.to_markdown(gpu["compression"]),
        "",
        "| method | model (8 layers) | one layer | calibration tokens | peak GPU memory | peak ÷ model | peak ÷ one layer | whole model |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in gpu["peak_memory"]:
        lines.append(
            f"| {r['method']} | {r['model_gib']:.2f} GiB | {r['layer_gib']:.2f} GiB | {r['tokens']:,} | "
            f"{r['peak_gib']:.2f} GiB | {r['peak_vs_model']:.2f} | {r['peak_vs_layer']:.2f} | {r['seconds']:.1f} s |"
        )
    return "\n".join(lines)
