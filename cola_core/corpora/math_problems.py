"""Built-in `math` corpus: generated arithmetic word problems with an explicit reasoning chain.

Every record reads ``Question: … / Reasoning: … / Answer: N`` (the explicit-reasoning format that
COLA, He et al. 2025 §4.2, finds helps preserve math ability). Three difficulty tiers:

1. one step, add or subtract, numbers 0–20;
2. two steps, add then subtract, numbers up to 50;
3. multiply then add, factors up to 12.

A problem's identity (tier, template, name, object, numbers) decides its split with
:func:`split_of`, so no held-out problem is ever seen in train, pool or probe.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from cola_core.corpora.records import Record, qa_prompt, split_of

NAMES = [
    "Ana",
    "Ben",
    "Cara",
    "Dev",
    "Eli",
    "Fay",
    "Gus",
    "Hana",
    "Ivo",
    "Jun",
    "Kim",
    "Leo",
    "Mia",
    "Noor",
    "Omar",
    "Pia",
    "Raj",
    "Sara",
    "Tom",
    "Uma",
    "Vic",
    "Wen",
    "Yara",
    "Zed",
]
OBJECTS = [
    "apples",
    "marbles",
    "books",
    "coins",
    "stickers",
    "pencils",
    "shells",
    "cards",
    "stamps",
    "cookies",
    "eggs",
    "flowers",
]
SIZES = {"train": 120_000, "pool": 3_000, "probe": 300, "heldout": 1_500}
TIERS = (1, 2, 3)


def _tier1(rng: random.Random, name: str, obj: str) -> tuple[str, str, int, tuple]:
    a, b, kind = rng.randint(0, 20), rng.randint(0, 20), rng.randint(0, 3)
    if kind in (1, 3) and b > a:
        a, b = b, a
    questions = [
        f"{name} has {a} {obj}. {name} gets {b} more. How many {obj} does {name} have now?",
        f"{name} has {a} {obj}. {name} gives away {b}. How many {obj} does {name} have left?",
        f"There are {a} {obj} in a box. {name} puts in {b} more. How many {obj} are in the box?",
        f"There are {a} {obj} on a table. {name} takes {b}. How many {obj} are left?",
    ]
    answer = a + b if kind in (0, 2) else a - b
    op = "+" if kind in (0, 2) else "-"
    return questions[kind], f"{a} {op} {b} = {answer}.", answer, (kind, a, b)


def _tier2(rng: random.Random, name: str, obj: str) -> tuple[str, str, int, tuple]:
    a, b = rng.randint(1, 30), rng.randint(1, 20)
    c = rng.randint(0, a + b)
    s = a + b
    question = (
        f"{name} has {a} {obj}. {name} buys {b} more and then gives {c} to a friend. "
        f"How many {obj} does {name} have now?"
    )
    return question, f"{a} + {b} = {s}. {s} - {c} = {s - c}.", s - c, (a, b, c)


def _tier3(rng: random.Random, name: str, obj: str) -> tuple[str, str, int, tuple]:
    a, b, c = rng.randint(2, 12), rng.randint(2, 12), rng.randint(0, 20)
    p = a * b
    question = (
        f"{name} buys {a} bags with {b} {obj} in each bag. {name} already had {c} {obj}. "
        f"How many {obj} does {name} have now?"
    )
    return question, f"{a} * {b} = {p}. {p} + {c} = {p + c}.", p + c, (a, b, c)


_MAKERS = {1: _tier1, 2: _tier2, 3: _tier3}


def render(question: str, reasoning: str | None, answer: int | str) -> str:
    """The text of a problem; without reasoning it is the plain ``Question / Answer`` format."""
    if reasoning is None:
        return f"{qa_prompt(question)} {answer}"
    return f"Question: {question}\nReasoning: {reasoning}\nAnswer: {answer}"


def generate_math(split: str) -> Iterator[Record]:
    """Problems of the given split, tiers interleaved 1, 2, 3, 1 …, deterministic."""
    rng = random.Random(1234)
    n = 0
    while n < SIZES[split]:
        tier = TIERS[n % 3] if split != "train" else rng.choice((1, 1, 2, 3))
        name, obj = rng.choice(NAMES), rng.choice(OBJECTS)
        question, reasoning, answer, key = _MAKERS[tier](rng, name, obj)
        if split_of(f"math:{tier}:{name}:{obj}:{key}") != split:
            continue
        meta = {"tier": tier, "question": question, "reasoning": reasoning, "answer": answer}
        yield Record(f"math/{split}/{n:06d}", render(question, reasoning, answer), "math", "math", meta)
        n += 1
