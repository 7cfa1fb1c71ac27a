"""How the hot paths grow: the exponent b of time ≈ a · xᵇ, fitted by least squares on log-log points.

- extraction (cola-tiny, one middle layer) vs number of samples and vs sequence length;
- per-layer compression (Wanda, SparseGPT, GPTQ) vs layer width (Llama-shaped, MLP = 2.75 × width);
- re-selection (`tradeoff`, λ = 0.5) vs pool size, from the selection section's own measurements.
"""

from __future__ import annotations

import numpy as np
import torch

from bench import compression
from bench.activations import _texts
from bench.selection import best_of
from cola_core.compress import CompressConfig
from cola_core.compress.capture import capture_layer_inputs
from cola_core.curation.activations import ActivationConfig, extract_activations


def exponent(xs, ts) -> float:
    return float(np.polyfit(np.log(xs), np.log(ts), 1)[0])


def _best(fn) -> float:
    return best_of(fn, repeats=2)


def extraction(model, tok) -> list[dict]:
    rows = []
    texts = _texts(2000)
    sizes = (250, 500, 1000, 2000)
    ts = [
        _best(lambda k=k: extract_activations(model, tok, texts[:k], ActivationConfig(layers=(1,), seqlen=128)))
        for k in sizes
    ]
    rows.append(
        {"path": "extraction (cola-tiny, layer 1, ≤128 tokens)", "x": "samples", "points": list(sizes), "seconds": ts}
    )
    lengths = (32, 64, 128, 256)
    sub = texts[:500]
    ts = [
        _best(lambda s=s: extract_activations(model, tok, sub, ActivationConfig(layers=(1,), seqlen=s)))
        for s in lengths
    ]
    rows.append(
        {
            "path": "extraction (cola-tiny, layer 1, 500 samples)",
            "x": "max tokens",
            "points": list(lengths),
            "seconds": ts,
        }
    )
    return rows


def compression_width(widths=(256, 512, 1024), n: int = 32, seqlen: int = 128) -> list[dict]:
    rows = []
    for method in ("wanda", "sparsegpt", "gptq"):
        ts = []
        for w in widths:
            model = compression.make_model(w, w * 11 // 4, max(1, w // 64))
            ids = torch.randint(0, 1024, (n, seqlen), generator=torch.Generator().manual_seed(0))
            inputs = capture_layer_inputs(model, ids, torch.ones_like(ids), 8 * seqlen, torch.device("cpu"))
            layer = model.model.layers[0]
            original = {k: v.clone() for k, v in layer.state_dict().items()}

            def once(layer=layer, inputs=inputs, original=original, method=method):
                layer.load_state_dict(original)
                compression.ours(layer, inputs, CompressConfig(method=method, group_size=64))

            ts.append(_best(once))
        rows.append(
            {
                "path": f"per-layer compression, {method} ({n * seqlen:,} tokens)",
                "x": "width",
                "points": list(widths),
                "seconds": ts,
            }
        )
    return rows


def selection_from(results: list[dict]) -> list[dict]:
    rows = []
    for pool in sorted({r["pool"] for r in results}):
        pts = sorted((r["size"], r["tradeoff_0.5_s"]) for r in results if r["pool"] == pool)
        if len(pts) >= 2:
            rows.append(
                {
                    "path": f"re-selection, tradeoff λ=0.5 ({pool} pool, n=128)",
                    "x": "pool size",
                    "points": [p for p, _ in pts],
                    "seconds": [t for _, t in pts],
                }
            )
    return rows


def run(selection_rows: list[dict] | None = None) -> list[dict]:
    from cola_core.models.loading import load_model

    tiny = load_model("cola-tiny")
    rows = extraction(tiny.model, tiny.tokenizer) + compression_width() + selection_from(selection_rows or [])
    for r in rows:
        r["exponent"] = exponent(r["points"], r["seconds"])
        print(r, flush=True)
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = ["| hot path | grows with | points | times | exponent b (time ∝ xᵇ) |", "|---|---|---|---|---|"]
    for r in rows:
        times = " / ".join(f"{t:.3g} s" for t in r["seconds"])
        pts = " / ".join(f"{p:,}" for p in r["points"])
        lines.append(f"| {r['path']} | {r['x']} | {pts} | {times} | {r['exponent']:.2f} |")
    return "\n".join(lines)
