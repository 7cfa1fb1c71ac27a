"""Compression time per decoder layer: our engine against a reference-style implementation.

The reference does what the public reference scripts do structurally: one statistics pass over the
calibration data *per linear* (a hook on that linear alone), no sharing between q/k/v or gate/up.
Both sides then call the same per-matrix algorithm (`prune_wanda`, `prune_sparsegpt`,
`quantize_gptq`), so the ratio isolates the engine: shared statistics, one pass per layer.
Our engine also measures each linear's reconstruction error; for Wanda that needs an extra partial
Hessian (4,096 tokens), which the reference does not compute — the table shows both.
"""

from __future__ import annotations

import time

import torch

from cola_core.compress.capture import capture_layer_inputs
from cola_core.compress.config import CompressConfig
from cola_core.compress.engine import compress_layer, compress_linear
from cola_core.compress.methods import compression_method
from cola_core.compress.statistics import Stats, find_linears, set_weight, weight_of


def make_model(
    width: int,
    intermediate: int,
    heads: int,
    kv_heads: int | None = None,
    layers: int = 1,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
):
    """A random Llama-shaped model, initialised directly on ``device`` in ``dtype``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=1024,
        hidden_size=width,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or heads,
        max_position_embeddings=1024,
    )
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return LlamaForCausalLM(cfg).eval()
    finally:
        torch.set_default_dtype(previous)


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def ours(layer, inputs, config: CompressConfig) -> float:
    _sync()
    t = time.perf_counter()
    compress_layer(layer, inputs, config)
    _sync()
    return time.perf_counter() - t


def reference(layer, inputs, config: CompressConfig) -> float:
    _sync()
    t = time.perf_counter()
    full = compression_method(config.method).needs == "hessian"
    current: dict[str, torch.Tensor] = {}
    for module in find_linears(layer).values():
        st: dict[str, Stats] = {}

        def hook(_m, args, st=st):
            x = args[0]
            st.setdefault("s", Stats(x.shape[-1], full, 0, x.device)).add(x, current["mask"])

        handle = module.register_forward_pre_hook(hook)
        with torch.inference_mode():
            for h, kw, mask in zip(inputs.hidden, inputs.kwargs, inputs.masks, strict=True):
                current["mask"] = mask
                layer(h, **kw)
        handle.remove()
        new = compress_linear(weight_of(module).float().clone(), st["s"], config).weight
        set_weight(module, new)
    _sync()
    return time.perf_counter() - t


def run(
    width: int = 2048,
    intermediate: int = 5632,
    heads: int = 16,
    n: int = 128,
    seqlen: int = 256,
    kv_heads: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
) -> list[dict]:
    model = make_model(width, intermediate, heads, kv_heads, dtype=dtype, device=device)
    ids = torch.randint(0, 1024, (n, seqlen), generator=torch.Generator().manual_seed(0))
    inputs = capture_layer_inputs(model, ids, torch.ones_like(ids), 8 * seqlen, torch.device(device))
    layer = model.model.layers[0]
    original = {k: v.clone() for k, v in layer.state_dict().items()}
    rows = []
    for method, extra in (("wanda", {}), ("sparsegpt", {}), ("gptq", {"bits": 4, "group_size": 128})):
        config = CompressConfig(method=method, **extra)
        times = {}
        for label, fn, cfg in (
            ("ours", ours, config),
            ("reference", reference, config),
            ("ours_no_error", ours, CompressConfig(method=method, error_tokens=0, **extra)),
        ):
            if label == "ours_no_error" and method != "wanda":
                continue
            layer.load_state_dict(original)
            times[label] = fn(layer, inputs, cfg)
        row = {
            "method": method,
            "width": width,
            "intermediate": intermediate,
            "tokens": n * seqlen,
            "dtype": str(dtype).removeprefix("torch."),
            "device": device,
            **times,
        }
        row["ratio"] = times["ours"] / times["reference"]
        if "ours_no_error" in times:
            row["ratio_no_error"] = times["ours_no_error"] / times["reference"]
        rows.append(row)
        print(row, flush=True)
    return rows


def _s(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds >= 10 else f"{seconds:.2f} s"


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| method | layer (hidden × MLP) | calibration tokens | ours | reference | ours ÷ reference | goal |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r['ratio']:.2f}×"
        if "ratio_no_error" in r:
            ratio += f" ({r['ratio_no_error']:.2f}× without the error measurement)"
        lines.append(
            f"| {r['method']} | {r['width']} × {r['intermediate']} | {r['tokens']:,} | {_s(r['ours'])} | {_s(r['reference'])} | {ratio} | ≤ 0.8× |"
        )
    return "\n".join(lines)
