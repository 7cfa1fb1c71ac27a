import json
import subprocess
import sys

import pytest


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cola_core", *args], capture_output=True, text=True, timeout=300)


def test_models_json():
    out = run_cli("models", "--json")
    assert out.returncode == 0, out.stderr
    payload = json.loads(out.stdout)
    names = [m["name"] for m in payload["models"]]
    assert "cola-tiny" in names
    assert set(payload["models"][0]) == {"name", "source", "path", "params"}


def test_corpora_json():
    payload = json.loads(run_cli("corpora", "--json").stdout)
    assert {c["name"] for c in payload["corpora"]} == {"prose", "code", "math", "facts", "random"}
    assert set(payload["corpora"][0]) == {"name", "domain", "description", "splits"}


def test_sample_json_is_one_object():
    out = run_cli("sample", "--corpus", "math", "--split", "heldout", "--n", "3", "--json")
    payload = json.loads(out.stdout)
    assert len(payload["records"]) == 3
    assert all(r["id"].startswith("math/heldout/") for r in payload["records"])


def test_sample_text_output():
    out = run_cli("sample", "--corpus", "facts", "--n", "2")
    assert out.returncode == 0 and out.stdout.count("[facts/pool/") == 2


@pytest.mark.parametrize(
    "args",
    [
        ("sample", "--corpus", "nope"),
        ("sample", "--corpus", "math", "--n", "0"),
        ("sample", "--corpus", "math", "--split", "dev"),
        ("sample", "--corpus", "missing.jsonl"),
        ("sample",),
        ("nonsense",),
    ],
)
def test_bad_input_exits_2_with_one_line(args):
    out = run_cli(*args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in out.stderr
    assert out.stdout == ""


def test_compress_text_says_sparsity_for_pruning_only():
    """Issue #32: a 3-bit RTN run was reported as 'sparsity 29.0%' (values rounded to zero)."""
    from cola_core.cli.render import compress_text

    base = {"layers": [], "device": "cpu", "seconds": 1.0, "out": "o", "format": "dense", "size_bytes": 10}
    assert "(3-bit)" in compress_text({**base, "method": "rtn", "achieved_sparsity": 0.29, "bits": 3})
    assert "(sparsity 50.0%)" in compress_text({**base, "method": "wanda", "achieved_sparsity": 0.5, "bits": None})
    pruned_then_quantized = {**base, "method": "sparsegpt+gptq", "achieved_sparsity": 0.5, "bits": 4}
    assert "(sparsity 50.0%, 4-bit)" in compress_text(pruned_then_quantized)
