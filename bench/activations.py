"""Activation extraction throughput against two baselines on the same samples:

- bare: one batched full forward of the model (padding to the batch's longest sample, fixed batch
  size, no hooks) — the cost of just running the model;
- naive: batch size 1, every sample padded to the longest in the set, full forward, hooks on every
  layer.

Ours: length-bucketed batches under a token budget, hooks on the requested layers only, and the
forward pass stopped after the deepest requested layer.
"""

from __future__ import annotations

import time

import torch

from cola_core.corpora import load_records
from cola_core.curation.activations import ActivationConfig, extract_activations
from cola_core.models.architecture import decoder_layers


def _texts(n: int) -> list[str]:
    per = n // 4
    return [r.text for c in ("prose", "code", "math", "facts") for r in load_records(c, "pool", limit=per)]


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


@torch.inference_mode()
def bare(model, tok, texts, seqlen: int, batch: int = 32) -> float:
    device = next(model.parameters()).device
    t = time.perf_counter()
    for s in range(0, len(texts), batch):
        enc = tok(texts[s : s + batch], return_tensors="pt", padding=True, truncation=True, max_length=seqlen)
        model(**enc.to(device), use_cache=False)
    _sync()
    return time.perf_counter() - t


@torch.inference_mode()
def naive(model, tok, texts, seqlen: int) -> float:
    device = next(model.parameters()).device
    t = time.perf_counter()
    grabbed = []
    hooks = [layer.register_forward_hook(lambda m, a, o: grabbed.append(o)) for layer in decoder_layers(model)]
    try:
        for text in texts:
            enc = tok([text], return_tensors="pt", padding="max_length", truncation=True, max_length=seqlen)
            model(**enc.to(device), use_cache=False)
            grabbed.clear()
    finally:
        for h in hooks:
            h.remove()
    _sync()
    return time.perf_counter() - t


def run_one(name: str, model, tok, n: int = 2000, seqlen: int = 128, layers=(-1,), naive_n: int = 200) -> dict:
    texts = _texts(n)
    _sync()
    t = time.perf_counter()
    extract_activations(model, tok, texts, ActivationConfig(layers=layers, seqlen=seqlen))
    _sync()
    ours = time.perf_counter() - t
    t_bare = bare(model, tok, texts, seqlen)
    t_naive = naive(model, tok, texts[:naive_n], seqlen) * len(texts) / naive_n  # extrapolated from a subset
    row = {
        "model": name,
        "samples": len(texts),
        "seqlen": seqlen,
        "layers": list(layers),
        "ours_s": ours,
        "bare_s": t_bare,
        "naive_s": t_naive,
        "vs_bare": t_bare / ours,
        "vs_naive": t_naive / ours,
    }
    print(row, flush=True)
    return row


def run(quick: bool = False) -> list[dict]:
    from transformers import LlamaConfig, LlamaForCausalLM

    from cola_core.models.loading import load_model

    tiny = load_model("cola-tiny")
    rows = [
        run_one("cola-tiny (all 4 layers)", tiny.model, tiny.tokenizer, n=400 if quick else 2000, layers=(0, 1, 2, 3))
    ]
    rows.append(
        run_one("cola-tiny (middle layer 1)", tiny.model, tiny.tokenizer, n=400 if quick else 2000, layers=(1,))
    )
    torch.manual_seed(0)
    width, n_layers = (256, 4) if quick else (1024, 8)
    cfg = LlamaConfig(
        vocab_size=len(tiny.tokenizer),
        hidden_size=width,
        intermediate_size=width * 11 // 4,
        num_hidden_layers=n_layers,
        num_attention_heads=width // 64,
        num_key_value_heads=width // 64,
        max_position_embeddings=512,
    )
    big = LlamaForCausalLM(cfg).eval()
    rows.append(
        run_one(
            f"random Llama {width}×{n_layers} (last layer)",
            big,
            tiny.tokenizer,
            n=200 if quick else 400,
            layers=(-1,),
            naive_n=40,
        )
    )
    rows.append(
        run_one(
            f"random Llama {width}×{n_layers} (layer {n_layers // 2})",
            big,
            tiny.tokenizer,
            n=200 if quick else 400,
            layers=(n_layers // 2,),
            naive_n=40,
        )
    )
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| model | samples × tokens | ours | bare batched forward | naive | ours vs bare (goal ≥ 1.0×) | ours vs naive (goal ≥ 10×) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['samples']} × ≤{r['seqlen']} | {r['ours_s']:.1f} s | {r['bare_s']:.1f} s | {r['naive_s']:.1f} s | "
            f"{r['vs_bare']:.2f}× | {r['vs_naive']:.1f}× |"
        )
    return "\n".join(lines)
