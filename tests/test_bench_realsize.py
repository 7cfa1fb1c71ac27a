"""bench/realsize.py on a small Qwen2 shape: every compression method's step runs as the CLI a user
types, and each row carries its time, its own peak memory and the bare forward it is measured in."""

import pytest

from bench import realsize

SMALL = {**realsize.QWEN25_05B, "vocab_size": 1024, "hidden_size": 128, "intermediate_size": 256}
SMALL |= {"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2}


def test_every_compression_method_is_a_step_with_its_own_peak_memory():
    rows = realsize.run(("float32",), "cpu", n=4, seqlen=32, only=("compress",), shape=SMALL)
    assert [r["step"] for r in rows] == list(realsize.COMPRESS)
    for r in rows:
        assert r["seconds"] > 0 and r["forward_s"] > 0 and r["forwards"] == pytest.approx(r["seconds"] / r["forward_s"])
        # a child's peak holds the Python runtime and the model at least
        assert r["peak_gb"] > r["model_gb"] > 0 and r["peak_vs_model"] == pytest.approx(r["peak_gb"] / r["model_gb"])
    table = realsize.to_markdown(rows)
    assert all(f"| {step} | after | float32 |" in table for step in realsize.COMPRESS)
    assert table.splitlines()[-1].count("float32: ") == 1  # one run, one bare forward
