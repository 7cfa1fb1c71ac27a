import json

import pandas as pd
import pytest

from cola_core.corpora import files as files_mod
from cola_core.corpora import load_records
from cola_core.corpora.hub import load_hf_records, parse_hf_spec
from cola_core.errors import ColaError

ROWS = [{"text": "first sample", "label": 1}, {"text": "second sample", "label": 2}]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet", ".txt"])
def test_every_file_format_loads(tmp_path, suffix):
    path = tmp_path / f"mine{suffix}"
    if suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    elif suffix == ".json":
        path.write_text(json.dumps(ROWS))
    elif suffix == ".csv":
        pd.DataFrame(ROWS).to_csv(path, index=False)
    elif suffix == ".parquet":
        pd.DataFrame(ROWS).to_parquet(path)
    else:
        path.write_text("first sample\n\nsecond sample\n")
    records = load_records(str(path))
    assert [r.text for r in records] == ["first sample", "second sample"]
    assert {r.corpus for r in records} == {"mine"} and records[0].id != records[1].id


def test_chosen_text_field(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": "why?", "text": "x"}) + "\n")
    assert load_records(str(path), text_field="question")[0].text == "why?"


def test_non_utf8_names_the_file_and_offset(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(ColaError, match=r"latin.txt is not UTF-8 .*offset 3"):
        load_records(str(path))


def test_empty_and_whitespace_files(tmp_path):
    for name, content in [("empty.txt", ""), ("blank.jsonl", "\n  \n"), ("ws.txt", "   \n\n \t ")]:
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(ColaError, match=f"{name} holds no non-empty text"):
            load_records(str(path))


def test_oversized_file_names_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(files_mod, "MAX_FILE_BYTES", 1024)
    path = tmp_path / "big.txt"
    path.write_text("x" * 4096)
    with pytest.raises(ColaError, match=r"big.txt is .*over the 0 MiB limit"):
        load_records(str(path))


def test_malformed_jsonl_reports_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"text": broken}\n')
    with pytest.raises(ColaError, match="bad.jsonl line 2 is not valid JSON"):
        load_records(str(path))


def test_missing_column_lists_columns(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame([{"body": "a"}]).to_csv(path, index=False)
    with pytest.raises(ColaError, match=r"no 'text' column \(columns: body\)"):
        load_records(str(path))


def test_unsupported_and_missing_files(tmp_path):
    (tmp_path / "x.docx").write_text("hi")
    with pytest.raises(ColaError, match="unsupported file type"):
        load_records(str(tmp_path / "x.docx"))
    with pytest.raises(ColaError, match="does not exist"):
        load_records(str(tmp_path / "nothing.jsonl"))


def test_hf_spec_parsing():
    assert parse_hf_spec("hf:wikitext:wikitext-2-raw-v1:test") == ("wikitext", "wikitext-2-raw-v1", "test")
    assert parse_hf_spec("hf:org/name") == ("org/name", None, "train")
    with pytest.raises(ColaError):
        parse_hf_spec("hf:")


def test_hf_dataset_from_local_directory(tmp_path):
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    records = list(load_hf_records(f"hf:{tmp_path}", limit=1))
    assert [r.text for r in records] == ["first sample"]


def test_unreachable_hf_dataset_is_one_clear_error():
    with pytest.raises(ColaError, match="could not load dataset 'nobody/nothing-here'.*HF_HOME"):
        load_records("hf:nobody/nothing-here")
