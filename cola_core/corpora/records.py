"""The record every corpus yields, and the deterministic split rule of the built-in corpora."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

SPLITS = ("train", "pool", "probe", "heldout")
# train: what cola-tiny learned from; pool: candidates for calibration; probe: held-out items that
# stand for a capability in the activation space (the coverage proxy, Stage 1's correspondence);
# heldout: the evaluated items. Probe and heldout are disjoint, so the proxy never sees an evaluated
# item (tests/test_leakage.py).


@dataclass(frozen=True)
class Record:
    """One text sample with its provenance: ``{id, text, corpus, domain, meta}``."""

    id: str
    text: str
    corpus: str
    domain: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def is_qa(self) -> bool:
        """A question/answer record (built-in math, a ``--fields`` mapping): Stage 2's reasoning
        format and the chat template apply to it."""
        return "question" in self.meta and "answer" in self.meta


def qa_prompt(question: str) -> str:
    """The question-answer prompt every built-in task and benchmark uses: ``Question: …`` then
    ``Answer:``, the answer to follow after a space."""
    return f"Question: {question}\nAnswer:"


def split_of(key: str) -> str:
    """Assign a generator key (module name, problem identity …) to a split: 80% train, 10% pool,
    2% probe, 8% held-out (the probe split is the first fifth of what was once one held-out tenth, so
    train and pool are those cola-tiny was trained with). A key always lands in the same split, so
    splits are disjoint by construction."""
    bucket = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:4], "big") % 100
    if bucket < 80:
        return "train"
    if bucket < 90:
        return "pool"
    return "probe" if bucket < 92 else "heldout"


def check_split(split: str) -> str:
    from cola_core.errors import ColaError

    if split not in SPLITS:
        raise ColaError(f"unknown split '{split}': choose one of {', '.join(SPLITS)}")
    return split
