"""device_map="auto" (accelerate) for models larger than one device: extraction and evaluation give
the same numbers when the weights are spread out or offloaded to disk."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from cola_core.corpora import load_records
from cola_core.curation.activations import ActivationConfig, extract_activations
from cola_core.errors import ColaError
from cola_core.evaluation.suite import evaluate
from cola_core.models.architecture import input_device
from cola_core.models.loading import load_model

pytest.importorskip("accelerate")
CONFIG = ActivationConfig(seqlen=48)


@pytest.fixture(scope="module")
def plain():
    return load_model("cola-tiny", device="cpu")


@pytest.fixture(scope="module")
def texts():
    return [r.text for c in ("prose", "math") for r in load_records(c, "pool", limit=12)]


def test_device_map_auto_loads_and_extracts_the_same(plain, texts, tmp_path, monkeypatch):
    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path))
    mapped = load_model("cola-tiny", device="cpu", device_map="auto")
    assert mapped.device_map == "auto" and mapped.fingerprint == plain.fingerprint
    a = extract_activations(plain.model, plain.tokenizer, texts, CONFIG)
    b = extract_activations(mapped.model, mapped.tokenizer, texts, CONFIG)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6)


def test_disk_offloaded_model_extracts_and_evaluates_the_same(plain, texts, tmp_path):
    """Every weight offloaded to disk (accelerate streams each layer in when it runs)."""
    from transformers import AutoModelForCausalLM

    offloaded = AutoModelForCausalLM.from_pretrained(
        plain.path, device_map="auto", max_memory={"cpu": "1MB"}, offload_folder=str(tmp_path / "offload")
    ).eval()
    assert set(offloaded.hf_device_map.values()) == {"disk"}
    assert input_device(offloaded).type == "cpu"
    a = extract_activations(plain.model, plain.tokenizer, texts, CONFIG)
    b = extract_activations(offloaded, plain.tokenizer, texts, CONFIG)
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6)
    dense = evaluate(plain.model, plain.tokenizer, ("lm", "facts"), limit=10)
    spread = evaluate(offloaded, plain.tokenizer, ("lm", "facts"), limit=10)
    for cap in dense:
        assert dense[cap].score == pytest.approx(spread[cap].score, rel=1e-5)


def test_unknown_device_map_is_refused():
    with pytest.raises(ColaError, match="unknown device map"):
        load_model("cola-tiny", device="cpu", device_map="balanced_low_0")


def test_each_process_offloads_into_its_own_folder(tmp_path, monkeypatch):
    """A driver and its Ray workers on one node must not rewrite each other's offloaded weights."""
    import os

    from cola_core.models.loading import _offload_folder

    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path))
    folder = _offload_folder("/models/x")
    assert folder.name == f"{socket.gethostname()}-pid-{os.getpid()}" and folder.is_relative_to(tmp_path / "offload")
    assert _offload_folder("/models/y").parent != folder.parent


def test_a_killed_process_offload_folder_is_removed_by_the_next_one(tmp_path, monkeypatch):
    """kill -9 skips atexit: the next process on the host removes the dead one's folder, not a live one's."""
    import subprocess
    import sys

    from cola_core.models.loading import _offload_folder

    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        parent = _offload_folder("/models/x").parent
        host = socket.gethostname()
        for pid in (int(dead.stdout), live.pid):
            (parent / f"{host}-pid-{pid}").mkdir(parents=True)
            (parent / f"{host}-pid-{pid}" / "w.dat").write_bytes(b"x")
        (parent / f"other-host-pid-{dead.stdout.strip()}").mkdir()  # another node's process: not ours to judge
        _offload_folder("/models/x")
        left = sorted(p.name for p in parent.iterdir())
        assert left == sorted([f"{host}-pid-{live.pid}", f"other-host-pid-{dead.stdout.strip()}"])
    finally:
        live.kill()
        live.wait()
