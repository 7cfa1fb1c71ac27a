"""Uploaded corpora: the user's file name never becomes a path; bad files are refused with one line."""

from __future__ import annotations

import pytest

from cola_core.corpora import load_records
from cola_core.corpora import uploads as uploads
from cola_core.errors import ColaError


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_valid_upload_is_stored_under_a_safe_name(cache):
    path = uploads.store_upload("../../etc/my notes!.jsonl", b'{"text": "first sample"}\n{"text": "second"}\n')
    assert path.parent.parent == cache / "uploads" and path.name == "my_notes.jsonl"
    assert [r.text for r in load_records(str(path))] == ["first sample", "second"]
    again = uploads.store_upload("other.jsonl", b'{"text": "first sample"}\n{"text": "second"}\n')
    assert again.parent == path.parent  # same bytes, same folder


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("x.exe", b"MZ", "upload a .txt"),
        ("x.txt", b"  \n\t ", "is empty"),
        ("x.txt", b"caf\xe9 au lait", "not UTF-8"),
        ("x.jsonl", b'{"text": "ok"}\n{"text": broken\n', "line 2"),
        ("x.csv", b"title,body\na,b\n", "text"),
    ],
)
def test_bad_uploads_are_refused_and_not_kept(name, data, message, cache):
    with pytest.raises(ColaError, match=message):
        uploads.store_upload(name, data)
    assert not [p for p in (cache / "uploads").rglob("*") if p.is_file()] if (cache / "uploads").exists() else True


def test_oversized_upload(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 10)
    with pytest.raises(ColaError, match="the limit is"):
        uploads.store_upload("big.txt", b"x" * 11)
