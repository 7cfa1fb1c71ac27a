"""Capability floors of the shipped cola-tiny weights (issue: foundation)."""

import pytest

from cola_core.corpora import load_records
from cola_core.evaluation import tasks as cap
from cola_core.models.loading import BUILTIN_MODELS, load_model

TINY = BUILTIN_MODELS["cola-tiny"]


@pytest.fixture(scope="module")
def tiny():
    loaded = load_model("cola-tiny")
    return loaded.model, loaded.tokenizer


def test_shipped_files_are_small_and_plain():
    files = {p.name: p.stat().st_size for p in TINY.iterdir()}
    assert "model.safetensors" in files and "MODEL_CARD.md" in files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    assert sum(files.values()) <= 25 * 2**20


def test_plain_transformers_loads_it():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(TINY)
    tok = AutoTokenizer.from_pretrained(TINY)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert tok("hi")["input_ids"][0] == tok.bos_token_id


@pytest.mark.parametrize("domain", ["prose", "code", "math", "facts"])
def test_perplexity_well_below_unigram(tiny, domain):
    model, tok = tiny
    held = [r.text for r in load_records(domain, "heldout", limit=100)]
    train = [r.text for r in load_records(domain, "train", limit=3000)]
    ppl = cap.perplexity(model, tok, held)
    unigram = cap.unigram_perplexity(tok, train, held)
    assert ppl < 0.5 * unigram, (ppl, unigram)


def test_math_tier1_exact_match_at_least_30_percent(tiny):
    model, tok = tiny
    tier1 = [r for r in load_records("math", "heldout", limit=600) if r.meta["tier"] == 1]
    correct, n = cap.math_exact_match(model, tok, tier1)[1]
    assert n == 200 and correct / n >= 0.30, (correct, n)


def test_facts_accuracy_well_above_chance(tiny):
    model, tok = tiny
    correct, n = cap.facts_accuracy(model, tok, load_records("facts", "heldout"))
    assert correct / n >= 0.5, (correct, n)  # chance is 0.25


def test_model_card_reports_the_scores():
    card = (TINY / "MODEL_CARD.md").read_text()
    for needle in ("LlamaForCausalLM", "Parameters", "Wall time", "unigram", "exact match", "Facts"):
        assert needle in card
