"""Bad input through the CLI: each case exits 2 with one line that names the input and what to do,
and nothing already saved is damaged (an existing output file stays byte-identical).

Runs `cola_core.cli.main` in-process (the same code path as `python -m cola_core`, without paying a
Python start per case); `tests/test_cli.py` checks the real subprocess contract.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM

from cola_core.cli.main import main
from cola_core.storage import cache_store as cache_store
from tests.conftest import make_config

SENTINEL = "keep me\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_tokenizer):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.jsonl").write_text("")
    (d / "blank.txt").write_text("   \n\n\t\n")
    (d / "latin1.txt").write_bytes("caf\xe9 au lait\n\nsecond".encode("latin-1"))
    (d / "broken.jsonl").write_text('{"text": "fine"}\n{"text": oops}\n')
    (d / "notext.csv").write_text("title,body\na,b\n")
    (d / "three.jsonl").write_text(
        "".join(json.dumps({"text": f"sample number {i} with some words"}) + "\n" for i in range(3))
    )
    (d / "notamodel").mkdir()
    (d / "notamodel" / "README.md").write_text("hello")
    (d / "corrupt.sqlite").write_bytes(b"this is not a database" * 100)
    save_file(
        {"input_ids": torch.full((2, 8), 5000), "attention_mask": torch.ones(2, 8, dtype=torch.long)},
        str(d / "foreign.safetensors"),
    )
    (d / "calib.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "id": f"c/{i}",
                    "text": f"The town of Lemal lies in Quenor {i}.",
                    "corpus": "c",
                    "domain": "facts",
                    "meta": {},
                }
            )
            + "\n"
            for i in range(4)
        )
    )
    torch.manual_seed(0)
    nan_model = AutoModelForCausalLM.from_config(make_config("llama", len(tiny_tokenizer)))
    with torch.no_grad():
        for p in nan_model.parameters():
            p.fill_(float("nan"))
    nan_model.save_pretrained(d / "nanmodel")
    tiny_tokenizer.save_pretrained(d / "nanmodel")
    (d / "out.jsonl").write_text(SENTINEL)
    (d / "outdir").mkdir()
    (d / "outdir" / "keep.txt").write_text(SENTINEL)
    return d


def _cases():
    curate = [
        "curate",
        "--model",
        "cola-tiny",
        "--corpora",
        "math,facts",
        "--pool-size",
        "60",
        "--n",
        "8",
        "--seqlen",
        "64",
    ]
    compress = ["compress", "--model", "cola-tiny", "--calib", "{d}/calib.jsonl", "--out", "{d}/outdir/new"]
    return [
        ("unknown model", ["evaluate", "--model", "no-such-model-anywhere"], "no-such-model-anywhere"),
        ("directory that is not a model", ["evaluate", "--model", "{d}/notamodel"], "notamodel"),
        ("unknown corpus", ["sample", "--corpus", "nope"], "unknown corpus 'nope'"),
        ("empty corpus file", ["sample", "--corpus", "{d}/empty.jsonl"], "empty.jsonl"),
        ("corpus of only whitespace", ["sample", "--corpus", "{d}/blank.txt"], "blank.txt"),
        ("non-UTF-8 file", ["sample", "--corpus", "{d}/latin1.txt"], "UTF-8"),
        ("malformed JSONL line", ["sample", "--corpus", "{d}/broken.jsonl"], "line 2"),
        ("CSV without the text column", ["sample", "--corpus", "{d}/notext.csv"], "text"),
        (
            "corpus smaller than n",
            [*curate[:4], "{d}/three.jsonl", "--pool-size", "3", "--n", "8", "--out", "{d}/out.jsonl"],
            "8",
        ),
        ("n ≤ 0", [*curate, "--n", "0", "--out", "{d}/out.jsonl"], "positive"),
        ("sequence length ≤ 0", [*curate, "--seqlen", "0", "--out", "{d}/out.jsonl"], "sequence length"),
        ("sequence length above the context", [*curate, "--seqlen", "100000", "--out", "{d}/out.jsonl"], "context"),
        ("λ outside [0, 1]", [*curate, "--strategy", "tradeoff", "--lam", "1.5", "--out", "{d}/out.jsonl"], "1.5"),
        ("unknown layer index", [*curate, "--layers", "99", "--out", "{d}/out.jsonl"], "99"),
        ("unknown strategy", [*curate, "--strategy", "best", "--out", "{d}/out.jsonl"], "best"),
        ("unknown pooling", [*curate, "--pooling", "max", "--out", "{d}/out.jsonl"], "max"),
        ("sparsity outside [0, 1)", [*compress, "--method", "wanda", "--sparsity", "1.0"], "sparsity"),
        ("N:M with N ≥ M", [*compress, "--method", "wanda", "--pattern", "4:4"], "4:4"),
        ("M not dividing the width", [*compress, "--method", "wanda", "--pattern", "2:3"], "M=3"),
        ("bits outside 2..8", [*compress, "--method", "gptq", "--bits", "9"], "2..8"),
        ("group size not dividing the width", [*compress, "--method", "gptq", "--group-size", "7"], "group size 7"),
        ("unknown method", [*compress, "--method", "prune-harder"], "prune-harder"),
        (
            "calibration from another tokenizer",
            [*compress[:4], "{d}/foreign.safetensors", "--out", "{d}/outdir/new", "--method", "wanda"],
            "vocabulary",
        ),
        (
            "missing calibration file",
            [*compress[:4], "{d}/nothere.jsonl", "--out", "{d}/outdir/new", "--method", "wanda"],
            "nothere.jsonl",
        ),
        (
            "output folder holding other files",
            [*compress[:6], "{d}/outdir", "--method", "wanda"],
            "not a compressed-model folder",
        ),
        ("corrupted run-store file", ["runs", "--store", "{d}/corrupt.sqlite"], "corrupt.sqlite"),
        ("unknown capability", ["evaluate", "--model", "cola-tiny", "--capabilities", "poetry"], "poetry"),
        ("unknown benchmark", ["evaluate", "--model", "cola-tiny", "--benchmarks", "mmlu"], "mmlu"),
        (
            "model whose forward returns NaN",
            [
                "curate",
                "--model",
                "{d}/nanmodel",
                "--corpora",
                "math",
                "--pool-size",
                "20",
                "--n",
                "4",
                "--seqlen",
                "32",
                "--out",
                "{d}/out.jsonl",
            ],
            "NaN",
        ),
        ("OWL with an N:M pattern", [*compress, "--method", "wanda", "--owl", "--pattern", "2:4"], "OWL"),
        # outputs that cannot be written are found before any work (issue #32)
        ("curate --out under a file", [*curate, "--out", "{d}/out.jsonl/c.jsonl"], "is a file, not a folder"),
        ("curate --out a folder", [*curate, "--out", "{d}/outdir"], "it is a folder"),
        ("compress --out under a file", [*compress[:6], "{d}/out.jsonl/model", "--method", "wanda"], "not a folder"),
        ("self-generate --out under a file", ["self-generate", "--out", "{d}/out.jsonl/s.jsonl"], "not a folder"),
        ("hf: with a file format's name", ["sample", "--corpus", "hf:parquet"], "is a file format, not a dataset"),
        # conflicting flags are refused, not silently resolved (issue #32)
        ("--mix with --no-stage1", [*curate, "--no-stage1", "--mix", "math=1", "--out", "{d}/out.jsonl"], "drop one"),
        (
            "--weights with a targeted deployment",
            [*curate, "--weights", "math=3", "--deployment", "targeted", "--target", "code", "--out", "{d}/out.jsonl"],
            "--weights replaces --deployment",
        ),
        ("a benchmark that cannot run", ["evaluate", "--model", "cola-tiny", "--benchmarks", "gsm8k"], "cannot run"),
    ]


CASES = _cases()


@pytest.mark.parametrize(("name", "argv", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_clear_line_and_damages_nothing(
    name, argv, fragment, files, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path / "cache"))
    code = main([a.format(d=files) for a in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, (name, err)
    errors = [line for line in lines if line.startswith("error: ")]  # other lines: progress ("loading model …")
    assert errors == lines[-1:] and fragment in errors[0] and "Traceback" not in err, (name, err)
    assert (files / "out.jsonl").read_text() == SENTINEL
    assert sorted(p.name for p in (files / "outdir").iterdir()) == ["keep.txt"]


def test_at_least_25_cases():
    assert len(CASES) >= 25


def test_disk_full_while_writing_the_cache(files, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("COLA_CACHE_DIR", str(cache))
    argv = ["curate", "--model", "cola-tiny", "--corpora", "math", "--pool-size", "40", "--n", "4", "--seqlen", "32"]
    assert main([*argv, "--out", str(tmp_path / "first.jsonl")]) == 0  # an entry saved before the disk fills
    saved = sorted(p for p in cache.rglob("*") if p.is_file())

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_store, "save_file", full)
    capsys.readouterr()
    assert main([*argv, "--corpora", "facts", "--out", str(tmp_path / "second.jsonl")]) == 2
    err = capsys.readouterr().err
    assert (
        "No space left on device" in err
        and "COLA_CACHE_DIR" in err
        and err.strip().splitlines()[-1].startswith("error: ")
    )
    assert sorted(p for p in cache.rglob("*") if p.is_file()) == saved  # nothing half-written, nothing lost
    assert not [p for p in cache.rglob(".tmp-*")] and not (tmp_path / "second.jsonl").exists()


def test_corrupted_cache_entry_is_recomputed(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("COLA_CACHE_DIR", str(cache))
    argv = [
        "curate",
        "--model",
        "cola-tiny",
        "--corpora",
        "math",
        "--pool-size",
        "40",
        "--n",
        "4",
        "--seqlen",
        "32",
        "--json",
    ]
    assert main([*argv, "--out", str(tmp_path / "a.jsonl")]) == 0
    first = json.loads(capsys.readouterr().out)
    for f in cache.rglob("arrays.safetensors"):
        data = bytearray(f.read_bytes())
        data[-16:] = b"\xff" * 16
        f.write_bytes(bytes(data))
    assert main([*argv, "--out", str(tmp_path / "b.jsonl")]) == 0
    assert json.loads(capsys.readouterr().out)["representativeness"] == first["representativeness"]


def test_tokenizer_without_pad_token_is_handled(tiny_model_dir, tmp_path, capsys):
    from transformers import AutoTokenizer

    src = Path(tiny_model_dir("gpt2"))
    tok = AutoTokenizer.from_pretrained(src)
    tok.pad_token = None
    model = AutoModelForCausalLM.from_pretrained(src)
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    assert main(["evaluate", "--model", str(tmp_path / "m"), "--capabilities", "lm", "--limit", "4"]) == 0


def test_a_missing_calibration_file_is_said_before_anything_else(files, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLA_CACHE_DIR", str(tmp_path / "cache"))
    argv = ["compress", "--model", "cola-tiny", "--calib", f"{files}/nothere.jsonl", "--method", "wanda"]
    assert main([*argv, "--out", f"{files}/outdir/new"]) == 2
    err = capsys.readouterr().err
    assert "records no length" not in err and "loading model" not in err  # refused before the model loads
    assert err.strip().splitlines() == [
        f"error: calibration file {files}/nothere.jsonl does not exist; curate one first "
        "(python -m cola_core curate --out nothere.jsonl)"
    ]
