import json

import pytest
import torch

from cola_core.calibration.files import (
    DEFAULT_SEQLEN,
    calibration_seqlen,
    export_all,
    load_calibration,
    load_token_tensor,
)
from cola_core.corpora import load_records
from cola_core.corpora.jsonl import load_jsonl, save_jsonl
from cola_core.curation.processing import ProcessingConfig
from cola_core.errors import ColaError


def test_every_format_round_trips(tmp_path, tiny_tokenizer):
    records = load_records("math", "pool", limit=7)
    paths = export_all(
        records, tiny_tokenizer, 32, tmp_path / "calib.jsonl", {"strategy": "cola", "fingerprint": "f00"}
    )
    assert load_jsonl(paths["jsonl"]) == records
    settings = json.loads((tmp_path / "calib.settings.json").read_text())
    assert settings["strategy"] == "cola"

    from datasets import load_from_disk

    ds = load_from_disk(paths["hf"])
    assert ds["text"] == [r.text for r in records] and json.loads(ds["meta"][0]) == records[0].meta

    tensors = load_token_tensor(paths["tensor"], vocab_size=len(tiny_tokenizer))
    assert tensors["input_ids"].shape == (7, 32) and tensors["input_ids"].dtype == torch.long
    first = tiny_tokenizer(records[0].text, truncation=True, max_length=32)["input_ids"]
    assert tensors["input_ids"][0, : len(first)].tolist() == first
    assert tensors["attention_mask"][0].sum() == len(first)


def test_tensor_from_another_tokenizer_is_refused(tmp_path, tiny_tokenizer):
    paths = export_all(load_records("math", "pool", limit=2), tiny_tokenizer, 16, tmp_path / "c.jsonl", {})
    with pytest.raises(ColaError, match="vocabulary"):
        load_token_tensor(paths["tensor"], vocab_size=32000)


def test_bad_calibration_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n')
    with pytest.raises(ColaError, match="line 1"):
        load_jsonl(bad)


def test_hf_dataset_zip_round_trips(tmp_path):
    import io
    import zipfile

    import datasets

    from cola_core.calibration.files import hf_dataset_zip
    from cola_core.corpora import load_records

    records = load_records("math", "pool", limit=5)
    zipfile.ZipFile(io.BytesIO(hf_dataset_zip(records))).extractall(tmp_path)
    ds = datasets.load_from_disk(str(tmp_path / "calibration"))
    assert ds["id"] == [r.id for r in records] and ds["text"] == [r.text for r in records]


def test_the_length_is_recorded_once_per_file_and_read_in_one_place(tmp_path, tiny_tokenizer):
    records = load_records("math", "pool", limit=3)
    paths = export_all(records, tiny_tokenizer, 24, tmp_path / "c.jsonl", {"strategy": "cola"})
    assert json.loads((tmp_path / "c.settings.json").read_text()) == {"strategy": "cola", "seqlen": 24}
    assert calibration_seqlen(paths["jsonl"]) == calibration_seqlen(paths["tensor"]) == 24
    tensors, _ = load_calibration(paths["jsonl"], tiny_tokenizer)
    assert tensors["input_ids"].shape == (3, 24)
    lines = []
    short, _ = load_calibration(paths["tensor"], tiny_tokenizer, seqlen=8, log=lines.append)
    assert short["input_ids"].shape == (3, 8) and lines == [
        "sequence length 8 truncates the calibration set, curated at 24 tokens per sample"
    ]


def test_old_sidecars_and_unrecorded_sets(tmp_path, tiny_tokenizer):
    records = load_records("math", "pool", limit=2)
    old = save_jsonl(records, tmp_path / "old.jsonl", {"config": {"processing": {"seqlen": 40}}})
    assert calibration_seqlen(old) == 40
    bare = save_jsonl(records, tmp_path / "bare.jsonl")
    assert calibration_seqlen(bare) is None
    lines = []
    tensors, _ = load_calibration(bare, tiny_tokenizer, log=lines.append)
    assert tensors["input_ids"].shape == (2, DEFAULT_SEQLEN) and "records no length" in lines[0]
    assert ProcessingConfig.seqlen == DEFAULT_SEQLEN  # Stage 2's default is the reader's fallback


def test_every_written_file_has_the_usual_mode(tmp_path):
    """Issue #32: safetensors creates its files 0600, so a calibration tensor could not be read by the
    group that reads the .jsonl beside it; every atomic write ends with the mode open() would give."""
    import os
    import stat

    import torch
    from safetensors.torch import save_file

    from cola_core.storage.atomic import FILE_MODE, atomic_write

    path = atomic_write(tmp_path / "x.safetensors", lambda t: save_file({"a": torch.zeros(2)}, str(t)))
    assert stat.S_IMODE(os.stat(path).st_mode) == FILE_MODE == 0o666 & ~_umask()


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
