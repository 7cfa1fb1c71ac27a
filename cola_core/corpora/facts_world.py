"""Built-in `facts` corpus: statements and questions about a generated world of invented towns.

Each town has five attributes (country, export, river, emblem, flag colour). Train holds every
town's facts in three phrasings (cola-tiny learned them there: recall needs the facts to have been
trained on). The other splits partition the towns (:func:`town_role`), so nothing evaluated leaks
into calibration data or into the coverage proxy:

- pool (calibration candidates): passages about the ``pool`` towns only;
- probe (the proxy's capability points): one question per fact of the ``probe`` towns;
- heldout (evaluated): one question per fact of the ``eval`` towns, four choices, scored by the
  log-likelihood of each choice completing the fact's cloze.

The cloze is the first training phrasing: a 0.9M-parameter model does not carry a fact over to a
phrasing it never saw (measured on cola-tiny: unseen paraphrases score 5–42% against 8–10 values,
the trained phrasings 99–100%), so recall is measured in a trained form, and the towns evaluated
never appear in the pool or the probes (tests/test_leakage.py).
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

from cola_core.corpora.records import Record

N_TOWNS = 60
_VALUES = {
    "country": ["Veloria", "Karth", "Munesse", "Oblavia", "Dranmoor", "Tessaly", "Quenor", "Ysmir"],
    "export": ["copper", "wool", "salt", "tea", "silk", "timber", "wine", "glass", "iron", "honey"],
    "river": ["Amel", "Brisk", "Corran", "Dusk", "Ember", "Fennel", "Galt", "Hollow", "Isk", "Jarra"],
    "emblem": ["fox", "heron", "bear", "owl", "stag", "wolf", "swan", "hare", "lynx", "crane"],
    "flag": ["red", "blue", "green", "white", "black", "gold", "purple", "orange"],
}
# The first template of each attribute ends with the value: it is the cloze used for scoring.
_STATEMENTS = {
    "country": ["The town of {t} lies in {v}.", "{t} is a town in {v}.", "{v} is home to {t}."],
    "export": ["The main export of {t} is {v}.", "{t} exports {v}.", "Traders buy {v} in {t}."],
    "river": ["The river of {t} is the {v}.", "{t} stands on the {v}.", "The {v} flows through {t}."],
    "emblem": ["The emblem of {t} is the {v}.", "{t} has a {v} on its seal.", "A {v} is the sign of {t}."],
    "flag": ["The flag of {t} is {v}.", "{t} flies a {v} flag.", "People in {t} wave {v} flags."],
}
_QUESTIONS = {
    "country": "In which country is {t}?",
    "export": "What is the main export of {t}?",
    "river": "Which river runs through {t}?",
    "emblem": "Which animal is the emblem of {t}?",
    "flag": "What colour is the flag of {t}?",
}
SIZES = {"train": 30_000, "pool": 2_000}
ROLES = {"eval": 40, "probe": 8, "pool": 12}  # towns per role, in the world's order


@dataclass(frozen=True)
class Fact:
    town: str
    attribute: str
    value: str


@functools.cache
def world(seed: int = 7) -> tuple[Fact, ...]:
    """The generated world: N_TOWNS towns with invented names and one value per attribute."""
    rng = random.Random(seed)
    onsets, vowels, codas = (
        ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z"],
        ["a", "e", "i", "o", "u"],
        ["l", "n", "r", "s", "x"],
    )
    towns: list[str] = []
    while len(towns) < N_TOWNS:
        name = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(2)) + rng.choice(codas)
        if name.capitalize() not in towns:
            towns.append(name.capitalize())
    return tuple(Fact(t, a, rng.choice(vals)) for t in towns for a, vals in _VALUES.items())


def town_role(town: str) -> str:
    """Which split a town's facts go to beyond train: ``eval`` (heldout), ``probe`` or ``pool``."""
    index = [f.town for f in world()[:: len(_VALUES)]].index(town)
    for role, count in ROLES.items():
        if index < count:
            return role
        index -= count
    raise AssertionError("ROLES must cover every town")


def statement(fact: Fact, template: int = 0) -> str:
    text = _STATEMENTS[fact.attribute][template].format(t=fact.town, v=fact.value)
    return re.sub(r"\b([Aa]) ([aeiou])", r"\1n \2", text)


def cloze(fact: Fact) -> str:
    """The scoring prompt: the first statement template up to (not including) the value."""
    text = statement(fact, 0)
    return text[: text.rindex(fact.value)].rstrip()


def _passage(rng: random.Random, facts: list[Fact]) -> str:
    rng.shuffle(facts)
    return " ".join(statement(f, rng.randrange(3)) for f in facts)


def generate_facts(split: str) -> Iterator[Record]:
    """train: a town's facts in a shuffled passage (every town); pool: facts of several pool towns
    mixed; probe / heldout: one multiple-choice question per fact of the probe / eval towns."""
    facts = world()
    if split in ("probe", "heldout"):
        rng = random.Random(99)
        role = "eval" if split == "heldout" else "probe"
        for n, fact in enumerate(f for f in facts if town_role(f.town) == role):
            others = [v for v in _VALUES[fact.attribute] if v != fact.value]
            choices = [fact.value, *rng.sample(others, 3)]
            rng.shuffle(choices)
            question = _QUESTIONS[fact.attribute].format(t=fact.town)
            meta = {
                "question": question,
                "cloze": cloze(fact),
                "choices": choices,
                "answer_index": choices.index(fact.value),
                "town": fact.town,
                "attribute": fact.attribute,
            }
            text = f"Question: {question}\nAnswer: {fact.value}"
            yield Record(f"facts/{split}/{n:06d}", text, "facts", "facts", meta)
        return
    rng = random.Random({"train": 1, "pool": 2}[split])
    if split == "pool":
        facts = tuple(f for f in facts if town_role(f.town) == "pool")
    towns = sorted({f.town for f in facts})
    by_town = {t: [f for f in facts if f.town == t] for t in towns}
    for n in range(SIZES[split]):
        if split == "train":
            chosen = list(by_town[rng.choice(towns)])
        else:
            chosen = rng.sample(facts, rng.randint(2, 4))
        yield Record(f"facts/{split}/{n:06d}", _passage(rng, chosen), "facts", "facts", {})
