import json

import pandas as pd
import pytest

from cola_core.corpora import Fields, load_records, parse_fields
from cola_core.corpora.fields import split_answer
from cola_core.curation.processing import apply_format
from cola_core.errors import ColaError

GSM = [
    {"question": "Ada has 3 bags of 4 eggs. How many eggs?", "answer": "3 * 4 = <<3*4=12>>12 eggs.\n#### 12"},
    {
        "question": "A car costs 1,000 more than 200. Price?",
        "answer": "200 + 1,000 = <<200+1000=1200>>1200\n#### 1,200",
    },
]


@pytest.fixture
def gsm_file(tmp_path):
    path = tmp_path / "gsm.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in GSM) + "\n")
    return path


@pytest.fixture
def mathqa_file(tmp_path):
    path = tmp_path / "mathqa.csv"
    pd.DataFrame(
        [
            {"Problem": "What is 5 times 4?", "Rationale": '"explanation : 5 * 4 = 20 answer b"', "correct": "b"},
            {"Problem": "What is 9 minus 2?", "Rationale": "9 - 2 = 7", "correct": "7"},
        ]
    ).to_csv(path, index=False)
    return path


def test_parse_fields_round_trips():
    f = parse_fields(" question=q , answer=a,rationale=Rationale ")
    assert f == Fields("q", "a", "Rationale")
    assert parse_fields(str(f)) == f and parse_fields("answer=x,question=y") == Fields("y", "x")
    assert f.columns == ("q", "a", "Rationale")


@pytest.mark.parametrize(
    "text, message",
    [
        ("question=q,answer=a,hint=h", "unknown key 'hint'"),
        ("question=q", "no answer column"),
        ("rationale=r", "no question or answer column"),
        ("question=,answer=a", "the 'question' column name is empty"),
        ("question=q,answer=a,question=z", "'question' given twice"),
        ("question=q,answer", "'answer' is not KEY=COL"),
        ("", "is not KEY=COL"),
    ],
)
def test_bad_field_mappings_are_one_line_errors(text, message):
    with pytest.raises(ColaError, match=message) as exc:
        parse_fields(text)
    assert "\n" not in str(exc.value) and "question=COL,answer=COL" in str(exc.value)


def test_split_answer_gsm8k_style():
    assert split_answer("Half of 48 is <<48/2=24>>24.\nSo 48 + 24 = <<48+24=72>>72.\n#### 72") == (
        "Half of 48 is 24. So 48 + 24 = 72.",
        "72",
    )
    assert split_answer("#### 1,234,567") == (None, "1234567")
    assert split_answer(" b ") == (None, "b")


def test_gsm8k_jsonl_becomes_question_reasoning_answer(gsm_file):
    records = load_records(str(gsm_file), fields="question=question,answer=answer")
    first, second = records
    assert first.meta["question"] == GSM[0]["question"]
    assert first.meta["reasoning"] == "3 * 4 = 12 eggs."
    assert first.meta["answer"] == "12" and second.meta["answer"] == "1200"
    assert first.text == f"Question: {GSM[0]['question']}\nReasoning: 3 * 4 = 12 eggs.\nAnswer: 12"
    assert second.text.endswith("\nAnswer: 1200") and "<<" not in second.text
    assert [r.meta["row"] for r in records] == [0, 1]
    assert {r.meta["source"] for r in records} == {str(gsm_file)}


def test_mathqa_csv_with_a_rationale_column(mathqa_file):
    mapping = Fields(question="Problem", answer="correct", rationale="Rationale")
    first, second = load_records(str(mathqa_file), fields=mapping)
    expected = {
        "question": "What is 5 times 4?",
        "reasoning": "explanation : 5 * 4 = 20 answer b",
        "answer": "b",
        "row": 0,
        "source": str(mathqa_file),
    }
    assert first.meta.items() >= expected.items()
    assert first.text == "Question: What is 5 times 4?\nReasoning: explanation : 5 * 4 = 20 answer b\nAnswer: b"
    assert second.text == "Question: What is 9 minus 2?\nReasoning: 9 - 2 = 7\nAnswer: 7"


def test_stage2_formats_render_mapped_records(gsm_file, mathqa_file):
    gsm = load_records(str(gsm_file), fields="question=question,answer=answer")[0]
    qa = load_records(str(mathqa_file), fields="question=Problem,answer=correct,rationale=Rationale")[1]
    for r in (gsm, qa):
        explicit, plain = apply_format(r, "explicit"), apply_format(r, "plain")
        assert explicit.text == r.text and explicit.text.splitlines()[1].startswith("Reasoning: ")
        assert plain.text == f"Question: {r.meta['question']}\nAnswer: {r.meta['answer']}"
        assert "Reasoning" not in plain.text


def test_answer_without_reasoning_renders_plain(tmp_path):
    path = tmp_path / "qa.json"
    path.write_text(json.dumps([{"q": "Capital of France?", "a": "Paris"}]))
    (r,) = load_records(str(path), fields="question=q,answer=a")
    assert r.meta["reasoning"] is None and r.text == "Question: Capital of France?\nAnswer: Paris"
    assert apply_format(r, "explicit") == r


def test_missing_column_names_row_and_column(tmp_path, gsm_file):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(GSM[0]) + "\n" + json.dumps({"question": "no answer"}) + "\n")
    with pytest.raises(ColaError, match=r"bad.jsonl line 2 has no 'answer' column") as exc:
        load_records(str(bad), fields="question=question,answer=answer")
    assert "\n" not in str(exc.value)
    with pytest.raises(ColaError, match=r"gsm.jsonl line 1 has no 'rationale' column"):
        load_records(str(gsm_file), fields="question=question,answer=answer,rationale=rationale")


def test_missing_table_column_and_empty_cell(tmp_path, mathqa_file):
    with pytest.raises(ColaError, match=r"mathqa.csv has no 'answer' column \(columns: Problem, Rationale, correct\)"):
        load_records(str(mathqa_file), fields="question=Problem,answer=answer")
    path = tmp_path / "gaps.csv"
    pd.DataFrame([{"q": "a?", "a": 1.0}, {"q": "b?", "a": None}]).to_csv(path, index=False)
    with pytest.raises(ColaError, match=r"gaps.csv row 1 has an empty 'a' column"):
        load_records(str(path), fields="question=q,answer=a")
    assert load_records(str(path), limit=1, fields="question=q,answer=a")[0].meta["answer"] == "1"


def test_field_mapping_needs_columns(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("just prose\n")
    with pytest.raises(ColaError, match="notes.txt: a field mapping needs a file with columns"):
        load_records(str(path), fields="question=q,answer=a")


def test_per_corpus_field_mappings_mix_a_qa_file_with_plain_text(tmp_path):
    """Issue #32: one --fields mapping for every corpus kept a Q&A file from mixing with a .txt corpus;
    SPEC:mapping entries (separated by ';') map each corpus alone, a bare mapping every other one."""
    import json

    from cola_core.corpora.fields import corpus_mappings, fields_for
    from cola_core.curation.stage1 import build_pool

    gsm, notes = tmp_path / "gsm.jsonl", tmp_path / "notes.txt"
    gsm.write_text(
        "".join(json.dumps({"q": f"Tom has {i} pens. How many?", "a": f"#### {i}"}) + "\n" for i in range(10))
    )
    notes.write_text("\n\n".join(f"A plain paragraph {i} about rivers." for i in range(10)))
    spec = f"{gsm}:question=q,answer=a;hf:gsm8k:main:question=question,answer=answer;question=Q,answer=A"
    assert corpus_mappings(spec) == {
        str(gsm): "question=q,answer=a",
        "hf:gsm8k:main": "question=question,answer=answer",
        None: "question=Q,answer=A",
    }
    assert (
        fields_for(spec, "other.csv") == "question=Q,answer=A"
        and fields_for(f"{gsm}:question=q,answer=a", str(notes)) is None
    )
    pool, got = build_pool({str(gsm): 5, str(notes): 5}, fields=f"{gsm}:question=q,answer=a", seed=0)
    assert got == {str(gsm): 5, str(notes): 5}
    assert all(r.meta["question"].startswith("Tom has") for r in pool[:5]) and all(
        "question" not in r.meta for r in pool[5:]
    )
    with pytest.raises(ColaError, match="twice"):
        corpus_mappings("question=q,answer=a;question=x,answer=y")
    with pytest.raises(ColaError, match="unknown key"):
        corpus_mappings(f"{gsm}:question=q,answer=a,hint=h")


def test_stage1_scores_a_mapped_qa_file_as_math(tmp_path):
    """A user's GSM8K-shaped file, mapped with --fields, is scored in Stage 1 as rendered Q&A text:
    against the math probes it beats generic prose (issue #32: it got 0% of a targeted-math mix)."""
    import json

    from cola_core.curation.config import CurateConfig
    from cola_core.curation.stage1 import score_corpora
    from cola_core.models.loading import load_model

    path = tmp_path / "gsm.jsonl"
    rows = [
        {
            "q": f"Tom has {i} pens and buys {i + 2} more. How many pens?",
            "a": f"{i} + {i + 2} = {2 * i + 2}\n#### {2 * i + 2}",
        }
        for i in range(40)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = CurateConfig(corpora=(str(path), "prose"), capabilities=("math",), fields=f"{path}:question=q,answer=a")
    table = score_corpora(load_model("cola-tiny"), list(config.corpora), ["math"], config, per_corpus=30)
    scores = dict(zip(table["corpus"], table["score"], strict=True))
    assert scores[str(path)] > scores["prose"]
