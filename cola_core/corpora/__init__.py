"""Corpora: built-in generated corpora, local files and Hugging Face datasets, as :class:`Record`s.

A corpus spec is a built-in name (``prose``, ``code``, ``math``, ``facts``, ``random``), a path to a
local file (.txt/.jsonl/.json/.csv/.parquet) or ``hf:NAME[:CONFIG[:SPLIT]]``. Built-in corpora have
``train``/``pool``/``heldout`` splits; files and datasets are used whole whatever the split.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cola_core.corpora.facts_world import generate_facts
from cola_core.corpora.files import FILE_SUFFIXES, load_file_records
from cola_core.corpora.hub import load_hf_records
from cola_core.corpora.math_problems import generate_math
from cola_core.corpora.random_tokens import generate_random
from cola_core.corpora.records import SPLITS, Record, check_split, split_of
from cola_core.corpora.stdlib import generate_code, generate_prose
from cola_core.errors import ColaError

__all__ = ["BUILTIN_CORPORA", "SPLITS", "CorpusInfo", "Record", "list_corpora", "load_records", "split_of"]


@dataclass(frozen=True)
class CorpusInfo:
    name: str
    domain: str
    description: str
    splits: tuple[str, ...]
    generate: Callable[[str], Iterator[Record]]

    def to_dict(self) -> dict:
        return {"name": self.name, "domain": self.domain, "description": self.description, "splits": list(self.splits)}


BUILTIN_CORPORA: dict[str, CorpusInfo] = {
    c.name: c
    for c in [
        CorpusInfo(
            "prose",
            "prose",
            "English documentation prose: standard-library docstrings and pydoc topics",
            SPLITS,
            generate_prose,
        ),
        CorpusInfo(
            "code", "code", "Python function and method sources from the standard library", SPLITS, generate_code
        ),
        CorpusInfo(
            "math",
            "math",
            "Arithmetic word problems with step-by-step reasoning, three difficulty tiers",
            SPLITS,
            generate_math,
        ),
        CorpusInfo(
            "facts",
            "facts",
            "Statements and multiple-choice questions about a generated world of towns",
            SPLITS,
            generate_facts,
        ),
        CorpusInfo(
            "random",
            "random",
            "Random character sequences: the random-token calibration baseline",
            SPLITS,
            generate_random,
        ),
    ]
}


def list_corpora() -> list[CorpusInfo]:
    return list(BUILTIN_CORPORA.values())


def load_records(spec: str, split: str = "pool", limit: int | None = None, text_field: str = "text") -> list[Record]:
    """Records of one corpus spec, in a deterministic order, at most ``limit`` of them."""
    if limit is not None and limit <= 0:
        raise ColaError(f"the number of samples must be positive, got {limit}")
    check_split(split)
    if spec in BUILTIN_CORPORA:
        return list(itertools.islice(BUILTIN_CORPORA[spec].generate(split), limit))
    if spec.startswith("hf:"):
        return list(load_hf_records(spec, text_field=text_field, limit=limit))
    if Path(spec).suffix.lower() in FILE_SUFFIXES or Path(spec).exists():
        return list(itertools.islice(load_file_records(spec, text_field=text_field), limit))
    names = ", ".join(BUILTIN_CORPORA)
    raise ColaError(f"unknown corpus '{spec}': use a built-in name ({names}), a file path or hf:NAME[:CONFIG[:SPLIT]]")
