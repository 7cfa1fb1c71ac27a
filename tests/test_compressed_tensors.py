"""``--format compressed-tensors``: what we write loads through transformers' compressed-tensors
integration (compressed-tensors 0.19.0, the format of llm-compressor and vLLM) and gives back exactly
our quantized / pruned weights; the packed file is ~4× smaller than fp16 at 4 bits; bad combinations
are refused before any work.

Loading on CPU (transformers 5.23): ``CompressedTensorsConfig(dequantize=True)`` (formerly
``run_compressed=False``) decompresses at load; a plain ``from_pretrained`` keeps the packed weights
and decompresses on the first forward — symmetric grids only: with an asymmetric grid it fails on the
zero point's shape (the library's meta-device skeleton keeps it unpacked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, CompressedTensorsConfig

from cola_core.cli.main import main
from cola_core.compress import CompressConfig, compress_model, save_compressed
from cola_core.compress.engine import CompressionResult
from cola_core.compress.formats import check_compressed_tensors, quantization_scheme, serving_note
from cola_core.compress.save import build_report
from cola_core.compress.statistics import find_linears, weight_of
from cola_core.errors import ColaError
from cola_core.models.architecture import decoder_layers
from cola_core.models.loading import load_model
from tests.conftest import make_config

# from_pretrained warns that the checkpoint's own quantization_config wins: only `dequantize` is taken from ours
pytestmark = pytest.mark.filterwarnings("ignore:You passed `quantization_config`:UserWarning")
VOCAB = 300
ROOT = Path(__file__).resolve().parents[1]


def llama(hidden: int = 128, intermediate: int = 256, seed: int = 0):
    """A 2-layer random Llama wide enough for groups of 32 and 64."""
    cfg = make_config("llama", VOCAB)
    cfg.hidden_size, cfg.intermediate_size = hidden, intermediate
    cfg.head_dim = hidden // cfg.num_attention_heads
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(cfg).eval()


def compress(model, calib, cfg: CompressConfig):
    result = compress_model(model, calib, cfg)
    return result, build_report(result, cfg, "fp", 12, 24)


def load(path: Path, dequantize: bool = True):
    kwargs = {"quantization_config": CompressedTensorsConfig(dequantize=True)} if dequantize else {}
    return AutoModelForCausalLM.from_pretrained(path, **kwargs).eval()


def logits(model, calib) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=calib["input_ids"], attention_mask=calib["attention_mask"]).logits


def quant_config(path: Path) -> dict:
    return json.loads((path / "config.json").read_text())["quantization_config"]


def assert_same_weights(ours, loaded) -> None:
    theirs = loaded.state_dict()
    for key, value in ours.state_dict().items():
        assert torch.equal(value, theirs[key]), key


def tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path / "model.safetensors"), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)


@pytest.mark.parametrize(
    ("method", "bits", "group", "symmetric", "act_order"),
    [
        ("gptq", 4, 32, True, False),
        ("gptq", 4, 64, False, False),
        ("gptq", 4, 32, False, True),
        ("rtn", 8, -1, True, False),
        ("rtn", 8, 64, False, False),
    ],
)
def test_quantized_model_loads_with_our_weights(
    method, bits, group, symmetric, act_order, calib, tiny_tokenizer, tmp_path
):
    model = llama()
    cfg = CompressConfig(method=method, bits=bits, group_size=group, symmetric=symmetric, act_order=act_order)
    result, report = compress(model, calib, cfg)
    save_compressed(model, tiny_tokenizer, result, report, tmp_path / "dense")
    save_compressed(model, tiny_tokenizer, result, report, tmp_path / "ct", format="compressed-tensors")

    loaded = load(tmp_path / "ct")
    assert_same_weights(model, loaded)  # bit for bit: fp32 scales, our codes
    for key, q in result.quantized.items():  # …and they are our dequantization of our codes
        li, _, name = key.partition(".")
        deq = (q.codes.float() - q.zeros[:, q.group_index]) * q.scales[:, q.group_index]
        assert torch.equal(weight_of(find_linears(decoder_layers(loaded)[int(li)])[name]), deq), key
    dense = load(tmp_path / "dense", dequantize=False)
    torch.testing.assert_close(logits(loaded, calib), logits(dense, calib))
    if symmetric:  # plain from_pretrained: packed on load, decompressed by the first forward
        torch.testing.assert_close(logits(load(tmp_path / "ct", dequantize=False), calib), logits(dense, calib))

    qc = quant_config(tmp_path / "ct")
    weights = qc["config_groups"]["group_0"]["weights"]
    assert (qc["quant_method"], qc["format"], qc["quantization_status"]) == (
        "compressed-tensors",
        "pack-quantized",
        "compressed",
    )
    assert qc["config_groups"]["group_0"]["targets"] == ["Linear"] and qc["ignore"] == ["lm_head"]
    assert (weights["num_bits"], weights["symmetric"], weights["type"]) == (bits, symmetric, "int")
    assert (weights["strategy"], weights["group_size"]) == (("group", group) if group > 0 else ("channel", None))
    assert weights["actorder"] == ("weight" if act_order else None) and qc["version"] == "0.19.0"
    stored = tensors(tmp_path / "ct")
    q_proj = "model.layers.0.self_attn.q_proj"
    assert f"{q_proj}.weight" not in stored and stored[f"{q_proj}.weight_packed"].dtype == torch.int32
    assert stored[f"{q_proj}.weight_packed"].shape == (128, 128 * bits // 32)
    assert (f"{q_proj}.weight_zero_point" in stored) is (not symmetric)
    saved = json.loads((tmp_path / "ct" / "compression_report.json").read_text())
    assert saved["format"] == "compressed-tensors" and saved["size_bytes"] == sum(saved["weight_files"].values())
    assert saved["weight_files"] == {"model.safetensors": (tmp_path / "ct" / "model.safetensors").stat().st_size}


def _linear_bytes(path: Path, names: set[str]) -> int:
    """Bytes of the tensors that belong to the given modules in a checkpoint."""
    return sum(t.numel() * t.element_size() for k, t in tensors(path).items() if k.rpartition(".")[0] in names)


def test_packed_4bit_file_is_about_4x_smaller_than_fp16(calib, tiny_tokenizer, tmp_path):
    model = llama(hidden=512, intermediate=1024)  # linears ~94% of the weights, vocabulary 300
    result, report = compress(model, calib, CompressConfig(method="rtn", bits=4, group_size=128, symmetric=True))
    model.half()  # the fp16 baseline; scales are stored in the model's dtype, as llm-compressor does
    save_compressed(model, tiny_tokenizer, result, report, tmp_path / "fp16")
    save_compressed(model, tiny_tokenizer, result, report, tmp_path / "ct", format="compressed-tensors")
    linears = {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head"}
    fp16, packed = _linear_bytes(tmp_path / "fp16", linears), _linear_bytes(tmp_path / "ct", linears)
    assert 3.8 < fp16 / packed < 4.0  # 16 bits → 4 bits + one fp16 scale per 128 weights (4.125 bits)
    files = {d: (tmp_path / d / "model.safetensors").stat().st_size for d in ("fp16", "ct")}
    assert files["fp16"] / files["ct"] > 3.2  # whole file, embeddings and lm_head kept in fp16
    assert json.loads((tmp_path / "ct" / "compression_report.json").read_text())["size_bytes"] == files["ct"]
    from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32

    stored, q = tensors(tmp_path / "ct"), result.quantized["1.mlp.down_proj"]
    codes = unpack_from_int32(stored["model.layers.1.mlp.down_proj.weight_packed"], 4, q.codes.shape)
    assert torch.equal(codes.int() + 8, q.codes.int())  # our codes, whatever the scales' dtype
    loaded = load(tmp_path / "ct").state_dict()
    for key, value in model.state_dict().items():  # fp16 scales: equal up to the scale's fp16 rounding
        torch.testing.assert_close(loaded[key], value, rtol=2e-3, atol=0, msg=key)


def _follows_2_4(model) -> bool:
    weights = [weight_of(m) for layer in decoder_layers(model) for m in find_linears(layer).values()]
    return all(((w.reshape(w.shape[0], -1, 4) == 0).sum(-1) >= 2).all() for w in weights)


def _global_sparsity(model) -> float:
    params = list(model.parameters())
    return sum(int((p == 0).sum()) for p in params) / sum(p.numel() for p in params)


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
def test_2_4_model_carries_sparsity_metadata_and_loads(method, calib, tiny_tokenizer, tmp_path):
    model = llama()
    result, report = compress(model, calib, CompressConfig(method=method, pattern="2:4"))
    save_compressed(model, tiny_tokenizer, result, report, tmp_path, format="compressed-tensors")
    qc = quant_config(tmp_path)
    sparsity = qc["sparsity_config"]
    assert (sparsity["format"], sparsity["sparsity_structure"]) == ("dense", "2:4")
    assert sparsity["targets"] is None and sparsity["ignore"] is None  # vLLM ≥ 0.22 refuses targets
    assert sparsity["global_sparsity"] == pytest.approx(_global_sparsity(model))
    assert "config_groups" not in qc and qc["quant_method"] == "compressed-tensors"
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()  # plain: nothing is packed
    assert_same_weights(model, loaded)
    assert _follows_2_4(loaded)


def test_unstructured_pruning_says_unstructured(calib, tiny_tokenizer, tmp_path):
    model = llama()
    result, report = compress(model, calib, CompressConfig(method="wanda", sparsity=0.5))
    save_compressed(model, tiny_tokenizer, result, report, tmp_path, format="compressed-tensors")
    assert quant_config(tmp_path)["sparsity_config"]["sparsity_structure"] == "unstructured"


def test_pruned_then_quantized_model_writes_and_loads(calib, tiny_tokenizer, tmp_path):
    model = llama()
    pruned, report = compress(model, calib, CompressConfig(method="wanda", pattern="2:4"))
    quantized = compress_model(model, calib, CompressConfig(method="rtn", bits=4, group_size=32))
    assert _follows_2_4(model)  # RTN maps a zero to its zero point: the pattern survives
    result = CompressionResult(pruned.layers, quantized.quantized)  # what a prune + --quantize run hands over
    report["settings"].update(bits=4, group_size=32, symmetric=False, act_order=False)
    save_compressed(model, tiny_tokenizer, result, report, tmp_path, format="compressed-tensors")
    qc = quant_config(tmp_path)
    assert qc["format"] == "pack-quantized" and qc["config_groups"]["group_0"]["weights"]["num_bits"] == 4
    assert qc["sparsity_config"]["sparsity_structure"] == "2:4"
    assert "model.layers.1.mlp.down_proj.weight_packed" in tensors(tmp_path)
    loaded = load(tmp_path)
    assert_same_weights(model, loaded)
    assert _follows_2_4(loaded)
    from cola_core.models.loading import load_model

    assert_same_weights(model, load_model(str(tmp_path), device="cpu").model)  # what evaluate/compare load


def test_refusals_leave_nothing_behind(calib, tiny_tokenizer, tmp_path):
    with pytest.raises(ColaError, match=r"1\.\.8-bit"):
        quantization_scheme(9, 128, True, False)  # the library's pack-quantized compressor says no
    torch.manual_seed(0)
    gpt2 = AutoModelForCausalLM.from_config(make_config("gpt2", VOCAB))
    with pytest.raises(ColaError, match="Conv1D"):
        check_compressed_tensors(CompressConfig(method="rtn", group_size=16), gpt2)
    check_compressed_tensors(CompressConfig(method="wanda", pattern="2:4"), gpt2)  # pruning: stored dense
    assert "vLLM" in serving_note("compressed-tensors", 3) and serving_note("compressed-tensors", 4) is None
    model = llama()
    result, report = compress(model, calib, CompressConfig(method="rtn", bits=4, group_size=32))
    with torch.no_grad():
        weight_of(decoder_layers(model)[1].mlp.up_proj)[0, 0] += 1.0  # no longer what the codes say
    with pytest.raises(ColaError, match="do not reproduce"):
        save_compressed(model, tiny_tokenizer, result, report, tmp_path / "out", format="compressed-tensors")
    with pytest.raises(ColaError, match="unknown format"):
        save_compressed(model, tiny_tokenizer, result, report, tmp_path / "out", format="gguf")
    assert list(tmp_path.iterdir()) == []  # no model, no temporary folder


@pytest.fixture(scope="module")
def calib_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("calib") / "calib.jsonl"
    rows = [
        {"id": f"c/{i}", "text": f"The town of Lemal lies in Quenor {i}.", "corpus": "c", "domain": "facts", "meta": {}}
        for i in range(4)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_json_reports_format_and_size(tiny_model_dir, calib_file, tmp_path):
    out = tmp_path / "ct"
    argv = ["compress", "--model", tiny_model_dir("llama"), "--calib", str(calib_file), "--method", "rtn"]
    argv += ["--group-size", "16", "--format", "compressed-tensors", "--out", str(out), "--json"]
    done = subprocess.run([sys.executable, "-m", "cola_core", *argv], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["format"] == "compressed-tensors"
    assert payload["size_bytes"] == sum(f.stat().st_size for f in out.glob("*.safetensors")) > 0
    assert quant_config(out)["format"] == "pack-quantized"
    # neither --sym nor --asym: symmetric (issue #32), so a plain from_pretrained loads the checkpoint
    assert "a symmetric grid" in done.stderr
    assert next(iter(quant_config(out)["config_groups"].values()))["weights"]["symmetric"] is True
    plain = AutoModelForCausalLM.from_pretrained(out).eval()
    ours = load_model(str(out), device="cpu", dtype="float32").model
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        torch.testing.assert_close(plain(ids).logits, ours(ids).logits)
    asym = subprocess.run(
        [sys.executable, "-m", "cola_core", *argv[:-3], "--asym", "--out", str(tmp_path / "asym")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert asym.returncode == 0, asym.stderr
    assert next(iter(quant_config(tmp_path / "asym")["config_groups"].values()))["weights"]["symmetric"] is False


def test_cli_text_prints_the_size(tiny_model_dir, calib_file, tmp_path, capsys):
    out = tmp_path / "dense"
    argv = ["compress", "--model", tiny_model_dir("llama"), "--calib", str(calib_file), "--method", "wanda"]
    assert main([*argv, "--out", str(out)]) == 0
    size = json.loads((out / "compression_report.json").read_text())["size_bytes"]
    assert f"dense weights: {size / 1e6:,.1f} MB ({size:,} bytes)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("family", "extra", "fragment"),
    [
        ("llama", ["--method", "rtn", "--format", "nonsense"], "invalid choice: 'nonsense'"),
        ("llama", ["--method", "rtn", "--bits", "9", "--format", "compressed-tensors"], "2..8"),
        ("gpt2", ["--method", "rtn", "--group-size", "16", "--format", "compressed-tensors"], "Conv1D"),
    ],
)
def test_cli_bad_combinations_exit_2_with_one_line_and_write_nothing(
    family, extra, fragment, tiny_model_dir, calib_file, tmp_path, capsys
):
    argv = ["compress", "--model", tiny_model_dir(family), "--calib", str(calib_file), "--out", str(tmp_path / "m")]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.strip().splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and fragment in errors[0] and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []


def test_every_compressed_model_carries_a_model_card(tiny_model_dir, calib_file, tmp_path, capsys):
    """README.md with the Hub's base_model / base_model_relation front matter, the method, the
    calibration set's fingerprint and mix, and what serves it (issue #32)."""
    model = tiny_model_dir("llama")
    base = ["compress", "--model", model, "--calib", str(calib_file)]
    assert main([*base, "--method", "wanda", "--out", str(tmp_path / "pruned")]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                *base,
                "--method",
                "rtn",
                "--bits",
                "3",
                "--group-size",
                "16",
                "--format",
                "compressed-tensors",
                "--out",
                str(tmp_path / "q3"),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err  # the serving check is said before the work (the layers' progress follows)
    assert err.index("this 3-bit checkpoint loads in transformers only") < err.index("layers")
    pruned = (tmp_path / "pruned" / "README.md").read_text()
    report = json.loads((tmp_path / "pruned" / "compression_report.json").read_text())
    assert pruned.startswith(f"---\nbase_model: {model}\nbase_model_relation: pruned\n")
    assert (
        f"fingerprint `{report['calibration']['fingerprint']}`" in pruned and "| sparsity achieved | 50.0% |" in pruned
    )
    q3 = (tmp_path / "q3" / "README.md").read_text()
    assert "base_model_relation: quantized" in q3 and "- compressed-tensors" in q3
    assert "| bits, group size, grid | 3, 16, symmetric |" in q3 and "loads in transformers only" in q3
