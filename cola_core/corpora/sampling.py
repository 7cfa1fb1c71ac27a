"""A seeded uniform sample of a file's or dataset's rows instead of its head.

The first rows of a file are often not representative (sorted, grouped by source), so a pool drawn
from a file or hub dataset is a uniform random sample. Reservoir sampling (Vitter's Algorithm R)
reads the rows once and keeps only ``limit`` of them, so a streamed dataset is never held whole;
the sample is returned in row order, so a seed fixes its content and its order.

A sampled record carries ``meta["sampled"] = {"seed": s, "of": n}``, ``n`` being how many records
(non-empty rows) the sample was drawn from.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TypeVar

from cola_core.corpora.records import Record

T = TypeVar("T")


def reservoir_sample(items: Iterable[T], k: int | None, seed: int) -> tuple[list[T], int]:
    """A uniform sample of ``k`` items (all of them when ``k`` is ``None`` or ≥ their number), in
    their original order, and how many items were read. Algorithm R: item ``i`` (0-based) replaces
    a random slot with probability ``k / (i + 1)``."""
    if k is None:
        kept = list(items)
        return kept, len(kept)
    rng = random.Random(seed)
    reservoir: list[tuple[int, T]] = []
    seen = 0
    for i, item in enumerate(items):
        seen = i + 1
        if i < k:
            reservoir.append((i, item))
            continue
        j = rng.randrange(i + 1)
        if j < k:
            reservoir[j] = (i, item)
    reservoir.sort(key=lambda pair: pair[0])
    return [item for _, item in reservoir], seen


def take_records(records: Iterable[Record], limit: int | None, seed: int | None) -> list[Record]:
    """The first ``limit`` records (``seed=None``), or a seeded uniform sample of ``limit`` of them,
    each marked with ``meta["sampled"]``."""
    if seed is None:
        return list(itertools.islice(records, limit))
    kept, seen = reservoir_sample(records, limit, seed)
    return [replace(r, meta={**r.meta, "sampled": {"seed": seed, "of": seen}}) for r in kept]


def sampling_summary(records: Sequence[Record]) -> dict[str, dict]:
    """Per corpus: ``{"n": records, "seed": s, "of": rows_seen}`` for sampled corpora, ``{"n": …}``
    for the rest; for settings files and reports."""
    out: dict[str, dict] = {}
    for r in records:
        entry = out.setdefault(r.corpus, {"n": 0})
        entry["n"] += 1
        if "sampled" in r.meta:
            entry.update(r.meta["sampled"])
    return out


def describe_sampling(records: Sequence[Record]) -> str:
    """One line saying how each corpus's records were drawn, e.g.
    ``gsm8k: 100 sampled from 7473 rows (seed 0); math: 100``."""
    parts = []
    for corpus, s in sampling_summary(records).items():
        if "seed" in s:
            parts.append(f"{corpus}: {s['n']} sampled from {s['of']} rows (seed {s['seed']})")
        else:
            parts.append(f"{corpus}: {s['n']}")
    return "; ".join(parts)
