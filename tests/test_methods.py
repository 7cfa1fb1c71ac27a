"""The compression-method registry and the shared OBS column sweep (issue #16): one entry per method,
the engine reading the registry, SparseGPT and GPTQ on one loop."""

from types import MappingProxyType

import pytest
import torch

from cola_core.compress import CompressConfig, compress_model, methods
from cola_core.compress.config import METHODS, PRUNING, QUANTIZATION
from cola_core.compress.methods import REGISTRY, Compressed, CompressionMethod
from cola_core.compress.obs import sweep_columns
from cola_core.compress.save import build_report
from cola_core.compress.statistics import Stats
from cola_core.errors import ColaError
from tests.test_compress import _linear_weights, fresh


def test_registry_lists_exactly_the_methods():
    assert list(REGISTRY) == ["magnitude", "wanda", "sparsegpt", "rtn", "gptq", "awq"]
    assert all(m.name == name for name, m in REGISTRY.items())
    assert PRUNING == ("magnitude", "wanda", "sparsegpt") and QUANTIZATION == ("rtn", "gptq", "awq")
    assert METHODS == PRUNING + QUANTIZATION
    from cola_core.compress import METHODS as exported  # the CLI and the dashboard import it from here

    assert exported == METHODS


def test_registry_entries_are_coherent():
    needs = {name: m.statistic(CompressConfig(method=name)) for name, m in REGISTRY.items()}
    assert needs == {
        "magnitude": "none",
        "wanda": "column norms",
        "sparsegpt": "hessian",
        "rtn": "none",
        "gptq": "hessian",
        "awq": "none",
    }
    assert REGISTRY["awq"].statistic(CompressConfig(method="awq", awq_quantizer="gptq")) == "hessian"
    for m in REGISTRY.values():
        assert m.kind in ("pruning", "quantization"), m.name
        if m.kind == "pruning":
            assert set(m.patterns) == {"unstructured", "N:M"} and not m.bits, m.name
        else:
            assert not m.patterns and list(m.bits) == list(range(2, 9)), m.name
        assert m.description and "\n" not in m.description
    for name, cite in (
        ("wanda", "ICLR 2024"),
        ("sparsegpt", "ICML 2023"),
        ("gptq", "ICLR 2023"),
        ("awq", "MLSys 2024"),
    ):
        assert cite in REGISTRY[name].description


@pytest.mark.parametrize("name", list(REGISTRY))
def test_each_method_reads_only_the_statistics_it_declares(name):
    torch.manual_seed(0)
    x = torch.randn(1, 256, 32) @ torch.randn(32, 32)
    st = Stats(32, full=True, error_tokens=0, device=torch.device("cpu"))
    st.add(x, torch.ones(1, 256))
    method = REGISTRY[name]
    needs = method.statistic(CompressConfig(method=name))
    if needs != "column norms":
        st.sq.fill_(float("nan"))
    if needs != "hessian":
        st.h.fill_(float("nan"))
    w = torch.randn(8, 32)
    new, q, info, _ = method.compress(w, st, CompressConfig(method=name, sparsity=0.5, bits=4, group_size=16))
    assert torch.isfinite(new).all() and info["fallback"] is None
    assert (q is None) == (method.kind == "pruning")
    if method.kind == "pruning":  # SparseGPT: exact over all rows of a block of columns, not per row
        assert ((new == 0).sum(1) == 16).all() if name != "sparsegpt" else int((new == 0).sum()) == 8 * 16
    else:
        assert torch.equal(new, q.weight) and int(q.codes.max()) <= 15 and not torch.equal(new, w)


def test_unknown_method_names_every_registered_one():
    with pytest.raises(
        ColaError, match=r"unknown method 'quip': choose one of magnitude, wanda, sparsegpt, rtn, gptq, awq$"
    ):
        CompressConfig(method="quip").validate()
    with pytest.raises(ColaError, match="unknown method"):
        methods.compression_method("quip")


def _zero_leading_columns(weight, stats, settings):
    """A toy pruner: zero the first floor(d_in · s) input columns, noting what it was given."""
    _zero_leading_columns.calls.append((stats.full, settings.sparsity))
    new = weight.clone()
    new[:, : int(weight.shape[1] * settings.sparsity)] = 0
    return Compressed(new, None, {"fallback": None})


def test_a_method_added_to_the_registry_runs_through_the_engine(monkeypatch, calib):
    toy = CompressionMethod(
        "leading", "pruning", "hessian", _zero_leading_columns, "zero the leading columns", patterns=("unstructured",)
    )
    monkeypatch.setattr(methods, "REGISTRY", MappingProxyType({**REGISTRY, "leading": toy}))
    monkeypatch.setattr(_zero_leading_columns, "calls", [], raising=False)
    with pytest.raises(ColaError, match="choose one of magnitude, wanda, sparsegpt, rtn, gptq, awq, leading"):
        CompressConfig(method="nope").validate()
    with pytest.raises(ColaError, match="N:M"):  # its entry accepts unstructured sparsity only
        CompressConfig(method="leading", pattern="2:4").validate()
    model = fresh()
    before = _linear_weights(model)
    config = CompressConfig(method="leading", sparsity=0.25)
    result = compress_model(model, calib, config)
    for name, w in _linear_weights(model).items():
        cut = int(w.shape[1] * 0.25)
        assert not w[:, :cut].any() and torch.equal(w[:, cut:], before[name][:, cut:]), name
    calls = _zero_leading_columns.calls
    assert all(full and s == 0.25 for full, s in calls)  # the full Hessian it asked for
    # one call per statistic: q/k/v share theirs and so do gate/up, so 4 calls for 7 linears per layer
    shared = {v["shares_statistics_with"] for layer in result.layers for v in layer["linears"].values()}
    assert shared == {None, "self_attn.q_proj", "mlp.gate_proj"} and len(calls) == len(before) * 4 // 7
    report = build_report(result, config, "fp", 12, 24)
    assert report["bits"] is None and report["achieved_sparsity"] == pytest.approx(0.25)
    assert all(v["relative_error"] > 0 for layer in result.layers for v in layer["linears"].values())


def test_a_registry_entry_decides_the_bits_it_accepts(monkeypatch):
    toy = CompressionMethod("four", "quantization", "none", _zero_leading_columns, "4-bit only", bits=range(4, 5))
    monkeypatch.setattr(methods, "REGISTRY", MappingProxyType({**REGISTRY, "four": toy}))
    CompressConfig(method="four", bits=4).validate()
    with pytest.raises(ColaError, match=r"bits must lie in 4\.\.4, got 3"):
        CompressConfig(method="four", bits=3).validate()
    assert not CompressConfig(method="four").is_pruning


def _upper_inverse_factor(h: torch.Tensor) -> torch.Tensor:
    return torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)


def test_obs_sweep_with_a_diagonal_hessian_spreads_no_error():
    torch.manual_seed(0)
    w = torch.randn(6, 20)
    swept = w.t().contiguous()  # the sweep takes W transposed: column j is row j
    sweep_columns(swept, torch.diag(torch.rand(20) + 0.5), 7, lambda block, i: torch.round(block.w[i]))
    assert torch.equal(swept.t(), torch.round(w))  # uncorrelated inputs: each column is rounded on its own


def test_obs_sweep_blocks_change_nothing_but_speed():
    torch.manual_seed(0)
    x = torch.randn(400, 24) @ torch.randn(24, 24)
    h = x.t() @ x / len(x)
    hinv = _upper_inverse_factor(h + 0.01 * torch.diag(h).mean() * torch.eye(24))
    w = torch.randn(5, 24)
    outs = []
    for blocksize in (1, 5, 24):
        swept = w.t().contiguous()
        loss = sweep_columns(swept, hinv, blocksize, lambda block, i: torch.round(block.w[i] * 2) / 2)
        outs.append(swept.t())
        # the sweep's Σ e² per row is the error under the (damped) Hessian it swept with: (obs.py)
        damped = torch.linalg.inv(hinv.t() @ hinv)
        dw = w - swept.t()
        torch.testing.assert_close(loss, ((dw @ damped) * dw).sum(1), rtol=1e-3, atol=1e-5)
    assert not torch.equal(outs[0], torch.round(w * 2) / 2)  # errors were propagated
    torch.testing.assert_close(outs[1], outs[0])  # lazy batch updates are exact (GPTQ §4 step 2)
    torch.testing.assert_close(outs[2], outs[0])
    kept = w.t().contiguous()
    assert not sweep_columns(kept, hinv, 5, lambda block, i: block.w[i]).any()
    assert torch.equal(kept.t(), w)  # no error, no update


@pytest.mark.parametrize("name", list(REGISTRY))
def test_no_method_writes_into_the_weight_it_is_given(name):
    """GPT-2's Conv1D weights reach a method as a transposed view: a method's working copy must never
    alias them (a transposed copy of a transposed view is the view itself)."""
    torch.manual_seed(0)
    x = torch.randn(1, 256, 32) @ torch.randn(32, 32)
    st = Stats(32, full=True, error_tokens=0, device=torch.device("cpu"))
    st.add(x, torch.ones(1, 256))
    w = torch.randn(32, 8).t()  # out × in, column-major
    before = w.clone()
    compressed = REGISTRY[name].compress(w, st, CompressConfig(method=name, sparsity=0.5, bits=4, group_size=16))
    assert torch.equal(w, before) and not torch.equal(compressed.weight, before)
