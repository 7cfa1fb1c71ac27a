"""Built-in `facts` corpus: statements and questions about a generated world of invented towns.

Each town has five attributes (country, export, river, emblem, flag colour). Train holds every
town's facts as statements in three phrasings (recall needs the facts to have been trained on) and,
for every town *not* evaluated, the same facts as questions with answers, so the model learns the
question form without ever seeing it for an evaluated town. The splits partition the towns
(:func:`town_role`), so nothing evaluated leaks into calibration data or into the coverage proxy:

- train: statement passages about every town; question-and-answer lists about the ``probe``,
  ``pool`` and ``train`` towns (never the ``eval`` towns);
- pool (calibration candidates): statement passages about the ``pool`` towns only;
- probe (the proxy's capability points): one question per fact of the ``probe`` towns;
- heldout (evaluated): one question per fact of the ``eval`` towns, four choices, scored by the
  log-likelihood of each choice after ``Question: … Answer:``.

So an evaluated fact is scored in a form never seen verbatim in any split: the model must carry a
fact it read as a statement over to a question about it (the knowledge-extraction setting of
Allen-Zhu & Li, "Physics of Language Models: Part 3.1", where question practice on some people
transfers to the rest). tests/test_leakage.py checks all of this.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

from cola_core.corpora.records import Record, qa_prompt

N_TOWNS = 120
_VALUES = {
    "country": ["Veloria", "Karth", "Munesse", "Oblavia", "Dranmoor", "Tessaly", "Quenor", "Ysmir"],
    "export": ["copper", "wool", "salt", "tea", "silk", "timber", "wine", "glass", "iron", "honey"],
    "river": ["Amel", "Brisk", "Corran", "Dusk", "Ember", "Fennel", "Galt", "Hollow", "Isk", "Jarra"],
    "emblem": ["fox", "heron", "bear", "owl", "stag", "wolf", "swan", "hare", "lynx", "crane"],
    "flag": ["red", "blue", "green", "white", "black", "gold", "purple", "orange"],
}
# The first template of each attribute ends with the value: its cloze is the fact's trained form.
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
SIZES = {"train": 40_000, "pool": 2_000}
ROLES = {"eval": 40, "probe": 8, "pool": 12, "train": 60}  # towns per role, in the world's order
QA_SHARE = 0.3  # of train records: question-and-answer lists (non-evaluated towns only)


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
    """Where a town's facts go beyond train's statements: ``eval`` (heldout), ``probe``, ``pool``, or
    ``train`` (train only, where it adds question practice)."""
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
    """The first statement template up to (not including) the value: the trained form of a fact."""
    text = statement(fact, 0)
    return text[: text.rindex(fact.value)].rstrip()


def question_prompt(fact: Fact) -> str:
    """The scoring prompt: the fact's question, up to the answer's leading space."""
    return qa_prompt(_QUESTIONS[fact.attribute].format(t=fact.town))


def qa(fact: Fact) -> str:
    """The fact as a question with its answer: a held-out or probe item, or train's question practice."""
    return f"{question_prompt(fact)} {fact.value}"


def _passage(rng: random.Random, facts: list[Fact]) -> str:
    rng.shuffle(facts)
    return " ".join(statement(f, rng.randrange(3)) for f in facts)


def generate_facts(split: str) -> Iterator[Record]:
    """train: a town's facts in a shuffled passage (every town), or as a shuffled question-and-answer
    list (non-evaluated towns, a ``QA_SHARE`` of records); pool: facts of several pool towns mixed;
    probe / heldout: one multiple-choice question per fact of the probe / eval towns."""
    facts = world()
    if split in ("probe", "heldout"):
        rng = random.Random(99)
        role = "eval" if split == "heldout" else "probe"
        for n, fact in enumerate(f for f in facts if town_role(f.town) == role):
            others = [v for v in _VALUES[fact.attribute] if v != fact.value]
            choices = [fact.value, *rng.sample(others, 3)]
            rng.shuffle(choices)
            meta = {
                "question": _QUESTIONS[fact.attribute].format(t=fact.town),
                "prompt": question_prompt(fact),
                "cloze": cloze(fact),
                "choices": choices,
                "answer_index": choices.index(fact.value),
                "town": fact.town,
                "attribute": fact.attribute,
            }
            yield Record(f"facts/{split}/{n:06d}", qa(fact), "facts", "facts", meta)
        return
    rng = random.Random({"train": 1, "pool": 2}[split])
    if split == "pool":
        facts = tuple(f for f in facts if town_role(f.town) == "pool")
    towns = sorted({f.town for f in facts})
    practice = [t for t in towns if town_role(t) != "eval"]
    by_town = {t: [f for f in facts if f.town == t] for t in towns}
    for n in range(SIZES[split]):
        if split == "pool":
            text = _passage(rng, rng.sample(facts, rng.randint(2, 4)))
        elif rng.random() < QA_SHARE:
            chosen = list(by_town[rng.choice(practice)])
            rng.shuffle(chosen)
            text = "\n".join(qa(f) for f in chosen)
        else:
            text = _passage(rng, list(by_town[rng.choice(towns)]))
        yield Record(f"facts/{split}/{n:06d}", text, "facts", "facts", {})
