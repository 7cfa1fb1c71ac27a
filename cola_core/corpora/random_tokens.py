"""Built-in `random` corpus: seeded random character sequences, the practitioners' baseline.

Random "words" of letters, digits and punctuation tokenise into near-uniform token sequences for
any byte-level tokenizer. Each split has its own seed, so the splits share no text.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator

from cola_core.corpora.records import Record

SIZES = {"train": 5_000, "pool": 2_000, "probe": 100, "heldout": 500}
_ALPHABET = string.ascii_letters + string.digits + string.punctuation


def generate_random(split: str) -> Iterator[Record]:
    rng = random.Random({"train": 11, "pool": 12, "heldout": 13, "probe": 14}[split])
    for n in range(SIZES[split]):
        words = ("".join(rng.choices(_ALPHABET, k=rng.randint(1, 8))) for _ in range(rng.randint(40, 120)))
        yield Record(f"random/{split}/{n:06d}", " ".join(words), "random", "random", {})
