"""Benchmarks (`python -m bench.run`; docs/performance.md). Two helpers every command shares."""

from __future__ import annotations

from collections.abc import Callable, Hashable


def description(doc: str) -> str:
    """A command's ``--help`` description: its docstring's first paragraph, on one line."""
    return doc.split("\n\n")[0].replace("\n", " ")


def replaced(stored: list[dict], rows: list[dict], key: Callable[[dict], Hashable]) -> list[dict]:
    """A stored table with ``rows`` in place of the stored rows of the same ``key`` (the measurements
    just re-run); the others stay, ahead of the new ones."""
    fresh = {key(r) for r in rows}
    return [r for r in stored if key(r) not in fresh] + rows
