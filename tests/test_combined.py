"""Sparsity and quantization in one run (issue #19), as llm-compressor recipes chain a pruning and a
quantization modifier: each layer is pruned, then quantized with the pruned weights kept at zero; and
the settings such a run refuses up front."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from cola_core.cli.main import main
from cola_core.compress import CompressConfig, compress_model
from cola_core.compress.quantization import quantize_gptq
from cola_core.compress.statistics import find_linears, weight_of
from cola_core.errors import ColaError
from cola_core.models.architecture import decoder_layers
from tests.conftest import make_config


def _linears(model):
    return {f"{i}.{n}": m for i, layer in enumerate(decoder_layers(model)) for n, m in find_linears(layer).items()}


@pytest.mark.parametrize("quantizer", ["rtn", "gptq", "awq"])
@pytest.mark.parametrize("pruner", ["wanda", "sparsegpt"])
def test_two_of_four_then_four_bits_keeps_the_pattern_and_the_grid(pruner, quantizer, calib):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(make_config("llama", 300)).eval()
    cfg = CompressConfig(method=pruner, pattern="2:4", quantize=quantizer, bits=4, group_size=16, device="cpu")
    result = compress_model(model, calib, cfg)
    linears = _linears(model)
    assert set(result.quantized) == set(linears)
    for name, module in linears.items():
        w = weight_of(module)
        kept = (w.reshape(w.shape[0], -1, 4) != 0).sum(-1)
        # The 2:4 structure survives (≤ 2 non-zeros in every 4); a kept weight may itself round to zero.
        assert (kept <= 2).all(), f"{name}: more than 2 of every 4 non-zero after quantization"
        assert (kept == 2).float().mean() > 0.8, f"{name}: the quantizer zeroed kept weights wholesale"
        q = result.quantized[name]
        deq = (q.codes.float() - q.zeros[:, q.group_index]) * q.scales[:, q.group_index]
        torch.testing.assert_close(w, deq, rtol=0, atol=1e-6)  # every weight on its group's grid
        assert int(q.codes.max()) <= 15
    layer = result.layers[0]["linears"]["self_attn.q_proj"]
    assert layer["quantized"]["relative_error"] is not None and layer["sparsity"] == pytest.approx(0.5, abs=0.02)


def test_masked_gptq_pays_for_the_mask_through_its_updates():
    """Pruned weights are set to zero as their columns are visited and their error is propagated:
    the masked sweep beats zeroing the pruned weights after an unmasked one."""
    torch.manual_seed(0)
    x = torch.randn(512, 64) * torch.linspace(0.2, 3, 64)
    h = x.t() @ x / len(x)
    w = torch.randn(32, 64)
    keep = torch.rand_like(w) > 0.5
    w0 = w * keep
    masked = quantize_gptq(w0, h, 4, 16, keep=keep).weight
    after = quantize_gptq(w0, h, 4, 16).weight * keep
    assert (masked[~keep] == 0).all()

    def err(v):
        d = (w0 - v) @ x.t()
        return float((d**2).sum())

    assert err(masked) < err(after)


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"method": "awq", "pattern": "2:4"}, "pattern applies to pruning only"),
        ({"method": "awq", "bits": 9}, "bits must lie in 2..8"),
        ({"method": "gptq", "bits": 1}, "bits must lie in 2..8"),
        ({"method": "gptq", "quantize": "rtn"}, "--quantize follows a pruning method"),
        ({"method": "wanda", "quantize": "magnitude"}, "--quantize takes a quantizer"),
        ({"method": "wanda", "quantize": "gptq", "bits": 12}, "bits must lie in 2..8"),
    ],
)
def test_bad_settings_are_refused_up_front(settings, fragment):
    with pytest.raises(ColaError, match=fragment):
        CompressConfig(**settings).validate()


@pytest.fixture(scope="module")
def calib_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("calib") / "calib.jsonl"
    rows = [
        {"id": f"c/{i}", "text": f"Ann has {i} apples and {i + 3} pears.", "corpus": "c", "domain": "math"}
        for i in range(6)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_prune_then_quantize_into_compressed_tensors(tiny_model_dir, calib_file, tmp_path, capsys):
    out = tmp_path / "sgpt24-gptq4"
    argv = ["compress", "--model", tiny_model_dir("llama"), "--calib", str(calib_file), "--method", "sparsegpt"]
    argv += ["--pattern", "2:4", "--quantize", "gptq", "--bits", "4", "--group-size", "16", "--sym"]
    assert main([*argv, "--format", "compressed-tensors", "--out", str(out), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["method"] == "sparsegpt+gptq" and payload["bits"] == 4
    assert payload["achieved_sparsity"] == pytest.approx(0.5, abs=0.01) and payload["format"] == "compressed-tensors"
    config = json.loads((out / "config.json").read_text())["quantization_config"]
    assert config["format"] == "pack-quantized" and config["sparsity_config"]["sparsity_structure"] == "2:4"


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--method", "awq", "--pattern", "2:4"], "pattern applies to pruning only"),
        (["--method", "awq", "--bits", "1"], "bits must lie in 2..8"),
        (["--method", "rtn", "--quantize", "gptq"], "--quantize follows a pruning method"),
        (["--method", "wanda", "--quantize", "owl"], "--quantize takes a quantizer"),
    ],
)
def test_cli_refuses_bad_settings_with_one_line(extra, fragment, tiny_model_dir, calib_file, tmp_path, capsys):
    argv = ["compress", "--model", tiny_model_dir("llama"), "--calib", str(calib_file), "--out", str(tmp_path / "m")]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.strip().splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and fragment in errors[0] and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []
