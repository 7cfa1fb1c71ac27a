import json

import pandas as pd
import pytest

from cola_core.corpora import describe_sampling, load_records
from cola_core.corpora import files as files_mod
from cola_core.corpora.hub import load_hf_records, parse_hf_spec
from cola_core.corpora.sampling import reservoir_sample
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


def _numbered_file(tmp_path, n=200):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(n)))
    return path


def test_seeded_pool_is_a_reproducible_sample_not_the_head(tmp_path):
    path = str(_numbered_file(tmp_path))
    head = load_records(path, limit=20)
    a, again, other = (load_records(path, limit=20, seed=s) for s in (7, 7, 8))
    assert [r.text for r in head] == [f"row {i}" for i in range(20)] and "sampled" not in head[0].meta
    assert a == again and [r.id for r in a] != [r.id for r in other]
    assert [r.id for r in a] != [r.id for r in head] and len(a) == 20 == len({r.id for r in a})
    assert [r.meta["row"] for r in a] == sorted(r.meta["row"] for r in a)
    assert {json.dumps(r.meta["sampled"]) for r in a} == {'{"seed": 7, "of": 200}'}
    by_id = {r.id: r.text for r in head + load_records(path, seed=7)}
    assert all(by_id[r.id] == r.text for r in a)  # a row keeps its id whether sampled or not
    assert describe_sampling(a + load_records("math", limit=3)) == "rows: 20 sampled from 200 rows (seed 7); math: 3"


def test_reservoir_sample_is_uniform():
    n, k, seeds = 1000, 100, 400
    counts = [0] * n
    for seed in range(seeds):
        kept, seen = reservoir_sample(iter(range(n)), k, seed)
        assert seen == n and len(kept) == k and kept == sorted(set(kept))
        for i in kept:
            counts[i] += 1
    freq = [c / seeds for c in counts]  # each row's inclusion frequency, expected k / n = 0.1
    assert all(0.03 < f < 0.2 for f in freq)
    assert abs(sum(freq[:100]) / 100 - 0.1) < 0.015 and abs(sum(freq[-100:]) / 100 - 0.1) < 0.015
    assert reservoir_sample(range(5), 10, 0) == ([0, 1, 2, 3, 4], 5) == reservoir_sample(range(5), None, 0)


def test_hf_dataset_sampling_and_fields_from_local_directory(tmp_path):
    rows = [
        {"text": f"row {i}", "q": f"q{i}?", "a": f"{i} + 1 = <<{i}+1={i + 1}>>{i + 1}\n#### {i + 1}"} for i in range(60)
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = f"hf:{tmp_path}"
    head = load_records(spec, limit=5)
    a, again, other = (load_records(spec, limit=5, seed=s) for s in (1, 1, 2))
    assert [r.text for r in head] == [f"row {i}" for i in range(5)]
    assert a == again and a != other and [r.text for r in a] != [r.text for r in head]
    assert all(r.meta["sampled"] == {"seed": 1, "of": 60} and r.meta["source"] == spec for r in a)
    assert all(r.text == f"row {r.meta['row']}" for r in a)
    (qa,) = load_records(spec, limit=1, fields="question=q,answer=a")
    assert qa.text == "Question: q0?\nReasoning: 0 + 1 = 1\nAnswer: 1"
    with pytest.raises(ColaError, match=r"row 0 has no 'rationale' column"):
        load_records(spec, limit=1, fields="question=q,answer=a,rationale=rationale")


def test_the_pool_counts_a_file_corpus_by_the_spec_it_was_given(tmp_path):
    """Issue #32: a file's records carry its stem as their corpus name, so counting them by the path
    on the command line found 0 and warned of a false shortfall."""
    import json

    from cola_core.curation.stage1 import build_pool

    path = tmp_path / "gsm_mine.jsonl"
    path.write_text("".join(json.dumps({"text": f"question {i} answer {i}"}) + "\n" for i in range(30)))
    pool, got = build_pool({str(path): 50, "math": 20, "facts": 60}, seed=0)
    # the file's 20 missing records are drawn from the others in proportion to their shares (20 : 60)
    assert got == {str(path): 30, "math": 25, "facts": 75} and len(pool) == 130
    assert {r.corpus for r in pool[:30]} == {"gsm_mine"}  # the name the records carry is not the spec


def test_save_to_disk_folders_are_corpora_by_path_or_hf(tmp_path):
    """A Dataset or DatasetDict saved with save_to_disk — the tool's own calib.hf among them — reads as
    a corpus by its path or as hf:PATH (a DatasetDict's split after two colons)."""
    import datasets

    from cola_core.calibration.files import save_hf_dataset
    from cola_core.corpora import Record, load_records

    records = [Record(f"m/{i}", f"Question {i}? Answer: {i}", "math", "math", {"n": i}) for i in range(5)]
    save_hf_dataset(records, tmp_path / "calib.hf")
    by_path = load_records(str(tmp_path / "calib.hf"), "pool")
    assert [r.text for r in by_path] == [r.text for r in records] and by_path[0].corpus == "calib"
    assert [r.text for r in load_records(f"hf:{tmp_path / 'calib.hf'}", "pool", limit=2)] == [
        r.text for r in records[:2]
    ]
    parts = {"train": {"q": ["a?", "b?"], "a": ["1", "2"]}, "test": {"q": ["c?"], "a": ["3"]}}
    datasets.DatasetDict({k: datasets.Dataset.from_dict(v) for k, v in parts.items()}).save_to_disk(tmp_path / "qa")
    qa = load_records(str(tmp_path / "qa"), "pool", fields="question=q,answer=a")
    assert [(r.meta["question"], r.meta["answer"]) for r in qa] == [("a?", "1"), ("b?", "2")]
    assert [r.text for r in load_records(f"hf:{tmp_path / 'qa'}::test", "pool", text_field="q")] == ["c?"]
    with pytest.raises(ColaError, match="no split 'dev'"):
        load_records(f"hf:{tmp_path / 'qa'}::dev", "pool", text_field="q")
