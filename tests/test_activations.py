import numpy as np
import pytest
import torch

from cola_core.curation.activations import ActivationConfig, extract_activations
from cola_core.errors import ColaError
from cola_core.models.architecture import decoder_layers
from cola_core.models.batching import length_batches
from cola_core.models.loading import load_model
from tests.conftest import FAMILIES

TEXTS = [
    "Question: Ana has 3 apples.",
    "The town of Lemal lies in Quenor. It exports tea and salt.",
    "x",
    "def f():\n    return 1",
]


@pytest.fixture(scope="module")
def llama(tiny_model_dir):
    loaded = load_model(tiny_model_dir("llama"))
    return loaded.model, loaded.tokenizer


def _alone(model, tok, text, layer, pooling):
    """Reference: one sample, no padding, a full forward, the layer's output caught by a hook."""
    seen = []
    handle = decoder_layers(model)[layer].register_forward_hook(lambda m, a, out: seen.append(out))
    try:
        model(**tok([text], return_tensors="pt"))
    finally:
        handle.remove()
    hs = (seen[0][0] if isinstance(seen[0], tuple) else seen[0])[0]
    return hs.mean(0) if pooling == "mean" else hs[-1]


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_padding_never_leaks_into_pooled_vectors(llama, pooling):
    model, tok = llama
    acts = extract_activations(model, tok, TEXTS, ActivationConfig(pooling=pooling, batch_tokens=10_000))
    for i, text in enumerate(TEXTS):
        for layer in (0, 1):
            ref = _alone(model, tok, text, layer, pooling).detach().numpy()
            np.testing.assert_allclose(acts[f"layer{layer}"][i], ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_with_mlp_activations(tiny_model_dir, family):
    loaded = load_model(tiny_model_dir(family))
    acts = extract_activations(loaded.model, loaded.tokenizer, TEXTS, ActivationConfig(include_mlp=True))
    n_layers = len(decoder_layers(loaded.model))
    assert sorted(acts) == sorted([f"layer{i}" for i in range(n_layers)] + [f"mlp{i}" for i in range(n_layers)])
    assert all(a.shape[0] == len(TEXTS) and np.isfinite(a).all() for a in acts.values())
    assert acts["mlp0"].shape[1] != acts["layer0"].shape[1] or family == "gpt2"  # intermediate width


def test_forward_stops_after_the_deepest_layer(llama):
    model, tok = llama
    ran = []
    handle = decoder_layers(model)[1].register_forward_hook(lambda *a: ran.append(1))
    try:
        acts = extract_activations(model, tok, TEXTS, ActivationConfig(layers=(0,)))
    finally:
        handle.remove()
    assert list(acts) == ["layer0"] and not ran


def test_negative_and_bad_layers(llama):
    model, tok = llama
    assert list(extract_activations(model, tok, TEXTS[:1], ActivationConfig(layers=(-1,)))) == ["layer1"]
    with pytest.raises(ColaError, match="layer 7 does not exist"):
        extract_activations(model, tok, TEXTS, ActivationConfig(layers=(7,)))
    with pytest.raises(ColaError, match="sequence length"):
        extract_activations(model, tok, TEXTS, ActivationConfig(seqlen=0))


def test_buckets_cover_all_and_respect_budget():
    lengths = [5, 100, 7, 50, 3, 100, 9]
    batches = length_batches(lengths, batch_tokens=200)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) * max(lengths[i] for i in b) <= 200 for b in batches)
    # the cuts cost least (padded tokens plus 200 / 16 per batch): filling each batch to the budget
    # would pad the 50 to 100 beside a 100 ([4, 0, 2, 6], [3, 1], [5]: 336 tokens against 286)
    assert batches == [[4, 0, 2, 6], [3], [1, 5]]
    assert length_batches([300, 10], batch_tokens=200) == [[1], [0]]  # longer than the budget: alone


def test_nan_model_is_a_clear_error(llama):
    model, tok = llama
    with torch.no_grad():
        saved = model.get_input_embeddings().weight.clone()
        model.get_input_embeddings().weight.fill_(float("nan"))
    try:
        with pytest.raises(ColaError, match="NaN"):
            extract_activations(model, tok, TEXTS)
    finally:
        with torch.no_grad():
            model.get_input_embeddings().weight.copy_(saved)
