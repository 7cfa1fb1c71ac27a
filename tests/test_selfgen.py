import json

import pytest

from cola_core.corpora import load_records
from cola_core.corpora.selfgen import (
    SelfGenConfig,
    cached_self_corpus,
    draw_prompts,
    generate_self_corpus,
    prompt_ids,
    sample_self_corpus,
    write_self_corpus,
)
from cola_core.curation.processing import ProcessingConfig
from cola_core.errors import ColaError
from cola_core.models.loading import load_model


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return load_model(tiny_model_dir("llama"))


def _without_bos(tokenizer, eos: str | None = "<|eos|>"):
    """A Qwen2.5-style copy of a tokenizer: no BOS token and none added, EOS doubling as padding."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.post_processor = None  # the tiny tokenizer's template is what adds <|bos|>
    backend.no_padding()  # a saved tokenizer.json carries its pad token here
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=eos, pad_token=eos or "<|pad|>")


def test_self_generated_corpus_is_filtered_and_loadable(loaded, tmp_path):
    cfg = SelfGenConfig(
        n=10, max_new_tokens=12, prefixes=("Question:", ""), drop_worst_perplexity=0.2, batch_size=4, seed=1
    )
    records = generate_self_corpus(loaded.model, loaded.tokenizer, cfg)
    assert len(records) == 8 and all(r.domain == "self" and "perplexity" in r.meta for r in records)
    assert records[0].text.startswith("Question:")
    assert all(r.meta["prefix_source"] is None and r.text.startswith(r.meta["prompt"]) for r in records)
    again = generate_self_corpus(loaded.model, loaded.tokenizer, cfg)
    assert [r.text for r in again] == [r.text for r in records]  # seeded
    path = write_self_corpus(records, tmp_path / "self.jsonl")
    assert [r.text for r in load_records(str(path))] == [r.text for r in records]


def test_continuations_run_to_the_calibration_length():
    # corpora/ may not import curation/, so the default is written literally beside its source
    assert SelfGenConfig.max_new_tokens == ProcessingConfig.seqlen


def test_generation_starts_from_the_first_tokens_of_prefix_corpus_documents(loaded):
    cfg = SelfGenConfig(n=6, max_new_tokens=8, prefix_corpus="math", prefix_tokens=5, batch_size=4, seed=3)
    records = sample_self_corpus(loaded.model, loaded.tokenizer, cfg)
    pool = {r.id: r.text for r in load_records("math", "pool")}
    sources = [r.meta["prefix_source"] for r in records]
    assert len(records) == 6 and len(set(sources)) == 6  # each document once before any repeats
    for r in records:
        prompt = r.meta["prompt"]
        assert pool[r.meta["prefix_source"]].startswith(prompt)
        assert len(loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"]) == 5
        assert r.text.startswith(prompt) and r.text[len(prompt) :].strip()
    assert [p for p, _ in draw_prompts(loaded.tokenizer, cfg)] == [r.meta["prompt"] for r in records]
    other_seed = draw_prompts(loaded.tokenizer, SelfGenConfig(n=6, prefix_corpus="math", seed=4))
    assert [s for _, s in other_seed] != sources


def test_prompts_cut_on_a_character_boundary(loaded, tmp_path):
    (tmp_path / "accents.txt").write_text("héllo wörld, déjà vu")
    cfg = SelfGenConfig(n=4, prefix_corpus=str(tmp_path / "accents.txt"))
    for k in range(1, 12):
        (prompt, source), *_ = draw_prompts(loaded.tokenizer, SelfGenConfig(**{**cfg.__dict__, "prefix_tokens": k}))
        assert "héllo wörld, déjà vu".startswith(prompt) and "\ufffd" not in prompt and source is not None


def test_the_worst_fifth_by_perplexity_is_dropped(loaded):
    cfg = SelfGenConfig(n=10, max_new_tokens=8, batch_size=4)  # the default filter: 20%
    scored = sample_self_corpus(loaded.model, loaded.tokenizer, cfg)
    kept = generate_self_corpus(loaded.model, loaded.tokenizer, cfg)
    assert len(scored) == cfg.n and len(kept) == 8  # no empty continuation at this seed; 2 dropped
    kept_ids = {r.id for r in kept}
    dropped = [r.meta["perplexity"] for r in scored if r.id not in kept_ids]
    assert kept_ids <= {r.id for r in scored} and len(dropped) == 2
    assert max(r.meta["perplexity"] for r in kept) <= min(dropped)


def test_a_tokenizer_without_bos_token(loaded):
    tokenizer = _without_bos(loaded.tokenizer)
    assert tokenizer.bos_token_id is None and tokenizer("")["input_ids"] == []
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    assert prompt_ids(tokenizer, "") == [tokenizer.eos_token_id]  # no prompt, no BOS: start from EOS
    no_eos = _without_bos(loaded.tokenizer, eos=None)
    assert prompt_ids(no_eos, "") == no_eos("\n")["input_ids"]  # … or from a newline
    for cfg in (
        SelfGenConfig(n=6, max_new_tokens=8, prefix_corpus="facts", batch_size=4, seed=5),
        SelfGenConfig(n=6, max_new_tokens=8, prefixes=("",), batch_size=4, seed=5),
    ):
        records = generate_self_corpus(loaded.model, tokenizer, cfg)
        assert len(records) == round(cfg.n * 0.8)
        assert all(r.text.startswith(r.meta["prompt"]) and r.text.strip() for r in records)


def test_prompts_longer_than_the_context_are_refused(loaded):
    cfg = SelfGenConfig(n=1, prefixes=("word " * 400,))
    with pytest.raises(ColaError, match="no room in the model's context"):
        generate_self_corpus(loaded.model, loaded.tokenizer, cfg)


def test_the_cache_key_covers_the_prefix_settings(loaded, tmp_path, monkeypatch):
    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path))
    base = SelfGenConfig(n=2, max_new_tokens=4, drop_worst_perplexity=0.0)
    first = cached_self_corpus(loaded, base)
    assert cached_self_corpus(loaded, base) == first and first.is_relative_to(tmp_path)
    other_corpus = cached_self_corpus(loaded, SelfGenConfig(**{**base.__dict__, "prefix_corpus": "math"}))
    other_length = cached_self_corpus(loaded, SelfGenConfig(**{**base.__dict__, "prefix_tokens": 3}))
    assert len({first, other_corpus, other_length}) == 3


def test_bad_sampling_settings(loaded):
    with pytest.raises(ColaError, match="temperature"):
        generate_self_corpus(loaded.model, loaded.tokenizer, SelfGenConfig(temperature=0))
    with pytest.raises(ColaError, match="prefix_tokens"):
        generate_self_corpus(loaded.model, loaded.tokenizer, SelfGenConfig(prefix_tokens=0))


def test_cli_prompts_from_a_prefix_corpus(tiny_model_dir, tmp_path, capsys):
    from cola_core.cli.main import main

    out = tmp_path / "s.jsonl"
    argv = ["self-generate", "--model", tiny_model_dir("llama"), "--n", "6", "--max-new-tokens", "8"]
    assert main([*argv, "--prefix-corpus", "math", "--prefix-tokens", "4", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 5  # 6 sampled, the worst 20% dropped
    records = load_records(str(out))
    assert len(records) == 5 and all(
        json.loads(line)["meta"]["prefix_source"].startswith("math/") for line in out.open()
    )


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Reasoning: 4 * 8 = 32. 32 + 0 = 32.\nAnswer: 32", "32"),
        ("so 1,200 + 34 = 1,234. The answer is 1,234.", "1234"),
        ("She pays $5.50 in all", "5.5"),
        ("no number here", None),
        ("Answer: 3 then 7 more", "3"),
        ("Answer: **42** because 6 x 7", "42"),
        ("**Answer:** 1234567", "1234567"),
        ("Answer: 12.50", "12.5"),
    ],
)
def test_the_final_answer_of_a_trace(text, answer):
    from cola_core.corpora.selfgen import final_answer

    assert final_answer(text) == answer


def test_answers_compare_exactly_and_stop_at_an_invented_question():
    from cola_core.corpora.selfgen import _number, final_answer, own_answer

    assert _number("1234567") != _number("1234568") and _number("1,200") == _number("1200.0")
    trace = "Reasoning: 2 + 3 = 5.\nAnswer: 5\n\nQuestion: what is 4 + 5?\nAnswer: 9"
    assert own_answer(trace) == "Reasoning: 2 + 3 = 5.\nAnswer: 5" and final_answer(own_answer(trace)) == "5"


def test_on_policy_traces_keep_only_right_answers(tmp_path, capsys):
    """cola-tiny answers its own math questions; only traces whose final answer is the gold one stay."""
    from cola_core.cli.main import main

    out = tmp_path / "traces.jsonl"
    argv = ["self-generate", "--model", "cola-tiny", "--prompts", "math", "--n", "24", "--max-new-tokens", "40"]
    assert main([*argv, "--drop-worst-ppl", "0", "--out", str(out), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert payload["questions"] == 24 and payload["right"] == payload["n"] == len(rows) > 0
    assert payload["chat_template"] is False  # cola-tiny's tokenizer has none
    for row in rows:
        meta = row["meta"]
        assert meta["correct"] is True and meta["predicted_answer"] == meta["gold_answer"]
        assert row["text"].startswith(f"Question: {meta['task_question']}\n")


def test_questions_from_a_file_through_a_chat_template(tiny_tokenizer, tmp_path):
    """A GSM8K-shaped file; a random model with a ChatML template answers (wrongly, but it answers):
    questions alone keep every non-empty trace, and each was asked as a user turn."""
    from transformers import AutoModelForCausalLM

    from tests.conftest import make_config
    from tests.test_chat import chat_tokenizer

    tok = chat_tokenizer(tiny_tokenizer, "chatml")
    model = AutoModelForCausalLM.from_config(make_config("llama", len(tok))).eval()
    path = tmp_path / "gsm.jsonl"
    rows = [
        {"q": f"Tom has {i} pens and buys 2. How many now?", "a": f"{i} + 2 = {i + 2}\n#### {i + 2}"} for i in range(6)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = SelfGenConfig(n=6, max_new_tokens=8, prompts=str(path), prompt_fields="question=q", batch_size=3)
    records = sample_self_corpus(model, tok, cfg)
    assert records and all(r.meta["prompt"].startswith("<|im_start|>user\nTom has") for r in records)
    assert all(r.meta["gold_answer"] is None and r.meta["correct"] is None for r in records)
    graded = SelfGenConfig(n=6, max_new_tokens=8, prompts=str(path), prompt_fields="question=q,answer=a", batch_size=3)
    try:
        kept = sample_self_corpus(model, tok, graded)
    except ColaError as exc:  # a random model rarely hits the right number
        assert "answered none of 6 questions right" in str(exc)
    else:
        assert all(r.meta["correct"] and r.meta["gold_answer"] == r.meta["predicted_answer"] for r in kept)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--fields", "question=q"], "give --prompts FILE too"),
        (["--prompts", "math", "--prefix", "Once"], "exclude each other"),
        (["--prompts", "math", "--fields", "prompt=q"], "use question=COL[,answer=COL]"),
    ],
)
def test_self_generate_refuses_conflicting_prompt_flags(extra, fragment, tmp_path, capsys):
    from cola_core.cli.main import main

    assert main(["self-generate", "--model", "cola-tiny", *extra, "--out", str(tmp_path / "s.jsonl")]) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err and not (tmp_path / "s.jsonl").exists()
