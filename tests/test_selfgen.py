import pytest

from cola_core.corpora import load_records
from cola_core.corpora.selfgen import SelfGenConfig, generate_self_corpus, write_self_corpus
from cola_core.errors import ColaError
from cola_core.models.loading import load_model


def test_self_generated_corpus_is_filtered_and_loadable(tiny_model_dir, tmp_path):
    loaded = load_model(tiny_model_dir("llama"))
    cfg = SelfGenConfig(
        n=10, max_new_tokens=12, prefixes=("Question:", ""), drop_worst_perplexity=0.2, batch_size=4, seed=1
    )
    records = generate_self_corpus(loaded.model, loaded.tokenizer, cfg)
    assert len(records) == 8 and all(r.domain == "self" and "perplexity" in r.meta for r in records)
    assert records[0].text.startswith("Question:")
    again = generate_self_corpus(loaded.model, loaded.tokenizer, cfg)
    assert [r.text for r in again] == [r.text for r in records]  # seeded
    path = write_self_corpus(records, tmp_path / "self.jsonl")
    assert [r.text for r in load_records(str(path))] == [r.text for r in records]


def test_bad_sampling_settings(tiny_model_dir):
    loaded = load_model(tiny_model_dir("llama"))
    with pytest.raises(ColaError, match="temperature"):
        generate_self_corpus(loaded.model, loaded.tokenizer, SelfGenConfig(temperature=0))
