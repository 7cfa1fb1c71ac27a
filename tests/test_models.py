from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from cola_core.errors import ColaError
from cola_core.models.loading import (
    count_params,
    ensure_pad_token,
    list_models,
    load_model,
    pick_device,
    pick_dtype,
)
from cola_core.storage.fingerprints import fingerprint_directory, fingerprint_module
from tests.conftest import FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_loads_every_family_from_a_directory(tiny_model_dir, family):
    loaded = load_model(tiny_model_dir(family))
    assert loaded.device.type == "cpu" and loaded.dtype == torch.float32
    assert not loaded.model.training
    enc = loaded.tokenizer(["Question: 1 + 1", "x"], return_tensors="pt", padding=True)
    logits = loaded.model(**enc).logits
    assert logits.shape[:2] == enc["input_ids"].shape and torch.isfinite(logits).all()


def test_dtype_override(tiny_model_dir):
    loaded = load_model(tiny_model_dir("llama"), dtype="bfloat16")
    assert next(loaded.model.parameters()).dtype == torch.bfloat16


def test_device_and_dtype_choice():
    assert pick_device("cpu").type == "cpu"
    assert pick_dtype("auto", torch.device("cpu")) == torch.float32
    assert pick_dtype("auto", torch.device("cuda")) == torch.bfloat16
    with pytest.raises(ColaError, match="unknown dtype"):
        pick_dtype("int3", torch.device("cpu"))
    with pytest.raises(ColaError, match="unknown device"):
        pick_device("tpu-ish:?")
    if not torch.cuda.is_available():
        with pytest.raises(ColaError, match="no CUDA GPU"):
            pick_device("cuda")


def test_pad_token_added_safely(tiny_tokenizer):
    import copy

    tok = copy.deepcopy(tiny_tokenizer)
    tok.pad_token = None
    assert tok.pad_token_id is None
    ensure_pad_token(tok)
    assert tok.pad_token_id == tok.eos_token_id


def test_missing_model_is_one_clear_sentence():
    with pytest.raises(ColaError) as err:
        load_model("nobody/no-such-model-xyz")
    msg = str(err.value)
    assert "not a built-in model" in msg and "HF_HOME" in msg and "hf download" in msg
    assert "\n" not in msg


def test_directory_that_is_not_a_model(tmp_path):
    with pytest.raises(ColaError, match="holds no config.json"):
        load_model(str(tmp_path))


def test_fingerprint_tracks_weights_not_location(tiny_model_dir, tmp_path):
    src = Path(tiny_model_dir("llama"))
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in src.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    assert fingerprint_directory(src) == fingerprint_directory(copy)
    weights = load_file(copy / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 1
    save_file(weights, copy / "model.safetensors", metadata={"format": "pt"})
    assert fingerprint_directory(src) != fingerprint_directory(copy)


def test_module_fingerprint_changes_with_a_weight(tiny_model_dir):
    model = load_model(tiny_model_dir("llama")).model
    before = fingerprint_module(model)
    assert before == fingerprint_module(model)
    with torch.no_grad():
        next(model.parameters())[0, 0] += 1
    assert fingerprint_module(model) != before


def test_count_params_matches_the_model(tiny_model_dir):
    path = tiny_model_dir("llama")
    model = load_model(path).model
    assert count_params(path) == sum(p.numel() for p in model.parameters())


def test_registry_lists_cola_tiny():
    models = {m.name: m for m in list_models()}
    assert models["cola-tiny"].source == "builtin"
    assert models["cola-tiny"].params and models["cola-tiny"].params > 100_000
