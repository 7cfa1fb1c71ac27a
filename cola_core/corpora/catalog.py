"""The corpus catalogue: the built-in corpora (name, domain, splits, generator) and
:func:`load_records`, which reads any corpus spec — a built-in name, a local file or
``hf:NAME[:CONFIG[:SPLIT]]`` — as :class:`~cola_core.corpora.records.Record`s (see the package's
docstring)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cola_core.corpora.facts_world import generate_facts
from cola_core.corpora.fields import Fields, parse_fields
from cola_core.corpora.files import FILE_SUFFIXES, load_file_records
from cola_core.corpora.hub import is_saved_dataset, load_hf_records
from cola_core.corpora.math_problems import generate_math
from cola_core.corpora.random_tokens import generate_random
from cola_core.corpora.records import SPLITS, Record, check_split
from cola_core.corpora.sampling import take_records
from cola_core.corpora.stdlib import generate_code, generate_prose
from cola_core.errors import ColaError

HF_SAMPLE_WINDOW = 100_000  # rows of a Hugging Face dataset a seeded pool is sampled from


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


def load_records(
    spec: str,
    split: str = "pool",
    limit: int | None = None,
    text_field: str = "text",
    fields: Fields | str | None = None,
    seed: int | None = None,
) -> list[Record]:
    """Records of one corpus spec, at most ``limit`` of them, in a deterministic order.

    Every source: the first ``limit`` records when ``seed`` is ``None``, else a uniform sample of
    ``limit`` of them fixed by the seed, in their order, each with ``meta["sampled"] = {"seed",
    "of"}``. Built-in corpora sample their whole split (``fields`` doesn't apply; splits are drawn
    by :func:`split_of`); files and hub datasets their rows. ``fields`` (``Fields`` or
    ``"question=COL,answer=COL[,rationale=COL]"``) makes each row a question/answer record.
    """
    if limit is not None and limit <= 0:
        raise ColaError(f"the number of samples must be positive, got {limit}")
    check_split(split)
    if spec in BUILTIN_CORPORA:
        return take_records(BUILTIN_CORPORA[spec].generate(split), limit, seed)
    if isinstance(fields, str):
        fields = parse_fields(fields)
    if is_saved_dataset(spec):  # a save_to_disk folder given by its path
        spec = f"hf:{spec}"
    if spec.startswith("hf:"):
        # a seeded sample is drawn from the first HF_SAMPLE_WINDOW rows of a stream (C4 has ~365M);
        # meta["sampled"]["of"] says how many rows it was drawn from
        stream_limit = limit if seed is None else max(HF_SAMPLE_WINDOW, limit or 0)
        return take_records(load_hf_records(spec, text_field, stream_limit, fields), limit, seed)
    if Path(spec).suffix.lower() in FILE_SUFFIXES or Path(spec).exists():
        return take_records(load_file_records(spec, text_field=text_field, fields=fields), limit, seed)
    names = ", ".join(BUILTIN_CORPORA)
    raise ColaError(f"unknown corpus '{spec}': use a built-in name ({names}), a file path or hf:NAME[:CONFIG[:SPLIT]]")
