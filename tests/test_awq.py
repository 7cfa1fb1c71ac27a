"""AWQ (cola_core/compress/awq.py): scales found and folded per group of linears, the dense model
unchanged by the fold, lower error than RTN where activations have outliers, the engine end to end.

Random-init models have no activation outliers, and without them AWQ has nothing to protect; the
tests plant some: channels 3 and 17 of every norm weight in the decoder layers are multiplied by 20,
so the linears reading those norms see two input channels 20× larger than the rest, as in real LLMs."""

from __future__ import annotations

import pytest
import torch

from cola_core.compress import CompressConfig, compress_model
from cola_core.compress.awq import (
    awq_scales,
    candidates,
    capture_groups,
    clip_weight,
    fake_quantize,
    find_groups,
    prepare_awq,
    sample_inputs,
    search_scale,
    weight_means,
)
from cola_core.compress.capture import capture_layer_inputs, run_layer
from cola_core.compress.quantization import quantize_rtn
from cola_core.compress.save import build_report
from cola_core.compress.statistics import find_linears, weight_of
from cola_core.errors import ColaError
from cola_core.models.architecture import decoder_layers
from tests.test_compress import fresh
from tests.test_moe import fresh as fresh_moe
from tests.test_moe import routers

OUTLIERS = [3, 17]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Hundreds of tiny forwards: on a loaded 2-core machine, torch's second thread mostly waits for a
    core (measured: 6.6 s vs 0.44 s for one AWQ run on the tiny Llama); results do not depend on it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def norm_weights(model) -> list[torch.Tensor]:
    """The 1-D weights (norms) inside the decoder layers."""
    modules = [m for layer in decoder_layers(model) for m in layer.modules()]
    return [
        m.weight.data for m in modules if isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.dim() == 1
    ]


def with_outliers(family: str) -> torch.nn.Module:
    model = fresh(family)
    for weight in norm_weights(model):
        weight[OUTLIERS] *= 20
    return model


def logits(model, calib) -> torch.Tensor:
    with torch.no_grad():
        return model(**calib, use_cache=False).logits[calib["attention_mask"].bool()]


def relative_error(new: torch.Tensor, dense: torch.Tensor) -> float:
    return float((new - dense).square().sum() / dense.square().sum())


AWQ = CompressConfig(method="awq", bits=4, group_size=16)


def prepare_all_layers(model, calib, config: CompressConfig) -> list[dict]:
    """The engine's loop without the rounding: every layer scaled (and clipped if asked), in order."""
    inputs = capture_layer_inputs(
        model, calib["input_ids"], calib["attention_mask"], 12 * calib["input_ids"].shape[1], torch.device("cpu")
    )
    reports = []
    for layer in decoder_layers(model):
        reports.append(prepare_awq(layer, inputs, config))
        inputs.hidden = run_layer(layer, inputs)
    return reports


# (linears of the group, where its scale is folded) per family, layer 0; None: s = 1 with a reason
EXPECTED_FOLDS = {
    "llama": {  # grouped-query attention: v_proj has 16 outputs for o_proj's 32 inputs
        "self_attn.q_proj": "input_layernorm",
        "self_attn.o_proj": None,
        "mlp.gate_proj": "post_attention_layernorm",
        "mlp.down_proj": "mlp.up_proj",
    },
    "gpt2": {"attn.c_attn": "ln_1", "attn.c_proj": "attn.c_attn[64:96]", "mlp.c_fc": "ln_2", "mlp.c_proj": None},
    "opt": {  # ReLU is positively homogeneous: fc2's scale folds into fc1's rows
        "self_attn.q_proj": "self_attn_layer_norm",
        "self_attn.out_proj": "self_attn.v_proj",
        "fc1": "final_layer_norm",
        "fc2": "fc1",
    },
    "phi": {"self_attn.q_proj": "input_layernorm", "self_attn.dense": "self_attn.v_proj", "mlp.fc2": None},
    "phi3": {
        "self_attn.qkv_proj": "input_layernorm",
        "self_attn.o_proj": "self_attn.qkv_proj[64:96]",
        "mlp.gate_up_proj": "post_attention_layernorm",
        "mlp.down_proj": "mlp.gate_up_proj[64:128]",
    },
    "gpt_neox": {  # heads interleave q, k and v rows; GELU before the MLP's output projection
        "attention.query_key_value": "input_layernorm",
        "attention.dense": None,
        "mlp.dense_h_to_4h": "post_attention_layernorm",
        "mlp.dense_4h_to_h": None,
    },
}


@pytest.mark.parametrize("family", list(EXPECTED_FOLDS))
def test_folding_finds_each_groups_producer_and_keeps_the_dense_model(family, calib):
    model = with_outliers(family)
    dense = logits(model, calib)
    norms_before = [w.clone() for w in norm_weights(model)]
    reports = prepare_all_layers(model, calib, CompressConfig(method="awq", bits=3, group_size=16, awq_clip=False))
    folded = logits(model, calib)
    assert float((folded - dense).abs().max()) <= 1e-5 * float(dense.abs().max())
    groups = {g["linears"][0]: g for g in reports[0]["groups"]}
    assert {name: g["fold"] for name, g in groups.items()} == EXPECTED_FOLDS[family]
    for g in groups.values():
        assert (g["fallback"] is None) == (g["fold"] is not None)
        if g["fold"] is None:
            assert g["scale_min"] == g["scale_max"] == 1.0 and "tried" in g["fallback"]
    assert any(g["alpha"] and g["scale_max"] > 2 * g["scale_min"] for g in groups.values())  # not a vacuous fold
    assert any(not torch.equal(a, b) for a, b in zip(norm_weights(model), norms_before, strict=True))


def test_phi_shares_one_scale_between_attention_and_mlp(calib):
    """Phi's one LayerNorm feeds q/k/v and fc1: one group, compared on the whole layer's output."""
    reports = prepare_all_layers(with_outliers("phi"), calib, AWQ)
    first = reports[0]["groups"][0]
    assert first["linears"] == ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.fc1"]
    assert first["module"] == "layer" and first["fold"] == "input_layernorm"


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2", "opt", "phi3"])
@pytest.mark.parametrize("bits", [3, 4])
def test_awq_beats_rtn_on_the_calibration_logits(family, bits, calib):
    dense = logits(with_outliers(family), calib)
    errors = {}
    for method in ("rtn", "awq"):
        model = with_outliers(family)
        result = compress_model(model, calib, CompressConfig(method=method, bits=bits, group_size=16))
        errors[method] = relative_error(logits(model, calib), dense)
    assert errors["awq"] < 0.8 * errors["rtn"], errors
    for layer in result.layers:  # the search includes α = 0, plain RTN: it never reports worse
        assert all(g["error_awq"] <= g["error_rtn"] for g in layer["awq"]["groups"])
    assert any(g["error_awq"] < 0.9 * g["error_rtn"] for g in result.layers[0]["awq"]["groups"])


def test_scales_are_positive_per_input_channel_and_largest_on_the_outliers(calib):
    model = with_outliers("llama")
    inputs = capture_layer_inputs(
        model, calib["input_ids"], calib["attention_mask"], 12 * calib["input_ids"].shape[1], torch.device("cpu")
    )
    layer = decoder_layers(model)[0]
    qkv = find_groups(layer, inputs)[0]
    before = {n: weight_of(m).clone() for n, m in find_linears(layer).items()}
    s, info, rows = search_scale(layer, qkv, capture_groups(layer, inputs, [qkv])[0], AWQ)
    assert s.shape == (32,) and (s > 0).all() and info["alpha"] > 0
    assert set(torch.topk(s, 2).indices.tolist()) == set(OUTLIERS)
    assert rows.shape[1] == 32 and len(rows) == int(calib["attention_mask"].sum())
    for name, m in find_linears(layer).items():  # the search leaves the weights as it found them
        assert torch.equal(weight_of(m), before[name]), name


def test_sample_inputs_spreads_whole_sequences_under_the_token_cap(calib):
    model = fresh("llama")
    inputs = capture_layer_inputs(
        model, calib["input_ids"], calib["attention_mask"], 5 * calib["input_ids"].shape[1], torch.device("cpu")
    )
    # batches in order of length: rows 5 (3 real tokens), 0 (10) | 1, 2, 3, 4, 6 | 7 … 11 (24 each)
    sample = sample_inputs(inputs, 40)  # the 1st and 7th sequences (3 + 24 tokens); a third would pass 40
    assert [int(m.sum()) for m in sample.masks] == [3, 24] and [len(h) for h in sample.hidden] == [1, 1]
    assert len(sample_inputs(inputs, 1).hidden) == 1  # at least one sequence
    assert sum(int(m.sum()) for m in sample_inputs(inputs, 10**6).masks) == int(calib["attention_mask"].sum())
    layer = decoder_layers(model)[0]
    out, full = run_layer(layer, sample), run_layer(layer, inputs)  # keyword arguments cut the same way
    torch.testing.assert_close(out[0][0], full[0][0])
    torch.testing.assert_close(out[1][0], full[1][4])


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("group_size", [8, -1])
def test_fake_quantize_is_rtn(symmetric, group_size):
    w = torch.randn(12, 32)
    expected = quantize_rtn(w, 3, group_size, symmetric).weight
    torch.testing.assert_close(fake_quantize(w, 3, group_size, symmetric), expected, rtol=0, atol=1e-6)
    s, before = torch.rand(32) + 0.5, w.clone()
    scaled = quantize_rtn(w * s, 3, group_size, symmetric).weight / s
    torch.testing.assert_close(fake_quantize(w, 3, group_size, symmetric, s), scaled, rtol=0, atol=1e-6)
    assert torch.equal(w, before)  # in place on its own copy only


def test_duo_scaling_weight_means_and_candidates():
    """w_mean: |w| over its quantization group's max, averaged over every row of the group's linears;
    the duo grid: plain RTN first, then α = 0 … 1 of mean|x|^α / w_mean^(1−α), as llm-compressor."""
    a = torch.tensor([[1.0, -2.0, 4.0, 1.0], [-3.0, 3.0, 0.0, 2.0]])
    b = torch.tensor([[2.0, 1.0, -1.0, -4.0]])
    by_hand = torch.tensor([0.5 + 1 + 1, 1 + 1 + 0.5, 1 + 0 + 0.25, 0.25 + 1 + 1]) / 3  # groups of 2 columns
    torch.testing.assert_close(weight_means([a, b], 2), by_hand, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        weight_means([a], -1)[:2], torch.tensor([(0.25 + 1) / 2, (0.5 + 1) / 2]), atol=1e-5, rtol=0
    )

    x_mean, weights = torch.rand(4) + 0.1, [a, b]
    plain = candidates(x_mean, weights, CompressConfig(method="awq", group_size=2, awq_grid=5))
    assert [alpha for alpha, _ in plain] == [0, 0.2, 0.4, 0.6, 0.8]
    duo = candidates(x_mean, weights, CompressConfig(method="awq", group_size=2, awq_grid=5, awq_duo=True))
    assert [alpha for alpha, _ in duo] == [0, 0, 1 / 3, 2 / 3, 1]
    assert torch.equal(duo[0][1], torch.ones(4))  # plain RTN stays the first candidate
    w_mean = weight_means(weights, 2)
    for alpha, s in duo[1:]:
        expected = x_mean.pow(alpha) / (w_mean.pow(1 - alpha) + 1e-4)
        torch.testing.assert_close(s, expected / (expected.max() * expected.min()).sqrt())
    torch.testing.assert_close(duo[-1][1], awq_scales(x_mean, 1.0))  # α = 1: activations alone


def test_duo_scaling_beats_rtn_and_keeps_the_dense_model(calib):
    model = with_outliers("llama")
    dense = logits(model, calib)
    config = CompressConfig(method="awq", bits=3, group_size=16, awq_clip=False, awq_duo=True)
    reports = prepare_all_layers(model, calib, config)
    torch.testing.assert_close(logits(model, calib), dense, atol=1e-5 * float(dense.abs().max()), rtol=0)
    groups = [g for r in reports for g in r["groups"] if g["fold"]]
    assert all(g["error_awq"] <= g["error_rtn"] for g in groups)
    assert any(g["duo"] and g["error_awq"] < 0.9 * g["error_rtn"] for g in groups)


def test_clipping_never_raises_a_groups_error_and_only_shrinks():
    torch.manual_seed(0)
    w, x = torch.randn(20, 32), torch.randn(64, 32)
    w[:, 5] *= 8  # an outlying weight per row: clipping it costs less than the grid it coarsens
    clipped, kept = clip_weight(w, x, 3, 16, False)
    assert 0.55 <= kept < 1.0 and (clipped.abs() <= w.abs() + 1e-7).all()

    def group_errors(q):
        return ((q - w).reshape(20, 1, 2, 16) * x.reshape(1, 64, 2, 16)).sum(-1).square().mean(1)

    assert (
        group_errors(fake_quantize(clipped, 3, 16, False)) <= group_errors(fake_quantize(w, 3, 16, False)) + 1e-6
    ).all()


@pytest.mark.parametrize(("group_size", "n"), [(16, 64), (-1, 20)])
def test_clipping_picks_what_the_partial_outputs_pick(group_size, n):
    """Δᵀ G Δ (a group no wider than the rows) or the partial outputs of Δ (a wider one) choose each
    (row, group) range as the reference's error of the partial outputs, written out in fp64, does."""
    torch.manual_seed(1)
    w, x = torch.randn(24, 32), torch.randn(n, 32) * torch.rand(32) * 3
    w[:, 3] *= 6
    clipped, _ = clip_weight(w, x, 3, group_size, False)
    size = 32 if group_size <= 0 else group_size
    wg, xg = w.double().reshape(24, -1, size), x.double().reshape(n, -1, size)
    amax = wg.abs().amax(-1, keepdim=True)
    errors = []
    for i in range(10):
        limit = amax * (1 - i / 20)
        q = fake_quantize(wg.clamp(-limit, limit).reshape(24, 32).float(), 3, group_size, False).double()
        partial = torch.einsum("ogk,ngk->ong", q.reshape_as(wg), xg) - torch.einsum("ogk,ngk->ong", wg, xg)
        errors.append(partial.square().mean(1))
    best = torch.stack(errors).argmin(0)  # the first of equal errors, as a strict < keeps it
    expected = wg.clamp(-amax * (1 - best[..., None] / 20), amax * (1 - best[..., None] / 20)).reshape(24, 32)
    torch.testing.assert_close(clipped.double(), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("quantizer", ["rtn", "gptq"])
def test_engine_end_to_end_codes_on_the_grid_and_report(quantizer, calib):
    model = with_outliers("llama")
    config = CompressConfig(method="awq", bits=4, group_size=16, awq_quantizer=quantizer)
    result = compress_model(model, calib, config)
    weights = {
        f"{i}.{n}": weight_of(m)
        for i, layer in enumerate(decoder_layers(model))
        for n, m in find_linears(layer).items()
    }
    assert set(result.quantized) == set(weights)
    for name, q in result.quantized.items():
        assert int(q.codes.max()) <= 15 and q.scales.shape[1] == weights[name].shape[1] // 16
        dequantized = (q.codes.float() - q.zeros[:, q.group_index]) * q.scales[:, q.group_index]
        torch.testing.assert_close(weights[name], dequantized.to(weights[name].device))
    for layer in result.layers:
        awq = layer["awq"]
        assert (
            awq["quantizer"] == quantizer
            and awq["clip"] is True
            and awq["tokens"] == int(calib["attention_mask"].sum())
        )
        assert [g["linears"][0] for g in awq["groups"]] == [
            "self_attn.q_proj",
            "self_attn.o_proj",
            "mlp.gate_proj",
            "mlp.down_proj",
        ]
        assert "self_attn.q_proj" not in awq["clip_kept"] and 0.5 < awq["clip_kept"]["mlp.down_proj"] <= 1
        assert all(v["relative_error"] > 0 for v in layer["linears"].values())
    report = build_report(result, config, "fp", 12, 24)
    assert report["bits"] == 4 and report["settings"]["awq_quantizer"] == quantizer


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (CompressConfig(method="awq", pattern="2:4"), "N:M pattern applies to pruning only"),
        (CompressConfig(method="awq", bits=1), r"bits must lie in 2\.\.8, got 1"),
        (CompressConfig(method="awq", bits=9), r"2\.\.8"),
        (CompressConfig(method="awq", owl=True), "OWL"),
        (CompressConfig(method="awq", awq_quantizer="awq"), "AWQ quantizer must be rtn or gptq, got 'awq'"),
        (CompressConfig(method="awq", awq_grid=0), "AWQ grid must be a positive"),
        (CompressConfig(method="awq", awq_tokens=0), "AWQ tokens must be positive"),
    ],
)
def test_bad_awq_settings_are_rejected_up_front(config, message):
    with pytest.raises(ColaError, match=message):
        config.validate()


@pytest.mark.parametrize("family", ["qwen3_moe", "qwen2_moe", "gpt_oss", "deepseek_v3"])
def test_awq_scales_every_experts_input_through_the_norm_and_routers_are_compensated(family, calib):
    """The router and every expert read the block's input x through their own views and rows: AWQ
    makes one group of the routers, each expert's gate/up (and a shared expert's), searched on the
    block's output and folded into the post-attention norm (llm-compressor's MoE mapping); the routers'
    columns take s exactly, unrounded, so the router computes the same logits."""
    model = fresh_moe(family)
    hidden = model.config.hidden_size
    for layer in decoder_layers(model):  # activation outliers on channels 3 and 17, as in test_awq.py
        for m in layer.modules():
            if isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.shape == (hidden,):
                m.weight.data[[3, 17]] *= 20
    norm_before = [layer.post_attention_layernorm.weight.detach().clone() for layer in decoder_layers(model)]
    before = routers(model)
    result = compress_model(model, calib, CompressConfig(method="awq", bits=4, group_size=16), keep_codes=False)
    for i, (layer, report) in enumerate(zip(decoder_layers(model), result.layers, strict=True)):
        block = [g for g in report["awq"]["groups"] if g["module"] == "mlp"]
        assert len(block) == 1 and block[0]["fold"] == "post_attention_layernorm", report["awq"]["groups"]
        names = block[0]["linears"]
        assert names[0] in ("mlp.gate", "mlp.router")
        assert all(f"mlp.experts.{e}.{p}" in names for e in range(8) for p in ("gate_proj", "up_proj"))
        assert ("mlp.shared_expert.gate_proj" in names) == (family == "qwen2_moe")
        assert block[0]["error_awq"] < block[0]["error_rtn"] and block[0]["scale_max"] > 2 * block[0]["scale_min"]
        s = norm_before[i] / layer.post_attention_layernorm.weight.detach()
        assert set(torch.topk(s, 2).indices.tolist()) == {3, 17}
        for name, w in before.items():
            if name.startswith(f"model.layers.{i}.") and w.dim() == 2:
                now = dict(model.named_parameters())[name]
                torch.testing.assert_close(now, w * s, rtol=1e-5, atol=0)  # compensated, not rounded
