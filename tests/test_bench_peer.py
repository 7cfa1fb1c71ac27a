"""bench.peer's quality measures (bench/peer_quality.py, issue #33): next-token distributions, the KL
to the dense model, the paired intervals of ours ÷ peer; and its refusal of a peer it cannot run."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

from bench import inputs, peer
from bench import peer_quality as quality
from cola_core.models.loading import BUILTIN_MODELS, load_model


@pytest.fixture(scope="module")
def held():
    return inputs.texts("heldout", 12)


def test_next_token_distributions_give_the_scoring_path_s_perplexity(held):
    tiny = str(BUILTIN_MODELS["cola-tiny"])
    logp = quality.next_token_logprobs(tiny, held)
    ids = load_model(tiny, device="cpu").tokenizer(held, truncation=True, max_length=128)["input_ids"]
    assert [len(x) for x in logp] == [len(r) - 1 for r in ids]
    for x in logp:  # each position is a distribution over the vocabulary
        torch.testing.assert_close(x.logsumexp(-1), torch.zeros(len(x)), atol=1e-4, rtol=0)
    nll = sum(-float(x[torch.arange(len(x)), torch.tensor(r[1:])].sum()) for x, r in zip(logp, ids, strict=True))
    score = quality.heldout_perplexity(tiny, held)
    assert math.exp(nll / sum(len(x) for x in logp)) == pytest.approx(score.score, rel=1e-4)
    assert score.n == len(held) and quality.ppl_ratio(score, score) == (1.0, 1.0, 1.0)


def test_kl_to_dense_is_zero_for_the_dense_model_and_the_textbook_divergence_otherwise():
    torch.manual_seed(0)
    dense = [torch.randn(n, 32).log_softmax(-1) for n in (5, 9, 3)]
    moved = [(d * 0.5 + 0.1 * torch.randn_like(d)).log_softmax(-1) for d in dense]
    assert quality.kl_to_dense(dense, dense) == [0.0, 0.0, 0.0]
    expected = [
        float(torch.nn.functional.kl_div(m, d, log_target=True, reduction="sum"))
        for d, m in zip(dense, moved, strict=True)
    ]
    assert quality.kl_to_dense(dense, moved) == pytest.approx(expected, rel=1e-5)
    assert min(expected) > 0


def test_paired_ratio_and_its_interval():
    rng = torch.Generator().manual_seed(0)
    peer_kl = (torch.rand(50, generator=rng) + 0.5).tolist()
    assert quality.paired_ratio(peer_kl, peer_kl) == (1.0, 1.0, 1.0)
    assert quality.paired_ratio([2 * x for x in peer_kl], peer_kl) == pytest.approx((2.0, 2.0, 2.0))
    noisy = [x * (1 + 0.2 * (i % 3 - 1)) for i, x in enumerate(peer_kl)]
    value, lo, hi = quality.paired_ratio(noisy, peer_kl)
    assert lo < value < hi and hi - lo < 0.2


def test_table_rows_with_and_without_intervals():
    row = {
        "model": "m",
        "device": "CPU, 2 cores",
        "method": "GPTQ",
        "calibration": "64 × 128",
        "runs": 3,
        "dense_ppl": 20.0,
        "ours_s": 1.0,
        "peer_s": 2.0,
        "ours_compress_s": 0.5,
        "peer_compress_s": 1.5,
        "time_ratio": 0.5,
        "ours_ppl": 21.0,
        "peer_ppl": 21.5,
        "ppl_ratio": 21 / 21.5,
        "ours_error": 0.01,
        "peer_error": 0.02,
        "error_ratio": 0.5,
    }
    old = peer.to_markdown([row]).splitlines()[-1]
    assert "0.977× |" in old and "| – | – |" in old
    new = {**row, "ppl_ratio_ci": [0.97, 0.985], "ours_kl": 0.01, "peer_kl": 0.02, "kl_ratio": 0.5}
    new["kl_ratio_ci"] = [0.45, 0.55]
    line = peer.to_markdown([new]).splitlines()[-1]
    assert "0.977× [0.970, 0.985]" in line and "0.0100 / 0.0200 | 0.50× [0.450, 0.550]" in line
    assert line.startswith("| m | CPU, 2 cores | GPTQ |")


def test_rows_keep_their_device_and_the_cpu_s_come_first():
    def row(model: str, method: str, device: str) -> dict:
        return {"model": model, "method": peer.LABELS[method] + " asym", "device": device}

    gpu, cpu = "NVIDIA H100 80GB HBM3", "CPU, 2 cores"
    rows = [row(inputs.WIDE_LABEL, "gptq", gpu), row(inputs.WIDE_LABEL, "awq", cpu), row("cola-tiny", "awq", gpu)]
    rows += [row(inputs.WIDE_LABEL, "gptq", cpu), row("cola-tiny", "wanda", cpu)]
    ordered = [(r["device"], r["model"], r["method"].split()[0]) for r in sorted(rows, key=peer._table_order)]
    assert ordered == [
        (cpu, "cola-tiny", "Wanda"),
        (cpu, inputs.WIDE_LABEL, "GPTQ"),
        (cpu, inputs.WIDE_LABEL, "AWQ"),
        (gpu, "cola-tiny", "AWQ"),
        (gpu, inputs.WIDE_LABEL, "GPTQ"),
    ]
    assert peer.device_name("cpu").startswith("CPU, ") and peer.device_name("cpu").endswith(" cores")
    # a GPU row joins the CPU row of its pair; a re-run on the same device replaces it
    stored = [{**row(inputs.WIDE_LABEL, "gptq", cpu), "ours_s": 1.0}, {"model": "m"}]  # and a pre-#33 row
    fresh = {**row(inputs.WIDE_LABEL, "gptq", gpu), "ours_s": 2.0}
    assert peer.merged(stored, [fresh]) == [stored[0], fresh]
    again = {**row(inputs.WIDE_LABEL, "gptq", cpu), "ours_s": 3.0}
    assert peer.merged(peer.merged(stored, [fresh]), [again]) == [again, fresh]


def test_a_python_that_cannot_run_the_peer_is_one_line_before_any_work(tmp_path):
    import subprocess
    import sys

    def bench_peer(*flags: str) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "bench.peer", *flags]
        out = subprocess.run(argv, capture_output=True, text=True, cwd=Path(__file__).parents[1])
        assert out.returncode == 2 and "Traceback" not in out.stderr and out.stdout == ""
        return out

    assert "cannot run it" in peer.peer_problem(str(tmp_path / "no-python"))
    assert peer.peer_problem(sys.executable) == "llm-compressor is not importable there"  # ours: not installed
    out = bench_peer("--python", str(tmp_path / "no-python"))
    assert "make the peer's venv: python3 -m venv .peer-venv" in out.stderr
    assert (
        "--peer-seeds must be at least 1, got 0" in bench_peer("--python", sys.executable, "--peer-seeds", "0").stderr
    )
    if not torch.cuda.is_available():
        out = bench_peer("--python", sys.executable, "--device", "cuda")
        assert "--device cuda: no CUDA GPU is visible here" in out.stderr


def test_several_runs_of_the_peer_are_scored_as_their_mean_per_text():
    from cola_core.evaluation.suite import perplexity_score

    counts = [10, 20, 30]
    runs = [
        {"ppl": perplexity_score("heldout", nll, counts, seed=0), "kl": kl, "error": err}
        for nll, kl, err in (([20.0, 44.0, 60.0], [1.0, 2.0, 3.0], 0.1), ([24.0, 40.0, 66.0], [3.0, 2.0, 1.0], 0.3))
    ]
    mean = quality.mean_of(runs)
    assert [item for item, _ in mean["ppl"].items] == [22.0, 42.0, 63.0]
    assert mean["ppl"].score == pytest.approx(math.exp(127 / 60))
    assert mean["kl"] == [2.0, 2.0, 2.0] and mean["error"] == pytest.approx(0.2)
    assert quality.mean_of(runs[:1]) is runs[0]
    row = {"peer_ppl_each": [21.0, 23.5, 22.0]}
    assert peer._orders(row) == " (mean of 3 orders: 21.00–23.50)" and peer._orders({}) == ""


def test_the_gpu_session_script_refuses_bad_input_in_one_line(tmp_path):
    """bench/gpu_session.sh (docs/performance.md, "On a lent GPU"): an unknown mode, or fetching
    without the peer's venv, is one line and exit 2, before anything is downloaded or removed."""
    import subprocess

    root = Path(__file__).parents[1]
    for argv, env, said in (
        (["bogus"], {}, "usage: bash bench/gpu_session.sh {fetch | run [tests,gpu,peer]}"),
        (["fetch"], {"PEER_PYTHON": str(tmp_path / "none")}, f"no peer venv at {tmp_path / 'none'}"),
        (["run", "tests,gpus"], {"OUT": str(tmp_path / "out")}, "run: unknown step 'gpus'; choose from tests, gpu"),
    ):
        out = subprocess.run(
            ["bash", "bench/gpu_session.sh", *argv], capture_output=True, text=True, cwd=root, env={**os.environ, **env}
        )
        assert out.returncode == 2 and out.stderr.strip().startswith(said) and len(out.stderr.splitlines()) == 1
        assert out.stdout == ""
    assert not (tmp_path / "out").exists()  # refused before anything is installed or written


def test_a_gpu_session_s_results_merge_its_gpu_section_and_peer_rows_only(tmp_path):
    """``bench.run --merge``: the GPU machine's results.json carries this machine's sections as they
    travelled; only its gpu section and its peer rows come in, each row replacing its pair on its device."""
    import subprocess
    import sys

    from bench import run as bench_run

    def row(method: str, device: str, seconds: float) -> dict:
        return {"model": inputs.WIDE_LABEL, "method": peer.LABELS[method], "device": device, "ours_s": seconds}

    cpu, gpu = "CPU, 2 cores", "NVIDIA H100 80GB HBM3"
    here = {"maps": [1], "peer": [row("gptq", cpu, 30.0), row("awq", cpu, 148.0)], "run_dates": {"maps": "d0"}}
    there = {"maps": [2], "gpu": {"device": gpu}, "run_dates": {"maps": "d9", "gpu": "d1"}}
    there["peer"] = [row("gptq", cpu, 30.0), row("awq", cpu, 148.0), row("gptq", gpu, 5.0)]
    merged = bench_run.merge_from(here, there)
    assert merged["maps"] == [1] and merged["gpu"] == {"device": gpu}
    assert merged["run_dates"] == {"maps": "d0", "gpu": "d1"}
    assert [(r["method"], r["device"]) for r in merged["peer"]] == [
        (peer.LABELS["gptq"], cpu),
        (peer.LABELS["awq"], cpu),
        (peer.LABELS["gptq"], gpu),
    ]
    assert bench_run.merge_from(here, {"gpu": {}}) == here  # a session whose gpu step did not finish
    bad = tmp_path / "results.json"
    for text, said in (("{", "not a readable results.json"), ("[]", "its top level is not an object")):
        bad.write_text(text)
        argv = [sys.executable, "-m", "bench.run", "--only", "", "--merge", str(bad)]
        out = subprocess.run(argv, capture_output=True, text=True, cwd=Path(__file__).parents[1])
        assert out.returncode == 2 and said in out.stderr and "Traceback" not in out.stderr
