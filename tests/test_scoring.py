"""Scoring without full-vocabulary tensors (issue #18): log-likelihoods from the final hidden states
in chunks of positions equal the full-logits computation, on several families and real-size
vocabularies, and a scoring call's memory does not grow with batch × length × vocabulary."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

from cola_core.models import scoring
from cola_core.models.loading import load_model
from tests.conftest import FAMILIES, make_config


def _reference(model, ids, mask):
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1].float()
    logp = logits.log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]
    return logp, logits.argmax(-1) == ids[:, 1:]


@pytest.mark.parametrize("family", FAMILIES)
def test_chunked_scores_equal_full_logits(family, tiny_model_dir, monkeypatch):
    loaded = load_model(tiny_model_dir(family), device="cpu")
    model, tok = loaded.model, loaded.tokenizer
    assert scoring._head_path_ok(model), f"{family}: the head path should reproduce the logits"
    texts = ["Question: Ann has 3 apples. Answer: 3", "The town of Lemal lies in Quenor.", "def f(x):\n    return x"]
    enc = tok(texts, return_tensors="pt", padding=True)
    ref_logp, ref_hits = _reference(model, enc["input_ids"], enc["attention_mask"])
    monkeypatch.setattr(scoring, "LOGIT_BUDGET", 3 * 2 * len(tok))  # two positions per chunk
    logp, hits = scoring.target_logprobs(model, enc["input_ids"], enc["attention_mask"], argmax=True)
    mask = enc["attention_mask"][:, 1:].bool()
    torch.testing.assert_close(logp[mask], ref_logp[mask], rtol=1e-4, atol=1e-4)
    assert torch.equal(hits[mask], ref_hits[mask])
    correct: list[int] = []
    sums, counts = scoring.per_text_nll(model, tok, texts, seqlen=64, correct=correct)
    expect = (-ref_logp * mask).sum(1)
    torch.testing.assert_close(torch.tensor(sums), expect, rtol=1e-4, atol=1e-3)
    assert counts == mask.sum(1).tolist() and correct == (ref_hits & mask).sum(1).tolist()
    conts = scoring.continuation_logprobs(model, tok, ["Question: 2 plus 2?", "The town"], [" Answer: 4", " of Lemal"])
    assert all(c < 0 for c in conts)


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2"])
@pytest.mark.parametrize("vocab", [32_000, 151_936])
def test_chunked_scores_on_real_size_vocabularies(family, vocab, monkeypatch):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(make_config(family, vocab)).eval()
    ids = torch.randint(3, vocab, (2, 24))
    mask = torch.ones_like(ids)
    mask[1, 18:] = 0
    ref_logp, _ = _reference(model, ids, mask)
    monkeypatch.setattr(scoring, "LOGIT_BUDGET", 2 * 5 * vocab)
    logp, _ = scoring.target_logprobs(model, ids, mask)
    valid = mask[:, 1:].bool()
    torch.testing.assert_close(logp[valid], ref_logp[valid], rtol=1e-4, atol=1e-4)


def test_scoring_memory_does_not_grow_with_the_vocabulary():
    """8 × 256 tokens over a 151,936-token vocabulary: full fp32 logits would take 1.24 GB (plus their
    log-softmax); the chunked call must stay far below that, measured as the process's peak RSS."""
    script = textwrap.dedent(
        """
        import resource, torch
        from transformers import AutoModelForCausalLM
        from cola_core.models.scoring import target_logprobs
        from tests.conftest import make_config
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(make_config("llama", 151_936)).eval()
        ids = torch.randint(3, 151_936, (8, 256))
        target_logprobs(model, ids[:1, :8], torch.ones_like(ids[:1, :8]))  # warm up: allocator, head check
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        logp, _ = target_logprobs(model, ids, torch.ones_like(ids))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert logp.shape == (8, 255)
        print((after - before) * 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    grown = int(out.stdout.split()[-1])
    full_logits = 8 * 255 * 151_936 * 4
    assert grown < 0.25 * full_logits, f"peak RSS grew {grown / 1e6:.0f} MB during scoring"
