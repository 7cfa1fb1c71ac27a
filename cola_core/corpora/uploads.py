"""Corpora uploaded through the dashboard, stored safely.

The user's file name never becomes a path: the bytes land in ``cache/uploads/<sha256 prefix>/`` under
a sanitised name (letters, digits, ``_`` and ``-`` only, which also labels the corpus), written
atomically. Size, type, encoding and parseability are checked before anything is kept.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from cola_core.corpora import Fields, load_records
from cola_core.errors import ColaError
from cola_core.paths import cache_root
from cola_core.storage.atomic import atomic_write_bytes

UPLOAD_SUFFIXES = (".txt", ".jsonl", ".csv", ".parquet")
MAX_UPLOAD_BYTES = 200 * 2**20  # the dashboard's server.maxUploadSize


def safe_stem(filename: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(filename.replace("\\", "/")).stem).strip("_")
    return stem[:40] or "upload"


def store_upload(filename: str, data: bytes, text_field: str = "text", fields: Fields | str | None = None) -> Path:
    """Validate an uploaded corpus and keep it; returns the stored path (usable as a corpus spec).
    ``fields`` (a question/answer mapping) is checked on the first rows instead of ``text_field``."""
    suffix = Path(filename).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise ColaError(f"{filename}: upload a {', '.join(UPLOAD_SUFFIXES)} file")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ColaError(f"{filename} is {len(data) / 2**20:.0f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB")
    if not data.strip():
        raise ColaError(f"{filename} is empty")
    if suffix != ".parquet":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ColaError(
                f"{filename} is not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8"
            ) from None
    folder = cache_root() / "uploads" / hashlib.sha256(data).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{safe_stem(filename)}{suffix}"
    atomic_write_bytes(path, data)
    try:
        if not load_records(str(path), limit=5, text_field=text_field, fields=fields):
            raise ColaError(f"{filename} holds no non-empty texts")
    except ColaError:
        path.unlink(missing_ok=True)
        raise
    return path
