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


def test_token_budget_batches_score_like_one_batch(tiny_model_dir):
    """Sorting by length and cutting by token budget changes neither the scores nor their order, and
    no forward holds more padded tokens than the budget (one long text alone may exceed it)."""
    loaded = load_model(tiny_model_dir("llama"), device="cpu")
    model, tok = loaded.model, loaded.tokenizer
    texts = ["a b c d e f g h i j k l", "short", "The town of Lemal lies in Quenor.", "x = 1", "one two three four"]
    widths: list[int] = []
    scoring.target_logprobs(model, *tok(["warm"], return_tensors="pt").values())  # the head check, once
    handle = model.base_model.register_forward_pre_hook(
        lambda _m, _a, kw: widths.append(kw["input_ids"].numel()), with_kwargs=True
    )
    try:
        tight_right: list[int] = []
        tight = scoring.per_text_nll(model, tok, texts, seqlen=32, batch_tokens=12, correct=tight_right)
        longest = max(len(r) for r in tok(texts)["input_ids"])
        assert widths and all(w <= max(12, longest) for w in widths) and len(widths) > 2
        widths.clear()
        loose_right: list[int] = []
        loose = scoring.per_text_nll(model, tok, texts, seqlen=32, batch_tokens=10_000, correct=loose_right)
        assert len(widths) == 1
    finally:
        handle.remove()
    torch.testing.assert_close(torch.tensor(tight[0]), torch.tensor(loose[0]), rtol=1e-4, atol=1e-3)
    assert tight[1] == loose[1] and tight_right == loose_right
    singles = [scoring.per_text_nll(model, tok, [t], seqlen=32)[0][0] for t in texts]
    torch.testing.assert_close(torch.tensor(loose[0]), torch.tensor(singles), rtol=1e-4, atol=1e-3)
    prompts, conts = ["Question: 2 plus 2?", "The town", "x"], [" Answer: 4", " of Lemal lies", " = 1"]
    a = scoring.continuation_logprobs(model, tok, prompts, conts, batch_tokens=8)
    b = scoring.continuation_logprobs(model, tok, prompts, conts, batch_tokens=10_000)
    torch.testing.assert_close(torch.tensor(a), torch.tensor(b), rtol=1e-4, atol=1e-3)
    g1 = scoring.generate(model, tok, ["Question: 1 plus 1?\n", "The", "def f"], 6, (), batch_tokens=8)
    g2 = scoring.generate(model, tok, ["Question: 1 plus 1?\n", "The", "def f"], 6, (), batch_tokens=10_000)
    assert g1 == g2
