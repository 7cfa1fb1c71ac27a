"""Question/answer rows of files and datasets as COLA Stage 2 records (He et al., NeurIPS 2025, §4.2).

Stage 2's explicit-reasoning format re-renders records whose ``meta`` holds ``question``,
``reasoning`` and ``answer``. A field mapping ``question=COL,answer=COL[,rationale=COL]`` says which
columns of a file or hub dataset hold them, so any Q&A data gets that structure:

- GSM8K style: the answer column reads ``"steps …\\n#### 42"``; the steps become the reasoning
  (calculator annotations such as ``<<3*4=12>>`` removed) and ``42`` the answer;
- MathQA style: a separate rationale column (``rationale=Rationale,answer=correct``).

Answers keep their text (``"42"``, ``"b"``), with thousands separators dropped from numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from cola_core.corpora.math_problems import render
from cola_core.errors import ColaError

_CALCULATOR = re.compile(r"<<[^<>]*>>")
_NUMBER_WITH_COMMAS = re.compile(r"[-+]?\$?\d{1,3}(,\d{3})+(\.\d+)?")
_FINAL_ANSWER = "####"


@dataclass(frozen=True)
class Fields:
    """Which columns hold a question, its answer and (optionally) a rationale."""

    question: str
    answer: str
    rationale: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and not (isinstance(value, str) and value.strip()):
                raise ColaError(f"field mapping: the '{f.name}' column name is empty")

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for c in (self.question, self.answer, self.rationale) if c is not None)

    def __str__(self) -> str:
        """The string form :func:`parse_fields` reads, e.g. ``question=q,answer=a``."""
        pairs = [(f.name, getattr(self, f.name)) for f in fields(self)]
        return ",".join(f"{k}={v}" for k, v in pairs if v is not None)


_KEYS = tuple(f.name for f in fields(Fields))
_USAGE = "use question=COL,answer=COL[,rationale=COL]"


def parse_fields(text: str) -> Fields:
    """``question=COL,answer=COL[,rationale=COL]`` → :class:`Fields`; one-line :class:`ColaError`
    on an unknown or repeated key, a missing question/answer or an empty column name."""
    mapping: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        key, eq, column = (s.strip() for s in part.partition("="))
        if not eq:
            raise ColaError(f"bad field mapping '{text}': '{part}' is not KEY=COL; {_USAGE}")
        if key not in _KEYS:
            raise ColaError(f"bad field mapping '{text}': unknown key '{key}'; {_USAGE}")
        if key in mapping:
            raise ColaError(f"bad field mapping '{text}': '{key}' given twice; {_USAGE}")
        if not column:
            raise ColaError(f"bad field mapping '{text}': the '{key}' column name is empty; {_USAGE}")
        mapping[key] = column
    missing = [k for k in ("question", "answer") if k not in mapping]
    if missing:
        raise ColaError(f"bad field mapping '{text}': no {' or '.join(missing)} column; {_USAGE}")
    return Fields(**mapping)


_PER_CORPUS = re.compile(r"^(?P<spec>.+?):(?=(?:question|answer|rationale)=)(?P<mapping>.*)$")


def corpus_mappings(text: str | None) -> dict[str | None, str]:
    """``--fields`` as {corpus spec or None (every other corpus): its mapping}. Entries are separated
    by ``;``; an entry ``SPEC:question=COL,answer=COL`` maps that corpus alone (``gsm.jsonl:…``,
    ``hf:gsm8k:main:…``), a bare mapping every corpus not named. Each mapping is checked here."""
    out: dict[str | None, str] = {}
    for entry in (e.strip() for e in (text or "").split(";")):
        if not entry:
            continue
        found = _PER_CORPUS.match(entry)
        spec, mapping = (found["spec"], found["mapping"]) if found else (None, entry)
        if spec in out:
            raise ColaError(
                f"--fields maps {'corpus ' + spec if spec else 'every corpus'} twice; give one mapping each"
            )
        parse_fields(mapping)
        out[spec] = mapping
    return out


def fields_for(text: str | None, spec: str) -> str | None:
    """The mapping ``--fields`` gives corpus ``spec``: its own entry, else the bare one, else None."""
    mappings = corpus_mappings(text)
    return mappings.get(spec, mappings.get(None))


def as_fields(fields_: Fields | str | None) -> Fields | None:
    """A mapping given as :class:`Fields`, its string form, or ``None`` (no mapping)."""
    return parse_fields(fields_) if isinstance(fields_, str) else fields_


def _cell(row: Mapping[str, Any], column: str, where: str, required: bool) -> str | None:
    if column not in row:
        cols = ", ".join(map(str, row))
        raise ColaError(f"{where} has no '{column}' column (columns: {cols}); check the field mapping")
    value = row[column]
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # table readers turn integer columns with gaps into floats
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip()
    if required and not text:
        raise ColaError(f"{where} has an empty '{column}' column; fill or drop the row")
    return text or None


def clean_reasoning(text: str) -> str:
    """Reasoning steps on one line: calculator annotations removed, whitespace collapsed, and the
    wrapping quotes some datasets (MathQA) put around a rationale dropped."""
    text = _CALCULATOR.sub("", text).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    return " ".join(text.split())


def clean_answer(text: str) -> str:
    """A final answer as plain text; a number loses its thousands separators (``1,200`` → ``1200``)."""
    text = " ".join(text.split())
    return _NUMBER_WITH_COMMAS.sub(lambda m: m.group(0).replace(",", ""), text)


def split_answer(text: str) -> tuple[str | None, str]:
    """``"steps …\\n#### 42"`` → ``(steps, "42")``; an answer without ``####`` has no steps."""
    steps, marker, final = text.rpartition(_FINAL_ANSWER)
    if not marker:
        return None, clean_answer(text)
    return clean_reasoning(steps) or None, clean_answer(final)


def qa_of_row(row: Mapping[str, Any], mapping: Fields, where: str) -> tuple[str, dict[str, Any]]:
    """One row's rendered text and its ``meta`` part ``{question, reasoning, answer}``; ``reasoning``
    is ``None`` when the row has none. ``where`` names the row in errors."""
    if not isinstance(row, Mapping):
        raise ColaError(f"{where} is not a row with columns; a field mapping needs JSON objects or a table")
    question = _cell(row, mapping.question, where, required=True)
    steps, answer = split_answer(_cell(row, mapping.answer, where, required=True))
    if not answer:
        raise ColaError(f"{where} has no final answer after '{_FINAL_ANSWER}' in '{mapping.answer}'")
    reasoning = steps
    if mapping.rationale is not None:
        rationale = _cell(row, mapping.rationale, where, required=False)
        reasoning = (clean_reasoning(rationale) if rationale else None) or steps
    meta = {"question": question, "reasoning": reasoning, "answer": answer}
    return render(question, reasoning, answer), meta
