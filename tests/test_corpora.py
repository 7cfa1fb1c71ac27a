import re

import pytest

from cola_core.corpora import BUILTIN_CORPORA, SPLITS, list_corpora, load_records, split_of
from cola_core.corpora.facts_world import ROLES, world
from cola_core.errors import ColaError


@pytest.fixture(scope="module")
def all_splits():
    return {(c, s): load_records(c, s) for c in BUILTIN_CORPORA for s in SPLITS}


def test_list_corpora_names_and_splits():
    infos = {c.name: c for c in list_corpora()}
    assert set(infos) == {"prose", "code", "math", "facts", "random"}
    assert all(c.splits == ("train", "pool", "probe", "heldout") for c in infos.values())


@pytest.mark.parametrize("corpus", sorted(BUILTIN_CORPORA))
def test_every_split_has_wellformed_records(all_splits, corpus):
    for split in SPLITS:
        records = all_splits[corpus, split]
        assert len(records) >= (40 if split == "probe" else 100), (corpus, split, len(records))
        assert len({r.id for r in records}) == len(records)
        assert all(r.corpus == corpus and r.text.strip() for r in records)


@pytest.mark.parametrize("corpus", sorted(BUILTIN_CORPORA))
def test_heldout_shares_no_text_with_train_or_pool(all_splits, corpus):
    held = {r.text for r in all_splits[corpus, "heldout"]}
    seen = {r.text for s in ("train", "pool") for r in all_splits[corpus, s]}
    assert held and not held & seen


@pytest.mark.parametrize("corpus", ["prose", "code"])
def test_stdlib_splits_are_disjoint_by_module(all_splits, corpus):
    def modules(split):
        return {
            r.meta["source"].split(":")[0]
            for r in all_splits[corpus, split]
            if not r.meta["source"].startswith("topic:")
        }

    assert not modules("heldout") & modules("train")


def test_generation_is_deterministic():
    for corpus in BUILTIN_CORPORA:
        assert load_records(corpus, "pool", limit=50) == load_records(corpus, "pool", limit=50)


def test_fields_leave_builtin_corpora_alone_and_a_seed_samples_the_whole_split():
    plain = load_records("math", limit=10)
    assert load_records("math", limit=10, fields="question=q,answer=a") == plain
    whole = [r.id for r in load_records("math")]
    drawn = {s: [r.id for r in load_records("math", limit=10, seed=s)] for s in (3, 4)}
    assert drawn[3] != drawn[4] and drawn[3] == [r.id for r in load_records("math", limit=10, seed=3)]
    assert max(whole.index(i) for i in drawn[3] + drawn[4]) > 100  # not the head of the split
    assert all(r.meta["sampled"] == {"seed": 3, "of": len(whole)} for r in load_records("math", limit=10, seed=3))


def test_split_of_is_stable_and_roughly_80_10_2_8():
    keys = [f"k{i}" for i in range(10_000)]
    shares = {s: sum(split_of(k) == s for k in keys) / len(keys) for s in SPLITS}
    assert abs(shares["train"] - 0.8) < 0.02 and abs(shares["pool"] - 0.1) < 0.02
    assert abs(shares["probe"] - 0.02) < 0.01 and abs(shares["heldout"] - 0.08) < 0.02
    assert [split_of(k) for k in keys[:50]] == [split_of(k) for k in keys[:50]]


def test_math_reasoning_and_answers_are_correct(all_splits):
    for r in all_splits["math", "heldout"] + all_splits["math", "pool"][:500]:
        steps = re.findall(r"(\d+) ([-+*]) (\d+) = (-?\d+)", r.meta["reasoning"])
        assert steps
        for a, op, b, c in steps:
            assert eval(f"{a}{op}{b}") == int(c)  # plain arithmetic on generated digits
        assert int(steps[-1][3]) == r.meta["answer"]
        assert r.text.endswith(f"Answer: {r.meta['answer']}")
    assert {r.meta["tier"] for r in all_splits["math", "heldout"]} == {1, 2, 3}


def test_facts_questions_match_the_world(all_splits):
    facts = {(f.town, f.attribute): f.value for f in world()}
    held = all_splits["facts", "heldout"]
    assert len(held) == 5 * ROLES["eval"]
    for r in held:
        choices = r.meta["choices"]
        assert len(set(choices)) == 4
        answer = choices[r.meta["answer_index"]]
        assert r.text.endswith(f"Answer: {answer}")
        assert facts[r.meta["town"], r.meta["attribute"]] == answer
        assert r.meta["town"] in r.meta["cloze"]
        assert r.text == f"{r.meta['prompt']} {answer}"


def test_facts_train_states_every_fact(all_splits):
    text = " ".join(r.text for r in all_splits["facts", "train"][:3000])
    missing = [f for f in world() if f.town not in text or f.value not in text]
    assert not missing


def test_bad_corpus_and_split_and_limit():
    with pytest.raises(ColaError, match="unknown corpus"):
        load_records("no-such-corpus")
    with pytest.raises(ColaError, match="unknown split"):
        load_records("math", "validation")
    with pytest.raises(ColaError, match="positive"):
        load_records("math", limit=0)
