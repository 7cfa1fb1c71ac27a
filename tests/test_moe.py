"""Mixture-of-experts models: every expert compressed by every method, from the tokens routed to it
(or every token), routers left dense, and the output saved and loaded (issue #31)."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from cola_core.cli.main import main
from cola_core.compress import CompressConfig, compress_model
from cola_core.compress.experts import split_experts
from cola_core.errors import ColaError
from cola_core.models.architecture import decoder_layers
from tests.conftest import MOE_FAMILIES, NEW_DENSE, make_config

VOCAB = 300


def fresh(family, seed=0):
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(make_config(family, VOCAB)).eval()


def expert_matrices(model):
    """(name, expert, matrix) for every expert projection, read from the fused 3-D parameters."""
    out = []
    for li, layer in enumerate(decoder_layers(model)):
        with split_experts(layer) as split:
            for prefix, module in split.items():
                for e, expert in enumerate(module.experts):
                    for proj in ("gate_proj", "up_proj", "down_proj"):
                        out.append((f"{li}.{prefix}.{e}.{proj}", e, getattr(expert, proj).weight.detach().clone()))
    return out


def routers(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if any(k in n for k in ("mlp.gate.", "router."))}


@pytest.mark.parametrize("family", MOE_FAMILIES)
def test_split_experts_compute_what_the_fused_module_computes(family, calib):
    model = fresh(family)
    with torch.no_grad():
        dense = model(input_ids=calib["input_ids"][:3]).logits
        layers = decoder_layers(model)
        with split_experts(layers[0]) as split, split_experts(layers[1]):
            assert split, f"{family}: no fused experts found"
            split_logits = model(input_ids=calib["input_ids"][:3]).logits
    torch.testing.assert_close(split_logits, dense, atol=1e-5, rtol=1e-4)
    assert any(p.dim() == 3 for p in layers[0].parameters()), "the fused module is back after the block"


@pytest.mark.parametrize("family", MOE_FAMILIES)
def test_wanda_prunes_every_expert_to_the_target(family, calib):
    model = fresh(family)
    before_routers = routers(model)
    result = compress_model(model, calib, CompressConfig(method="wanda", sparsity=0.5), keep_codes=False)
    experts = expert_matrices(model)
    assert len(experts) == 2 * 8 * 3
    for name, _, w in experts:
        assert abs(float((w == 0).float().mean()) - 0.5) <= 0.01, name
    compressed = [w for layer in result.layers for lin in layer["linears"].values() for w in [lin]]
    total = sum(v["shape"][0] * v["shape"][1] for v in compressed)
    zeros = sum(v["sparsity"] * v["shape"][0] * v["shape"][1] for v in compressed)
    assert abs(zeros / total - 0.5) <= 0.01
    assert sum(".experts." in n for layer in result.layers for n in layer["linears"]) == 2 * 8 * 3
    for name, w in before_routers.items():
        assert torch.equal(dict(model.named_parameters())[name], w), f"router {name} changed"


@pytest.mark.parametrize("method", ["magnitude", "sparsegpt"])
@pytest.mark.parametrize("family", ["qwen3_moe", "mixtral", "olmoe"])
def test_other_pruners_reach_every_expert(family, method, calib):
    model = fresh(family)
    compress_model(model, calib, CompressConfig(method=method, sparsity=0.5), keep_codes=False)
    for name, _, w in expert_matrices(model):
        assert abs(float((w == 0).float().mean()) - 0.5) <= 0.01, name


@pytest.mark.parametrize("method", ["rtn", "gptq", "awq"])
@pytest.mark.parametrize("family", ["qwen3_moe", "mixtral", "olmoe", "gpt_oss"])
def test_quantizers_put_every_expert_weight_on_its_grid(family, method, calib):
    model = fresh(family)
    before = {name: w for name, _, w in expert_matrices(model)}
    result = compress_model(model, calib, CompressConfig(method=method, bits=4, group_size=16))
    for name, _, w in expert_matrices(model):
        groups = w.reshape(w.shape[0], -1, 16)
        levels = max(len(torch.unique(g)) for g in groups.reshape(-1, 16))
        assert levels <= 16, f"{name}: {levels} values in a group of a 4-bit grid"
        assert not torch.equal(w, before[name]), f"{name} untouched"
        assert torch.isfinite(w).all()
    assert sum(".experts." in k for k in result.quantized) == 2 * 8 * 3


def test_prune_then_quantize_and_owl_reach_the_experts(calib):
    model = fresh("qwen3_moe")
    compress_model(model, calib, CompressConfig(method="wanda", sparsity=0.5, quantize="gptq", group_size=16))
    for name, _, w in expert_matrices(model):
        assert abs(float((w == 0).float().mean()) - 0.5) <= 0.01, name
        assert max(len(torch.unique(g)) for g in w.reshape(-1, 16)) <= 16
    model = fresh("qwen3_moe")
    result = compress_model(model, calib, CompressConfig(method="wanda", sparsity=0.5, owl=True), keep_codes=False)
    for layer in result.layers:
        assert all(abs(v["sparsity"] - layer["target_sparsity"]) < 0.02 for v in layer["linears"].values())


def test_routed_statistics_floor_and_all_tokens(calib):
    """Under *routed* each expert's statistic holds the real tokens sent to it; an expert below the
    floor is named and takes every token; *all* gives every expert every real token."""
    real = int(calib["attention_mask"].sum())
    model = fresh("mixtral")
    routed = compress_model(model, calib, CompressConfig(method="wanda", moe_floor=0.0), keep_codes=False)
    report = routed.layers[0]["experts"]["mlp.experts"]
    assert report["calibration"] == "routed" and report["all_tokens_for"] == []
    assert sum(report["routed_tokens"]) == 2 * real  # top-2 routing of every real token, padding excluded
    model = fresh("mixtral")
    floored = compress_model(model, calib, CompressConfig(method="wanda", moe_floor=1.0), keep_codes=False)
    report = floored.layers[0]["experts"]["mlp.experts"]
    low = [e for e, n in enumerate(report["routed_tokens"]) if n < report["floor_tokens"]]
    assert low and report["all_tokens_for"] == low
    assert all(report["statistic_tokens"][e] == (real if e in low else report["routed_tokens"][e]) for e in range(8))
    model = fresh("mixtral")
    config = CompressConfig(method="gptq", group_size=16, moe_calibration="all")
    everyone = compress_model(model, calib, config, keep_codes=False)
    for layer in everyone.layers:
        report = layer["experts"]["mlp.experts"]
        assert report["all_tokens_for"] == [] and report["statistic_tokens"] == [real] * 8


def test_an_expert_the_router_never_picks_is_still_compressed(calib):
    model = fresh("qwen3_moe")

    def never_three(_module, _args, output):  # the router's choice 3 goes to expert 4 instead
        logits, scores, indices = output
        return logits, scores, torch.where(indices == 3, torch.full_like(indices, 4), indices)

    for layer in decoder_layers(model):
        layer.mlp.gate.register_forward_hook(never_three)
    before = {name: w for name, _, w in expert_matrices(model)}
    result = compress_model(model, calib, CompressConfig(method="gptq", bits=4, group_size=16))
    assert all(r["experts"]["mlp.experts"]["routed_tokens"][3] == 0 for r in result.layers)
    assert all(3 in r["experts"]["mlp.experts"]["all_tokens_for"] for r in result.layers)
    for name, e, w in expert_matrices(model):
        if e == 3:
            assert torch.isfinite(w).all() and not torch.equal(w, before[name]), name


@pytest.mark.parametrize("floor", [0.0, 1.0])
def test_owl_awq_and_a_zero_floor_handle_an_unrouted_expert(calib, floor):
    """An expert the router never picks still gets a statistic (even at --moe-floor 0), OWL still
    scores it, and AWQ (over several batches, so experts sit some out) gives it RTN and says why."""

    def never_three(_module, _args, output):
        logits, scores, indices = output
        return logits, scores, torch.where(indices == 3, torch.full_like(indices, 4), indices)

    for config in (
        CompressConfig(method="wanda", owl=True, moe_floor=floor),
        CompressConfig(method="awq", bits=4, group_size=16, batch_tokens=48, moe_floor=floor),
    ):
        model = fresh("qwen3_moe")
        for layer in decoder_layers(model):
            layer.mlp.gate.register_forward_hook(never_three)
        before = {name: w for name, _, w in expert_matrices(model)}
        result = compress_model(model, calib, config, keep_codes=False)
        for name, _, w in expert_matrices(model):
            assert torch.isfinite(w).all() and not torch.equal(w, before[name]), name
        if config.method == "awq":  # its gate/up take the block's scales (awq_groups._through_the_router)
            groups = [g for g in result.layers[0]["awq"]["groups"] if ".experts.3." in g["linears"][0]]
            assert [g["linears"] for g in groups] == [["mlp.experts.3.down_proj"]]
            assert "no token of the AWQ sample" in groups[0]["fallback"]
            block = next(g for g in result.layers[0]["awq"]["groups"] if g["module"] == "mlp")
            assert "mlp.experts.3.gate_proj" in block["linears"] and block["fallback"] is None


def test_the_shared_expert_gate_is_a_router_and_stays_dense(calib):
    model = fresh("qwen2_moe")
    gate = model.model.layers[0].mlp.shared_expert_gate.weight.detach().clone()
    result = compress_model(model, calib, CompressConfig(method="wanda"), keep_codes=False)
    assert result.layers[0]["ignored"] == ["mlp.gate", "mlp.shared_expert_gate"]
    assert torch.equal(model.model.layers[0].mlp.shared_expert_gate.weight, gate)
    assert "mlp.shared_expert.gate_proj" in result.layers[0]["linears"]


def test_an_unknown_expert_layout_stops_the_run(calib):
    model = fresh("qwen3_moe")
    experts = model.model.layers[0].mlp.experts
    del experts.is_transposed  # as if a family kept its experts in a layout nobody described
    with pytest.raises(ColaError, match="cannot split"):
        compress_model(model, calib, CompressConfig(method="wanda"))
    assert torch.count_nonzero(experts.gate_up_proj) == experts.gate_up_proj.numel()


@pytest.mark.parametrize("family", ["qwen3_moe", "mixtral", "olmoe"])
def test_compressed_moe_saves_and_loads(family, calib, tmp_path):
    model = fresh(family)
    compress_model(model, calib, CompressConfig(method="wanda", sparsity=0.5), keep_codes=False)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        a = model(input_ids=calib["input_ids"][:2]).logits
        b = loaded(input_ids=calib["input_ids"][:2]).logits
    torch.testing.assert_close(a, b)
    for name, _, w in expert_matrices(loaded):
        assert abs(float((w == 0).float().mean()) - 0.5) <= 0.01, name


@pytest.fixture(scope="module")
def calib_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("calib") / "calib.jsonl"
    rows = [
        {"id": f"c/{i}", "text": f"Ann has {i} apples and {i + 3} pears. " * 4, "corpus": "c", "domain": "math"}
        for i in range(8)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("family", [*MOE_FAMILIES, *NEW_DENSE])
def test_cli_curates_compresses_and_evaluates_new_families(family, tiny_model_dir, calib_file, tmp_path, capsys):
    model = tiny_model_dir(family)
    calib = tmp_path / "calib.jsonl"
    argv = ["curate", "--model", model, "--corpora", "math,facts", "--pool-size", "24", "--n", "6"]
    assert main([*argv, "--seqlen", "32", "--out", str(calib)]) == 0
    assert len(calib.read_text().splitlines()) == 6
    capsys.readouterr()
    argv = ["compress", "--model", model, "--calib", str(calib), "--method", "gptq", "--group-size", "8"]
    assert main([*argv, "--moe-calibration", "all", "--out", str(tmp_path / "m"), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    if family in MOE_FAMILIES:
        assert payload["experts"]["experts"] == 16 and payload["experts"]["calibration"] == "all"
        assert all("experts" in layer for layer in payload["layers"])
    else:
        assert "experts" not in payload
    assert main(["evaluate", "--model", str(tmp_path / "m"), "--capabilities", "math", "--limit", "8", "--json"]) == 0
    assert "math" in json.loads(capsys.readouterr().out)["scores"]


def test_cli_says_what_happened_to_the_experts(tiny_model_dir, calib_file, tmp_path, capsys):
    argv = ["compress", "--model", tiny_model_dir("qwen3_moe"), "--calib", str(calib_file), "--method", "wanda"]
    assert main([*argv, "--moe-floor", "3", "--out", str(tmp_path / "m")]) == 0  # 3 × 32 tokens: some fall short
    out = capsys.readouterr().out
    assert "experts: 16 compressed, statistics from the tokens routed to each" in out
    assert "took their statistics from every token" in out and "routers kept dense: mlp.gate" in out
    report = json.loads((tmp_path / "m" / "compression_report.json").read_text())
    assert report["experts"]["experts"] == 16 and report["achieved_sparsity"] == pytest.approx(0.5, abs=0.01)


def test_cli_refuses_what_compressed_tensors_cannot_hold_for_experts(tiny_model_dir, calib_file, tmp_path, capsys):
    argv = [
        "compress",
        "--calib",
        str(calib_file),
        "--method",
        "rtn",
        "--format",
        "compressed-tensors",
        "--group-size",
        "8",
    ]
    for family, extra, fragment in (
        ("qwen3_moe", ["--asym"], "add --sym"),  # asked for explicitly: the format's default is symmetric
        ("gpt_oss", [], "keep their experts fused"),
    ):
        assert main([*argv, *extra, "--model", tiny_model_dir(family), "--out", str(tmp_path / "m")]) == 2
        err = capsys.readouterr().err
        assert fragment in err and "Traceback" not in err
        assert list(tmp_path.iterdir()) == []
    assert main([*argv, "--model", tiny_model_dir("qwen3_moe"), "--out", str(tmp_path / "m")]) == 0  # symmetric
    assert "a symmetric grid" in capsys.readouterr().err and (tmp_path / "m" / "README.md").is_file()


@pytest.mark.parametrize("family", ["qwen3_moe", "mixtral", "olmoe", "deepseek_v3"])
def test_compressed_tensors_moe_checkpoints_load_with_the_same_logits(family, calib, tmp_path, tiny_tokenizer):
    """Packed experts under the names the family's checkpoints use (Mixtral: block_sparse_moe.experts.N.w1),
    loaded back through transformers into the fused layout: the in-memory model's logits exactly."""
    from safetensors.torch import load_file

    from cola_core.compress.save import build_report, save_compressed
    from cola_core.models.loading import load_model

    for config in (
        CompressConfig(method="gptq", bits=4, group_size=16, symmetric=True),
        CompressConfig(method="wanda", sparsity=0.5),
    ):
        model = fresh(family)
        result = compress_model(model, calib, config)
        out = tmp_path / config.method
        save_compressed(
            model, tiny_tokenizer, result, build_report(result, config, "fp", 12, 24), out, "compressed-tensors"
        )
        keys = load_file(str(out / "model.safetensors")).keys()
        if config.method == "gptq":
            assert sum(k.endswith("weight_packed") and ".experts." in k for k in keys) == 2 * 8 * 3
            if family == "mixtral":
                assert "model.layers.0.block_sparse_moe.experts.7.w2.weight_packed" in keys
        loaded = load_model(str(out), device="cpu", dtype="float32").model
        with torch.no_grad():
            torch.testing.assert_close(loaded(calib["input_ids"][:2]).logits, model(calib["input_ids"][:2]).logits)


def test_expert_usage_counts_every_real_token_k_times(calib):
    from cola_core.curation.activations import ActivationConfig, extract_from_ids

    model = fresh("qwen3_moe")
    ids = [row[: int(m.sum())].tolist() for row, m in zip(calib["input_ids"], calib["attention_mask"], strict=True)]
    acts = extract_from_ids(model, ids, 0, ActivationConfig(seqlen=24))
    assert {"experts0", "experts1"} <= set(acts)
    for key in ("experts0", "experts1"):
        assert acts[key].shape == (12, 8)
        assert acts[key].sum(1).tolist() == [2.0 * len(x) for x in ids]  # top-2 routing, padding excluded


def test_expert_coverage_counts_experts_reaching_the_floor():
    import numpy as np

    from cola_core.curation.metrics import expert_coverage

    usage = np.array([[10, 0, 5, 0], [10, 0, 0, 1], [0, 3, 0, 0]], dtype=np.float32)
    assert expert_coverage(usage, [0, 1], floor=5) == 0.5  # experts 0 (20) and 2 (5)
    assert expert_coverage(usage, [0, 1, 2], floor=1) == 1.0
    assert expert_coverage(usage, [2], floor=4) == 0.0


def test_curate_reports_expert_coverage_for_moe_models_only(tiny_model_dir, tmp_path, capsys):
    argv = ["curate", "--corpora", "math,facts", "--pool-size", "24", "--n", "6", "--seqlen", "32", "--json"]
    assert main([*argv, "--model", tiny_model_dir("qwen3_moe"), "--out", str(tmp_path / "a.jsonl")]) == 0
    moe = json.loads(capsys.readouterr().out)
    assert 0.0 <= moe["expert_coverage"] <= 1.0
    assert (
        main([*argv, "--model", tiny_model_dir("qwen3_moe"), "--expert-features", "--out", str(tmp_path / "b.jsonl")])
        == 0
    )
    with_features = json.loads(capsys.readouterr().out)
    assert 0.0 <= with_features["expert_coverage"] <= 1.0
    assert main([*argv, "--model", tiny_model_dir("llama"), "--out", str(tmp_path / "c.jsonl")]) == 0
    assert "expert_coverage" not in json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("method", ["magnitude", "wanda", "sparsegpt", "rtn", "gptq", "awq"])
@pytest.mark.parametrize("family", ["qwen3", "gemma3_text", "olmo2"])
def test_every_method_on_the_new_dense_families(family, method, calib):
    model = fresh(family)
    config = CompressConfig(method=method, bits=4, group_size=8)
    result = compress_model(model, calib, config, keep_codes=False)
    linears = [v for layer in result.layers for v in layer["linears"].values()]
    assert len(linears) == 2 * 7 and "experts" not in result.layers[0]
    if config.is_pruning:
        assert all(abs(v["sparsity"] - 0.5) <= 0.01 for v in linears)
    with torch.no_grad():
        assert torch.isfinite(model(calib["input_ids"][:2]).logits).all()


def test_cola_experts_picks_the_member_that_fills_missing_experts():
    """Two clusters; the point nearest each centroid feeds a common expert only, the second nearest
    also a rare one: COLA takes the nearest, cola-experts the one that fills the rare expert."""
    import numpy as np

    from cola_core.curation.selection import select_cola, select_cola_experts

    axes = np.eye(4, dtype=np.float32)
    half = np.concatenate([axes, -axes, 2 * axes, -2 * axes, np.zeros((1, 4)), 0.01 * axes[:1]]).astype(np.float32)
    space = np.concatenate([half, half + 50])  # rows 16/34: at the centroids; rows 17/35: next to them
    experts = np.zeros((len(space), 6), dtype=np.float32)
    experts[:, 0] = 10
    experts[17, 3] = experts[35, 5] = 10
    assert sorted(select_cola(space, 2, seed=0).indices.tolist()) == [16, 34]
    chosen = select_cola_experts(space, 2, experts=experts, expert_floor=10, seed=0)
    assert sorted(chosen.indices.tolist()) == [17, 35]
    assert select_cola_experts(space, 2, experts=np.zeros_like(experts), expert_floor=10, seed=0).indices.tolist() in (
        [16, 34],
        [34, 16],
    )  # nothing to gain: the nearest, as COLA
    with pytest.raises(ColaError, match="mixture-of-experts model"):
        select_cola_experts(space, 2, seed=0)
    from cola_core.curation.selection import strategies_for

    assert "cola-experts" in strategies_for(True) and "cola-experts" not in strategies_for(False)
