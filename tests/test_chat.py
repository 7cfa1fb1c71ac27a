"""Calibration and evaluation as a chat model is deployed: through its tokenizer's chat template
(issue #31). The templates are written in this repository (tests/templates): ChatML (Qwen-style, with
a thinking switch) and Llama-3-style (which writes its own BOS)."""

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from cola_core.calibration.files import tokenize_calibration
from cola_core.cli.main import main
from cola_core.corpora import Record
from cola_core.errors import ColaError
from cola_core.models.chat import chat_record, encode, prompt, uses_template
from tests.conftest import make_config

TEMPLATES = Path(__file__).parent / "templates"
SPECIALS = {
    "chatml": ["<|im_start|>", "<|im_end|>", "<think>", "</think>"],
    "llama3": ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
}
QA = Record(
    "m/1", "Question: 2 + 3?\nAnswer: 5", "math", "math", {"question": "2 + 3?", "reasoning": "2 + 3 = 5.", "answer": 5}
)
PROSE = Record("p/1", "The river runs past the mill.", "prose", "general", {})


def chat_tokenizer(tiny_tokenizer, style):
    tok = copy.deepcopy(tiny_tokenizer)
    tok.add_special_tokens({"additional_special_tokens": SPECIALS[style]})
    if style == "llama3":
        tok.bos_token = "<|begin_of_text|>"
    tok.chat_template = (TEMPLATES / f"{style}.jinja").read_text()
    return tok


@pytest.fixture(scope="module")
def chat_model_dir(tmp_path_factory, tiny_tokenizer):
    made = {}

    def make(style):
        if style not in made:
            tok = chat_tokenizer(tiny_tokenizer, style)
            torch.manual_seed(0)
            model = AutoModelForCausalLM.from_config(make_config("llama", len(tok)))
            path = tmp_path_factory.mktemp(f"chat-{style}")
            model.save_pretrained(path)
            tok.save_pretrained(path)
            made[style] = str(path)
        return made[style]

    return make


def test_a_qa_record_becomes_a_user_and_an_assistant_turn(tiny_tokenizer):
    tok = chat_tokenizer(tiny_tokenizer, "chatml")
    out = chat_record(QA, tok, "auto", "auto", "keep")
    assert out.text == "<|im_start|>user\n2 + 3?<|im_end|>\n<|im_start|>assistant\n2 + 3 = 5.\nAnswer: 5<|im_end|>\n"
    assert out.meta["chat_template"] is True
    assert "2 + 3 = 5." not in chat_record(QA, tok, "auto", "auto", "plain").text
    assert chat_record(PROSE, tok, "auto", "auto", "keep") == PROSE  # a document is not a conversation
    wrapped = chat_record(PROSE, tok, "wrap", "auto", "keep").text
    assert wrapped == "<|im_start|>assistant\nThe river runs past the mill.<|im_end|>\n"


def test_modes_and_the_thinking_switch(tiny_tokenizer):
    tok = chat_tokenizer(tiny_tokenizer, "chatml")
    assert uses_template(tok, "auto") and uses_template(tok, "wrap") and not uses_template(tok, "off")
    assert not uses_template(tiny_tokenizer, "auto")
    with pytest.raises(ColaError, match="wrap needs a tokenizer with a chat template"):
        uses_template(tiny_tokenizer, "wrap")
    assert "<think>" in prompt(tok, "q", "off") and "<think>" not in prompt(tok, "q", "on")
    assert prompt(tok, "q") == "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"


def test_a_template_that_writes_its_bos_gets_no_second_one(tiny_tokenizer):
    tok = chat_tokenizer(tiny_tokenizer, "llama3")
    text = chat_record(QA, tok, "auto", "auto", "keep").text
    assert text.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n2 + 3?<|eot_id|>")
    bos = tok.convert_tokens_to_ids("<|begin_of_text|>")
    (ids,) = encode(tok, [text])
    assert ids[0] == bos and ids.count(bos) == 1
    tensors = tokenize_calibration([Record("x", text, "math", "math", {})], tok, 64)
    assert int((tensors["input_ids"][0] == bos).sum()) == 1


@pytest.mark.parametrize("style", ["chatml", "llama3"])
def test_curate_renders_qa_calibration_through_the_template_by_default(style, chat_model_dir, tmp_path, capsys):
    model = chat_model_dir(style)
    marker = SPECIALS[style][1] if style == "llama3" else SPECIALS[style][0]
    argv = ["curate", "--model", model, "--corpora", "math", "--pool-size", "16", "--n", "4", "--seqlen", "64"]
    for mode in ("auto", "off"):
        out = tmp_path / mode / "calib.jsonl"
        assert main([*argv, "--chat-template", mode, "--out", str(out), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)["stage2"]
        stage2 = report["chat_template"]
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        tensors = load_file(str(out.with_suffix(".safetensors")))
        special = AutoTokenizer.from_pretrained(model).convert_tokens_to_ids(marker)
        if mode == "auto":
            assert stage2["template"] and stage2["rendered"] == report["samples_in"] > 0
            assert all(marker in r["text"] for r in rows)
            assert bool((tensors["input_ids"] == special).any(1).all()), "the compressor's tokens carry the template"
        else:
            assert stage2 == {"mode": "off", "template": True, "thinking": "auto", "rendered": 0}
            assert not any(marker in r["text"] for r in rows)
            assert not bool((tensors["input_ids"] == special).any())


def test_evaluate_asks_through_the_template(chat_model_dir, capsys, monkeypatch):
    import cola_core.evaluation.tasks as tasks

    seen = []
    real = tasks.generate
    monkeypatch.setattr(
        tasks, "generate", lambda m, t, prompts, *a, **k: seen.extend(prompts) or real(m, t, prompts, *a, **k)
    )
    argv = ["evaluate", "--model", chat_model_dir("chatml"), "--capabilities", "math", "--limit", "4", "--json"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["chat_template"] is True
    assert all(p.startswith("<|im_start|>user\n") and p.endswith("<|im_start|>assistant\n") for p in seen)
    seen.clear()
    assert main([*argv, "--chat-template", "off"]) == 0
    assert json.loads(capsys.readouterr().out)["chat_template"] is False
    assert all(p.startswith("Question: ") for p in seen)
