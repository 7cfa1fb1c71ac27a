"""Records as JSON Lines, the format calibration sets and self-generated corpora are written in
(atomically), with the settings that produced them in a ``.settings.json`` beside the file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cola_core.corpora import Record
from cola_core.errors import ColaError
from cola_core.storage.atomic import atomic_write_text


def save_jsonl(records: Sequence[Record], path: str | Path, settings: dict[str, Any] | None = None) -> Path:
    """One JSON object per line: ``{id, text, corpus, domain, meta}``; settings go in a sidecar."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in records))
    if settings is not None:
        atomic_write_text(path.with_suffix(".settings.json"), json.dumps(settings, indent=2, default=str) + "\n")
    return path


def load_jsonl(path: str | Path) -> list[Record]:
    """Read a calibration set written by :func:`save_jsonl`."""
    path = Path(path)
    if not path.is_file():
        raise ColaError(f"calibration file {path} does not exist")
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            records.append(Record(row["id"], row["text"], row["corpus"], row["domain"], row.get("meta", {})))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ColaError(
                f"{path.name} line {n} is not a calibration record ({{id, text, corpus, domain}})"
            ) from None
    if not records:
        raise ColaError(f"{path.name} holds no calibration records")
    return records
