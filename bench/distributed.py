"""The Ray engine against the local path on this machine: activation extraction of the same samples
from an empty cache, by this process vs a Ray Data actor pool of 2 CPU workers on a local Ray
instance (started beforehand; its start-up is reported apart). Both produce the same cache entry.

On one 2-core machine Ray cannot be faster (the workers share the cores the local path uses); what
this measures is the engine's overhead — tokenisation tasks, actor start-up (a model load per
worker), shard writes and assembly. Scale-out across GPUs and nodes needs a cluster to measure.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _model_dir(root: Path) -> str:
    """An 8-layer, 512-wide random Llama (~30M parameters) with cola-tiny's tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from cola_core.models.loading import BUILTIN_MODELS

    tok = AutoTokenizer.from_pretrained(BUILTIN_MODELS["cola-tiny"])
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=512,
        intermediate_size=1408,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=8,
        max_position_embeddings=512,
    )
    path = root / "llama-8x512"
    LlamaForCausalLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def run(n: int = 1024, seqlen: int = 128, workers: int = 2) -> dict:
    from bench.activations import _texts
    from cola_core.curation.activations import ActivationConfig, cached_activations
    from cola_core.curation.ray_activations import ray_activations
    from cola_core.engine.config import EngineConfig, ModelSpec
    from cola_core.engine.ray_cluster import ensure_ray, shutdown_ray
    from cola_core.models.loading import load_model

    root = Path(tempfile.mkdtemp(prefix="cola-bench-ray-"))
    texts = _texts(n)
    config = ActivationConfig(seqlen=seqlen)
    loaded = load_model(_model_dir(root), device="cpu")
    os.environ["COLA_CACHE_DIR"] = str(root / "local")
    t = time.perf_counter()
    local = cached_activations(loaded.model, loaded.tokenizer, loaded.fingerprint, texts, config)
    local_s = time.perf_counter() - t
    os.environ["COLA_CACHE_DIR"] = str(root / "ray")
    engine = EngineConfig(kind="ray", workers=workers, shard_size=128, local_cpus=os.cpu_count())
    t = time.perf_counter()
    ensure_ray(engine)
    start_s = time.perf_counter() - t
    t = time.perf_counter()
    acts = ray_activations(ModelSpec.of(loaded), texts, config, engine)
    ray_s = time.perf_counter() - t
    shutdown_ray()
    diff = max(float(np.abs(np.asarray(local[k]) - np.asarray(acts[k])).max()) for k in local)
    row = {
        "samples": len(texts),
        "seqlen": seqlen,
        "workers": workers,
        "local_s": local_s,
        "ray_start_s": start_s,
        "ray_s": ray_s,
        "ratio": ray_s / local_s,
        "max_abs_diff": diff,
    }
    print(row, flush=True)
    return row


def to_markdown(r: dict) -> str:
    return "\n".join(
        [
            "| samples × tokens | local (this process) | Ray, 2 CPU workers | Ray ÷ local | Ray instance start | max abs difference |",
            "|---|---|---|---|---|---|",
            f"| {r['samples']:,} × ≤{r['seqlen']} | {r['local_s']:.1f} s | {r['ray_s']:.1f} s | {r['ratio']:.2f} | "
            f"{r['ray_start_s']:.1f} s | {r['max_abs_diff']:.1e} |",
        ]
    )
