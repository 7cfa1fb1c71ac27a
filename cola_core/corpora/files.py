"""Records from local files: .txt, .jsonl, .json, .csv, .parquet, with a chosen text field or a
question/answer field mapping (:mod:`cola_core.corpora.fields`).

Errors name the file and what to do: non-UTF-8 bytes (with the byte offset), an empty file, a
file over the size limit, a malformed JSONL line (with its number), a missing text column.
Every record's ``meta`` has ``source`` (the path) and ``row`` (0-based among the file's rows; blank
lines and paragraphs don't count).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cola_core.corpora.fields import Fields, as_fields, qa_of_row
from cola_core.corpora.records import Record
from cola_core.errors import ColaError

FILE_SUFFIXES = (".txt", ".jsonl", ".json", ".csv", ".parquet")
TABLE_SUFFIXES = (".csv", ".parquet")
MAX_FILE_BYTES = 256 * 1024 * 1024


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ColaError(
            f"{path.name} is not UTF-8 text (bad byte at offset {exc.start}); re-save it as UTF-8"
        ) from None


def _text_of(row: Any, field: str, where: str) -> str:
    if isinstance(row, str):
        return row
    if not isinstance(row, dict):
        raise ColaError(f"{where} is neither a string nor an object with a '{field}' field")
    if field not in row:
        raise ColaError(f"{where} has no '{field}' field (fields: {', '.join(map(str, row))}); pass --text-field")
    return str(row[field])


def _rows(path: Path, columns: Sequence[str], hint: str) -> Iterator[tuple[Any, str, dict[str, Any]]]:
    """``(row, where, location meta)`` of each row: a string or a dict (tables: of ``columns``)."""
    suffix = path.suffix.lower()
    if suffix == ".txt":
        for n, para in enumerate(p.strip() for p in _read_text(path).split("\n\n")):
            if para:
                yield para, f"{path.name} paragraph {n}", {"paragraph": n}
    elif suffix == ".jsonl":
        for n, line in enumerate(_read_text(path).splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ColaError(f"{path.name} line {n} is not valid JSON ({exc.msg}); fix or remove it") from None
            yield row, f"{path.name} line {n}", {"line": n}
    elif suffix == ".json":
        try:
            data = json.loads(_read_text(path))
        except json.JSONDecodeError as exc:
            raise ColaError(f"{path.name} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise ColaError(f"{path.name} must hold a JSON list of records (or {{'data': [...]}})")
        for n, row in enumerate(data):
            yield row, f"{path.name} item {n}", {"item": n}
    else:
        yield from _table_rows(path, columns, hint)


def _table_rows(path: Path, columns: Sequence[str], hint: str) -> Iterator[tuple[dict[str, Any], str, dict[str, Any]]]:
    import pandas as pd

    try:
        frame = pd.read_csv(path, encoding="utf-8") if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except UnicodeDecodeError:
        raise ColaError(f"{path.name} is not UTF-8 text; re-save it as UTF-8") from None
    except Exception as exc:  # pandas/pyarrow raise many types for malformed files
        raise ColaError(f"{path.name} could not be read as {path.suffix.lower()[1:]} ({exc})") from None
    for column in columns:
        if column not in frame.columns:
            cols = ", ".join(map(str, frame.columns))
            raise ColaError(f"{path.name} has no '{column}' column (columns: {cols}); {hint}")
    values = [frame[c].tolist() for c in columns]
    for n, cells in enumerate(zip(*values, strict=True)):
        yield dict(zip(columns, cells, strict=True)), f"{path.name} row {n}", {"row": n}


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise ColaError(f"corpus file {path} does not exist")
    if path.suffix.lower() not in FILE_SUFFIXES:
        raise ColaError(f"{path.name}: unsupported file type; use one of {', '.join(FILE_SUFFIXES)}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ColaError(
            f"{path.name} is {size / 2**20:.0f} MiB, over the {MAX_FILE_BYTES // 2**20} MiB limit; split it"
        )


def load_file_records(
    path: str | Path, text_field: str = "text", name: str | None = None, fields: Fields | str | None = None
) -> Iterator[Record]:
    """Records of a local file; ``name`` (default: the file stem) becomes the corpus name. With
    ``fields`` (a question/answer mapping) each row becomes a Q&A record and ``text_field`` is unused."""
    path = Path(path)
    _check_file(path)
    mapping = as_fields(fields)
    if mapping is not None and path.suffix.lower() == ".txt":
        raise ColaError(f"{path.name}: a field mapping needs a file with columns (.jsonl, .json, .csv, .parquet)")
    columns, hint = (mapping.columns, "check the field mapping") if mapping else ((text_field,), "pass --text-field")
    table = path.suffix.lower() in TABLE_SUFFIXES
    corpus = name or path.stem
    n = 0
    for row_index, (row, where, location) in enumerate(_rows(path, columns, hint)):
        meta: dict[str, Any] = {"file": path.name, **location, "source": str(path), "row": row_index}
        if mapping is not None:
            text, qa = qa_of_row(row, mapping, where)
            meta.update(qa)
        elif table and not isinstance(row[text_field], str):
            continue  # an empty (NaN) or numeric cell holds no text
        else:
            text = _text_of(row, text_field, where)
        if text.strip():
            yield Record(f"{corpus}/{n:06d}", text, corpus, "custom", meta)
            n += 1
    if n == 0:
        raise ColaError(f"{path.name} holds no non-empty text; check the file and --text-field")
