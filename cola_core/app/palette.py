"""Colours shared by the dashboard's maps and the HTML report's: one hue per built-in corpus for its
pool samples and its held-out probes alike (a probe set is named after its corpus), on every map, so a
colour means the same thing wherever a person meets it (issue #30)."""

from __future__ import annotations

from collections.abc import Iterable

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d"]
CORPUS_COLOURS = {"prose": "#2563eb", "code": "#ea580c", "math": "#16a34a", "facts": "#9333ea"}


def colours_of(values: Iterable[str]) -> dict[str, str]:
    """A stable colour per value: a built-in corpus always its own hue (:data:`CORPUS_COLOURS`), any
    other value (a cluster, an upload, a band) the next palette colour no corpus uses, in sorted order."""
    values = set(values)
    free = [c for c in PALETTE if c not in CORPUS_COLOURS.values()]
    others = sorted(v for v in values if v not in CORPUS_COLOURS)
    fixed = {v: c for v, c in CORPUS_COLOURS.items() if v in values}
    return fixed | {v: free[k % len(free)] for k, v in enumerate(others)}
