"""The models and texts the peer and variants benches compress and score on: cola-tiny, a random
8-layer 1024-wide Llama (compute dominates) and a random Qwen3-MoE, each with cola-tiny's tokenizer;
the calibration file from the built-in prose pool, held-out prose neither side calibrates on."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

MODELS = ("tiny", "wide", "moe")
WIDE_LABEL = "llama 8 × 1024 (random)"
MOE_LABEL = "qwen3-moe 4 × 512, 32 experts (random)"


def texts(split: str, n: int) -> list[str]:
    """The first ``n`` texts of the built-in prose corpus's ``split`` (``pool`` or ``heldout``)."""
    from cola_core.corpora import load_records

    return [r.text for r in load_records("prose", split, limit=n)]


@contextlib.contextmanager
def bench_inputs(n: int, heldout: int, models: tuple[str, ...]) -> Iterator[tuple[Path, Path, list[str], dict]]:
    """A scratch folder holding the calibration file of ``n`` prose texts and the ``models`` (label →
    path), with ``heldout`` held-out prose texts: what both benches compress and score on."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        yield root, calibration_file(root, n), texts("heldout", heldout), make_models(root, models)


def calibration_file(root: Path, n: int) -> Path:
    """The first ``n`` texts of the built-in prose pool as a calibration JSONL under ``root``."""
    calib = root / "calib.jsonl"
    records = [
        {"id": f"prose-{i}", "text": t, "corpus": "prose", "domain": "prose"} for i, t in enumerate(texts("pool", n))
    ]
    calib.write_text("".join(json.dumps(r) + "\n" for r in records))
    return calib


def make_models(root: Path, which: tuple[str, ...] = MODELS) -> dict[str, str]:
    """cola-tiny, a random 8-layer 1024-wide Llama and a random Qwen3-MoE (4 layers, 512 wide, 32
    experts of 256, top 4), the random ones with cola-tiny's tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from cola_core.models.loading import BUILTIN_MODELS

    tiny = str(BUILTIN_MODELS["cola-tiny"])
    models = {"cola-tiny": tiny} if "tiny" in which else {}
    if "wide" in which:
        torch.manual_seed(0)
        cfg = LlamaConfig(
            vocab_size=1024,
            hidden_size=1024,
            intermediate_size=2816,
            num_hidden_layers=8,
            num_attention_heads=16,
            num_key_value_heads=4,
            max_position_embeddings=512,
        )
        wide = root / "llama-8x1024"
        AutoModelForCausalLM.from_config(cfg).save_pretrained(wide)
        AutoTokenizer.from_pretrained(tiny).save_pretrained(wide)
        models[WIDE_LABEL] = str(wide)
    if "moe" in which:
        from transformers import AutoConfig

        torch.manual_seed(0)
        cfg = AutoConfig.for_model(
            "qwen3_moe",
            vocab_size=1024,
            hidden_size=512,
            num_hidden_layers=4,
            num_attention_heads=8,
            num_key_value_heads=4,
            head_dim=64,
            num_experts=32,
            num_experts_per_tok=4,
            moe_intermediate_size=256,
            max_position_embeddings=512,
        )
        moe = root / "qwen3-moe"
        AutoModelForCausalLM.from_config(cfg).save_pretrained(moe)
        AutoTokenizer.from_pretrained(tiny).save_pretrained(moe)
        models[MOE_LABEL] = str(moe)
    return models
