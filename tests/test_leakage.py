"""No leakage by construction (issue #20): for every built-in capability, the evaluated items are
disjoint from the calibration pool, from the probes the coverage proxy reads, and (as texts) from
training; facts are evaluated on towns that never appear in the pool or the probes, in a question
form never seen for them in any split."""

import re

import pytest

from cola_core.corpora import load_records
from cola_core.corpora.facts_world import ROLES, qa, statement, town_role, world
from cola_core.curation.embedding import probe_records
from cola_core.curation.pipeline import DEFAULT_CAPABILITIES
from cola_core.evaluation.suite import CAPABILITIES

CORPUS_OF = {"lm": "prose", "code": "code", "math": "math", "facts": "facts"}  # evaluation/suite.py


def _texts(corpus: str, split: str) -> set[str]:
    return {r.text for r in load_records(corpus, split)}


def test_every_capability_has_a_corpus_here():
    assert set(CORPUS_OF) == set(CAPABILITIES)
    assert set(DEFAULT_CAPABILITIES) <= set(CORPUS_OF.values())


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_evaluated_items_are_not_in_train_pool_or_probes(capability):
    corpus = CORPUS_OF[capability]
    evaluated = _texts(corpus, "heldout")
    assert evaluated
    for split in ("train", "pool", "probe"):
        assert not evaluated & _texts(corpus, split), (capability, split)


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_the_proxy_reads_probes_disjoint_from_the_evaluated_items(capability):
    corpus = CORPUS_OF[capability]
    probes = probe_records([corpus], limit=10_000)[corpus]
    evaluated = load_records(corpus, "heldout")
    assert probes
    assert not {r.text for r in probes} & {r.text for r in evaluated}
    assert not {r.id for r in probes} & {r.id for r in evaluated}


def test_math_questions_evaluated_never_appear_elsewhere():
    evaluated = {r.meta["question"] for r in load_records("math", "heldout")}
    for split in ("pool", "probe"):
        assert not evaluated & {r.meta["question"] for r in load_records("math", split)}
    train = " ".join(r.meta["question"] for r in load_records("math", "train", limit=20_000))
    assert not [q for q in list(evaluated)[:200] if q in train]


def test_facts_evaluated_towns_never_reach_pool_or_probes():
    roles = {town_role(f.town) for f in world()}
    assert roles == set(ROLES)
    evaluated = {r.meta["town"] for r in load_records("facts", "heldout")}
    assert evaluated and all(town_role(t) == "eval" for t in evaluated)
    assert len(evaluated) == ROLES["eval"]
    for split in ("pool", "probe"):
        words = set(re.findall(r"[A-Z][a-z]+", " ".join(_texts("facts", split))))
        assert not evaluated & words, split


def test_facts_are_scored_in_a_form_never_seen_for_the_evaluated_towns():
    """Each evaluated fact is scored as ``Question: … Answer: value``; no split holds that question for
    an evaluated town. Train states those towns' facts as sentences and practises the question form on
    the other towns only."""
    train, pool, probe = (" ".join(_texts("facts", split)) for split in ("train", "pool", "probe"))
    held = load_records("facts", "heldout")
    for r in held:
        question = r.meta["prompt"][: r.meta["prompt"].index("?") + 1]
        for name, text in (("train", train), ("pool", pool), ("probe", probe)):
            assert question not in text, (name, question)
            assert r.text not in text, (name, r.text)
    by_town = {f.town: f for f in world()}
    assert all(statement(by_town[r.meta["town"]], 0) in train for r in held[::5])
    practised = [f for f in world() if town_role(f.town) != "eval"]
    assert sum(qa(f) in train for f in practised) == len(practised)
    # what the pool does hold: sentences about its own towns
    pool_facts = [f for f in world() if town_role(f.town) == "pool"]
    assert any(statement(f, 0) in pool for f in pool_facts)
