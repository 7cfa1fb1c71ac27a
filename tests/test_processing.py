import pytest

from cola_core.corpora import Record, load_records
from cola_core.corpora.quality import drop_worst
from cola_core.curation.processing import ProcessingConfig, apply_format, drop_duplicates, process_records
from cola_core.errors import ColaError
from cola_core.models.loading import load_model


def _rec(i, text, corpus="c"):
    return Record(f"c/{i}", text, corpus, "d", {})


def test_truncate_records_token_counts_and_drops_short(tiny_tokenizer):
    records = [_rec(0, "word " * 200), _rec(1, "hi"), _rec(2, "a short but fine sentence here")]
    out = process_records(records, tiny_tokenizer, ProcessingConfig(seqlen=20, min_tokens=4))
    assert [r.id for r in out] == ["c/0", "c/2"]
    assert out[0].meta["n_tokens"] == 20
    assert len(tiny_tokenizer(out[0].text, add_special_tokens=False)["input_ids"]) <= 21


def test_pack_fills_windows(tiny_tokenizer):
    records = load_records("math", "pool", limit=40)
    out = process_records(records, tiny_tokenizer, ProcessingConfig(seqlen=64, mode="pack", dedupe=False))
    assert all(r.meta["n_tokens"] == 64 for r in out[:-1]) and all(r.meta["packed"] for r in out)
    total = sum(len(tiny_tokenizer(r.text, add_special_tokens=False)["input_ids"]) + 1 for r in records)
    assert sum(r.meta["n_tokens"] for r in out) == total


def test_reasoning_formats():
    r = load_records("math", "pool", limit=1)[0]
    plain = apply_format(r, "plain")
    assert (
        "Reasoning:" not in plain.text
        and plain.text.startswith("Question:")
        and plain.text.endswith(f"Answer: {r.meta['answer']}")
    )
    explicit = apply_format(plain, "explicit")
    assert "Reasoning:" in explicit.text and explicit.text == r.text
    prose = Record("p", "just prose", "p", "p", {})
    assert apply_format(prose, "explicit") is prose


def test_exact_and_near_duplicates():
    base = "The quick brown fox jumps over the lazy dog near the quiet river bank today."
    records = [
        _rec(0, base),
        _rec(1, "  the QUICK brown fox jumps over the lazy dog near the quiet river bank today. "),
        _rec(2, base.replace("today", "today!")),
        _rec(3, "Completely different text about arithmetic word problems."),
    ]
    assert [r.id for r in drop_duplicates(records, near_jaccard=0.8)] == ["c/0", "c/3"]
    assert [r.id for r in drop_duplicates(records, near_jaccard=1.0)] == ["c/0", "c/2", "c/3"]


def test_perplexity_filter_drops_the_worst(tiny_model_dir):
    loaded = load_model(tiny_model_dir("llama"))
    records = [r for c in ("math", "random") for r in load_records(c, "pool", limit=10)]
    out = process_records(
        records, loaded.tokenizer, ProcessingConfig(seqlen=64, drop_worst_perplexity=0.25), loaded.model
    )
    assert len(out) == 15 and all("perplexity" in r.meta for r in out)
    kept = max(r.meta["perplexity"] for r in out)
    scored = drop_worst(out, 0.0)
    assert kept == max(r.meta["perplexity"] for r in scored)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (ProcessingConfig(seqlen=0), "must be positive"),
        (ProcessingConfig(mode="squash"), "unknown length mode"),
        (ProcessingConfig(drop_worst_perplexity=1.0), r"\[0, 1\)"),
        (ProcessingConfig(drop_worst_perplexity=0.5), "needs a model"),
        (ProcessingConfig(min_tokens=10_000), "no samples left"),
    ],
)
def test_bad_processing_settings(tiny_tokenizer, cfg, message):
    with pytest.raises(ColaError, match=message):
        process_records(load_records("math", "pool", limit=5), tiny_tokenizer, cfg)
