"""Shared fixtures: tiny random-initialised models of several families, made offline."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch

from cola_core.corpora import load_records

FAMILIES = ("llama", "qwen2", "mistral", "gpt2", "gpt_neox", "opt", "phi")
# 2026's families: dense Qwen3, Gemma 3, OLMo 2, and mixture-of-experts models (8 experts, top 2)
NEW_DENSE = ("qwen3", "gemma3_text", "olmo2")
MOE_FAMILIES = ("qwen3_moe", "mixtral", "olmoe", "deepseek_v3", "gpt_oss", "qwen2_moe", "glm4_moe", "granitemoe")
_MOE = {
    "num_experts": 8,
    "num_local_experts": 8,
    "n_routed_experts": 8,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 32,
    "shared_expert_intermediate_size": 32,
    "first_k_dense_replace": 0,  # DeepSeek-V3, GLM-4.5: experts from the first layer on
    "n_group": 1,
    "topk_group": 1,
    "head_dim": 8,
}


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A byte-level BPE tokenizer (vocab 300) trained in a second on built-in text."""
    from cola_core.zoo.train import train_tokenizer

    texts = [r.text for c in ("math", "facts") for r in load_records(c, "pool", limit=200)]
    return train_tokenizer(texts, vocab_size=300)


def make_config(family: str, vocab_size: int):
    """A 2-layer, 32-wide random config of the given family."""
    from transformers import AutoConfig

    common = {"vocab_size": vocab_size, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
    shapes = {
        "gpt2": {"n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 256},
        "opt": {
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "ffn_dim": 64,
            "word_embed_proj_dim": 32,
            "max_position_embeddings": 256,
        },
    }
    default = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 256,
    }
    if family in ("llama", "qwen2", "mistral", *NEW_DENSE, *MOE_FAMILIES):
        default["num_key_value_heads"] = 2
    if family in NEW_DENSE:
        default["head_dim"] = 8
    config = AutoConfig.for_model(family, **common, **shapes.get(family, default))
    if family in MOE_FAMILIES:
        for key, value in _MOE.items():
            if hasattr(config, key):
                setattr(config, key, value)
    if family == "deepseek_v3":  # multi-head latent attention, small
        config.num_key_value_heads = 4
        config.q_lora_rank, config.kv_lora_rank = 16, 16
        config.qk_rope_head_dim = config.qk_nope_head_dim = config.v_head_dim = 8
    return config


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer):
    """Factory: save a random model of a family (with the tiny tokenizer) and return its directory."""
    from transformers import AutoModelForCausalLM

    made: dict[str, str] = {}

    def make(family: str = "llama") -> str:
        if family not in made:
            torch.manual_seed(0)
            model = AutoModelForCausalLM.from_config(make_config(family, len(tiny_tokenizer)))
            path = tmp_path_factory.mktemp(f"tiny-{family}")
            model.save_pretrained(path)
            tiny_tokenizer.save_pretrained(path)
            made[family] = str(path)
        return made[family]

    return make


@pytest.fixture(scope="module")
def calib():
    """Calibration tensors for the compression tests: 12 × 24 random ids over a 300-token vocabulary
    (the tiny configs' size in tests/test_compress.py), two rows padded."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 300, (12, 24), generator=g)
    mask = torch.ones_like(ids)
    mask[0, 10:] = 0
    mask[5, 3:] = 0
    return {"input_ids": ids, "attention_mask": mask}
