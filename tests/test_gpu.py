"""CUDA checks of the compression engine; skipped where no GPU is present (CI has none).

- Wanda in fp32 prunes exactly the same weights on CPU and GPU (TF32 off, fp64 score, stable ranks);
- the offload path keeps one decoder layer on the GPU at a time and hands every weight back on CPU;
- SparseGPT and GPTQ on the GPU reach the CPU's reconstruction error.
"""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from cola_core.compress import CompressConfig, compress_model
from cola_core.compress.statistics import find_linears, weight_of
from cola_core.models.architecture import decoder_layers
from tests.conftest import make_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _calib(vocab: int, n: int = 16, seqlen: int = 48) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, vocab, (n, seqlen), generator=g)
    mask = torch.ones_like(ids)
    mask[1, seqlen // 3 :] = 0  # padding must be masked out on both devices alike
    return {"input_ids": ids, "attention_mask": mask}


def _masks(model) -> dict[str, torch.Tensor]:
    return {
        f"{i}.{n}": weight_of(m) == 0
        for i, layer in enumerate(decoder_layers(model))
        for n, m in find_linears(layer).items()
    }


def _wider_llama(layers: int = 4, width: int = 256):
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=512,
        hidden_size=width,
        intermediate_size=width * 11 // 4,
        num_hidden_layers=layers,
        num_attention_heads=width // 64,
        num_key_value_heads=width // 128,
        max_position_embeddings=128,
    )
    return AutoModelForCausalLM.from_config(cfg).eval()


@pytest.mark.parametrize("family", ["llama", "gpt2", "opt", "phi"])
@pytest.mark.parametrize("pattern", [None, "2:4"])
def test_wanda_masks_identical_on_cpu_and_gpu(family, pattern):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(make_config(family, 300)).eval()
    twin = copy.deepcopy(model)
    calib = _calib(300)
    cfg = dict(method="wanda", sparsity=0.5, pattern=pattern)
    compress_model(model, calib, CompressConfig(device="cpu", **cfg))
    result = compress_model(twin, calib, CompressConfig(device="cuda", **cfg))
    assert result.device.startswith("cuda")
    cpu, gpu = _masks(model), _masks(twin)
    for name in cpu:
        assert torch.equal(cpu[name], gpu[name]), name


def test_wanda_masks_identical_on_a_wider_model():
    model = _wider_llama()
    twin = copy.deepcopy(model)
    calib = _calib(512, n=32, seqlen=96)
    compress_model(model, calib, CompressConfig(method="wanda", sparsity=0.6, device="cpu"))
    compress_model(twin, calib, CompressConfig(method="wanda", sparsity=0.6, device="cuda"))
    cpu, gpu = _masks(model), _masks(twin)
    differing = sum(int((cpu[k] != gpu[k]).sum()) for k in cpu)
    assert differing == 0, f"{differing} weights pruned differently"


def _offload_peak(layers: int) -> tuple[int, int]:
    """Peak CUDA bytes of SparseGPT on a ``layers``-deep model, and the model's bytes."""
    model = _wider_llama(layers=layers, width=512)
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    seen: list[int] = []
    result = compress_model(
        model,
        _calib(512, n=16, seqlen=64),
        CompressConfig(method="sparsegpt", device="cuda"),
        progress=lambda d, t, r: seen.append(d),
    )
    assert seen == list(range(1, layers + 1)) and result.device.startswith("cuda")
    assert all(p.device.type == "cpu" for p in model.parameters())
    return torch.cuda.max_memory_allocated() - base, model_bytes


def test_offload_keeps_one_layer_on_the_gpu_and_returns_weights_to_cpu():
    """Peak GPU memory is one layer's worth (weights, Hessians, activations): it does not grow with depth."""
    shallow, _ = _offload_peak(4)
    deep, deep_bytes = _offload_peak(16)
    assert deep < 1.1 * shallow, f"peak {deep / 2**20:.1f} MiB at 16 layers vs {shallow / 2**20:.1f} MiB at 4"
    assert deep < deep_bytes / 2, f"peak {deep / 2**20:.1f} MiB, model {deep_bytes / 2**20:.1f} MiB"


@pytest.mark.parametrize("method", ["sparsegpt", "gptq"])
def test_gpu_matches_cpu_reconstruction_error(method):
    model = _wider_llama(layers=2)
    twin = copy.deepcopy(model)
    calib = _calib(512, n=32, seqlen=96)
    cfg = dict(method=method, sparsity=0.5, bits=4, group_size=64)
    cpu = compress_model(model, calib, CompressConfig(device="cpu", **cfg))
    gpu = compress_model(twin, calib, CompressConfig(device="cuda", **cfg))
    for rc, rg in zip(cpu.layers, gpu.layers, strict=True):
        for name, stats in rc["linears"].items():
            assert rg["linears"][name]["relative_error"] == pytest.approx(stats["relative_error"], rel=1e-2), name


def test_device_map_auto_on_the_gpu_extracts_what_the_cpu_does():
    """A model placed by accelerate (device_map="auto") gives the CPU's fp32 vectors within tolerance."""
    import numpy as np

    from cola_core.corpora import load_records
    from cola_core.curation.activations import ActivationConfig, extract_activations
    from cola_core.models.loading import load_model

    texts = [r.text for r in load_records("prose", "pool", limit=16)]
    cpu = load_model("cola-tiny", device="cpu", dtype="float32")
    gpu = load_model("cola-tiny", device="cuda", dtype="float32", device_map="auto")
    assert next(gpu.model.parameters()).device.type == "cuda"
    a = extract_activations(cpu.model, cpu.tokenizer, texts, ActivationConfig(seqlen=48))
    b = extract_activations(gpu.model, gpu.tokenizer, texts, ActivationConfig(seqlen=48))
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-3, atol=1e-4)


def test_scoring_on_the_gpu_holds_no_full_vocabulary_logits():
    """8 × 256 tokens over a 151,936-token vocabulary: full fp32 logits would take 1.24 GB; the
    chunked scorer's peak above the resident model must stay far below that."""
    from cola_core.models.scoring import target_logprobs

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(make_config("llama", 151_936)).eval().cuda()
    ids = torch.randint(3, 151_936, (8, 256), device="cuda")
    target_logprobs(model, ids[:1, :8], torch.ones_like(ids[:1, :8]))  # the head-path check, once
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    logp, _ = target_logprobs(model, ids, torch.ones_like(ids))
    peak = torch.cuda.max_memory_allocated() - base
    full_logits = 8 * 255 * 151_936 * 4
    assert logp.shape == (8, 255) and torch.isfinite(logp).all()
    assert peak < 0.25 * full_logits, f"scoring peak {peak / 2**20:.0f} MiB above the model"


def test_extraction_on_the_gpu_is_bounded_by_the_token_budget():
    """Peak GPU memory of extraction depends on the batch budget, not on how many samples there are."""
    from cola_core.curation.activations import ActivationConfig, extract_activations
    from cola_core.models.loading import load_model

    loaded = load_model("cola-tiny", device="cuda", dtype="float32")
    texts = [" ".join(f"w{i}{j}" for j in range(60)) for i in range(256)]
    cfg = ActivationConfig(seqlen=128, batch_tokens=2048)

    def peak(n: int) -> int:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        extract_activations(loaded.model, loaded.tokenizer, texts[:n], cfg)
        return torch.cuda.max_memory_allocated() - base

    small, large = peak(32), peak(256)
    assert large < 1.25 * small + 2**20, f"{large / 2**20:.1f} MiB for 256 samples vs {small / 2**20:.1f} for 32"


def _outlier_llama(layers: int = 2, width: int = 256):
    """A wider random Llama whose norms scale a few input channels by 20 (activation outliers, as
    trained models have; random ones do not), so AWQ has something to protect."""
    model = _wider_llama(layers=layers, width=width)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and p.dim() == 1:
                p[[3, 17]] *= 20
    return model


@pytest.mark.parametrize("quantizer", ["rtn", "gptq"])
def test_awq_on_the_gpu_matches_the_cpu(quantizer):
    """Same groups folded where the CPU folds them, AWQ's error within 5 % of the CPU's (the exponent
    itself may differ where the error is flat in α, and with it each linear's error: none over 1.25×)."""
    model = _outlier_llama()
    twin = copy.deepcopy(model)
    calib = _calib(512, n=16, seqlen=64)
    cfg = dict(method="awq", bits=4, group_size=64, awq_quantizer=quantizer)
    cpu = compress_model(model, calib, CompressConfig(device="cpu", **cfg))
    gpu = compress_model(twin, calib, CompressConfig(device="cuda", **cfg))
    for rc, rg in zip(cpu.layers, gpu.layers, strict=True):
        for gc, gg in zip(rc["awq"]["groups"], rg["awq"]["groups"], strict=True):
            assert gc["linears"] == gg["linears"] and gc["fold"] == gg["fold"]
            assert gg["error_awq"] <= 1.05 * gc["error_awq"] + 1e-6, (gc, gg)
        for name, stats in rc["linears"].items():
            assert rg["linears"][name]["relative_error"] <= 1.25 * stats["relative_error"] + 1e-6, name


def test_awq_offload_peak_does_not_grow_with_depth():
    """AWQ on the GPU keeps one layer there at a time: peak memory at 8 layers ≈ at 2 layers."""

    def peak(layers: int) -> int:
        model = _outlier_llama(layers=layers)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        compress_model(model, _calib(512, n=16, seqlen=64), CompressConfig(method="awq", group_size=64, device="cuda"))
        assert all(p.device.type == "cpu" for p in model.parameters())
        return torch.cuda.max_memory_allocated() - base

    shallow, deep = peak(2), peak(8)
    assert deep < 1.1 * shallow, f"AWQ peak {deep / 2**20:.1f} MiB at 8 layers vs {shallow / 2**20:.1f} MiB at 2"
