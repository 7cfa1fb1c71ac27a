"""Ours against llm-compressor (the peer users compare us with) on the same model, calibration
texts and scheme: whole-process wall time and held-out perplexity, as ratios ours ÷ peer.

llm-compressor pins its own transformers, so it runs in its own virtual environment, never ours:

    python3 -m venv .peer-venv && .peer-venv/bin/pip install torch==2.13.0 && .peer-venv/bin/pip install llmcompressor
    python -m bench.peer --python .peer-venv/bin/python

Both sides run in a fresh process (imports, model load, compression, save of a dense copy); held-out
perplexity is then computed for each output by the same function in one process (this one), on
built-in prose held-out texts neither side calibrated on. Schemes: AWQ 4-bit g128 asym (ours
``--method awq``; theirs ``AWQModifier`` + ``QuantizationModifier("W4A16_ASYM")``) and GPTQ 4-bit g128
asym. Models: cola-tiny (imports dominate) and a random 8-layer 1024-wide Llama (compute dominates).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCHEMES = ("awq", "gptq")

_PEER = """
import json, sys, time
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from llmcompressor import oneshot
from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier
from llmcompressor.modifiers.transform.awq import AWQModifier

# llm-compressor 0.14's AWQ pins cached activations (Tensor.pin_memory), which a CPU-only torch refuses
# ("Cannot access accelerator device"); pinning is only a transfer speed-up, so make it a no-op here.
if not torch.cuda.is_available():
    torch.Tensor.pin_memory = lambda self, *args, **kwargs: self
a = json.loads(sys.argv[1])
model = AutoModelForCausalLM.from_pretrained(a["model"], dtype=torch.float32)
tok = AutoTokenizer.from_pretrained(a["model"])
texts = [json.loads(line)["text"] for line in open(a["calib"])]
ds = Dataset.from_dict({"text": texts})
if a["scheme"] == "awq":
    recipe = [AWQModifier(), QuantizationModifier(targets=["Linear"], ignore=["lm_head"], scheme="W4A16_ASYM")]
else:
    recipe = [GPTQModifier(targets=["Linear"], ignore=["lm_head"], scheme="W4A16_ASYM")]
t = time.perf_counter()
oneshot(model=model, processor=tok, dataset=ds, recipe=recipe, max_seq_length=a["seqlen"],
        num_calibration_samples=len(texts))
seconds = time.perf_counter() - t
model.save_pretrained(a["out"], save_compressed=True)  # AWQ's rounding is applied when saving compressed
tok.save_pretrained(a["out"])
print(json.dumps({"compress_s": seconds}))
"""


def _texts(split: str, n: int) -> list[str]:
    from cola_core.corpora import load_records

    return [r.text for r in load_records("prose", split, limit=n)]


def heldout_perplexity(path: str, texts: list[str], seqlen: int = 128) -> float:
    """exp(mean token NLL) of ``texts`` under the model saved at ``path`` (fp32, CPU). Loads through
    transformers, so a folder holding compressed-tensors weights is decompressed on the way in."""
    from cola_core.evaluation.tasks import perplexity
    from cola_core.models.loading import load_model

    loaded = load_model(path, device="cpu", dtype="float32")
    return perplexity(loaded.model, loaded.tokenizer, texts, seqlen)


def make_models(root: Path) -> dict[str, str]:
    """cola-tiny, and a random 8-layer 1024-wide Llama with cola-tiny's tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from cola_core.models.loading import BUILTIN_MODELS

    tiny = str(BUILTIN_MODELS["cola-tiny"])
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=1024,
        hidden_size=1024,
        intermediate_size=2816,
        num_hidden_layers=8,
        num_attention_heads=16,
        num_key_value_heads=4,
        max_position_embeddings=512,
    )
    wide = root / "llama-8x1024"
    AutoModelForCausalLM.from_config(cfg).save_pretrained(wide)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(wide)
    return {"cola-tiny": tiny, "llama 8 × 1024 (random)": str(wide)}


def _timed(argv: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{argv[:4]} failed:\n{out.stderr[-3000:]}")
    return time.perf_counter() - t, out.stdout


def run(python: str, n: int = 64, seqlen: int = 128, heldout: int = 200, schemes=SCHEMES) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        calib = root / "calib.jsonl"
        records = [
            {"id": f"prose-{i}", "text": t, "corpus": "prose", "domain": "prose"}
            for i, t in enumerate(_texts("pool", n))
        ]
        calib.write_text("".join(json.dumps(r) + "\n" for r in records))
        held = _texts("heldout", heldout)
        for label, model in make_models(root).items():
            dense = heldout_perplexity(model, held, seqlen)
            for scheme in schemes:
                ours_dir, peer_dir = root / f"ours-{scheme}", root / f"peer-{scheme}"
                ours_s, out = _timed(
                    [
                        sys.executable,
                        "-m",
                        "cola_core",
                        "compress",
                        "--model",
                        model,
                        "--device",
                        "cpu",
                        "--calib",
                        str(calib),
                        "--seqlen",
                        str(seqlen),
                        "--method",
                        scheme,
                        "--bits",
                        "4",
                        "--group-size",
                        "128",
                        "--asym",
                        "--out",
                        str(ours_dir),
                        "--json",
                    ]
                )
                ours_compress = json.loads(out)["seconds"]
                args = {"model": model, "calib": str(calib), "scheme": scheme, "seqlen": seqlen, "out": str(peer_dir)}
                peer_s, out = _timed([python, "-c", _PEER, json.dumps(args)])
                peer_compress = json.loads(out.strip().splitlines()[-1])["compress_s"]
                ours_ppl = heldout_perplexity(str(ours_dir), held, seqlen)
                peer_ppl = heldout_perplexity(str(peer_dir), held, seqlen)
                row = {
                    "model": label,
                    "scheme": f"{scheme} 4-bit g128 asym",
                    "calibration": f"{n} × {seqlen}",
                    "dense_ppl": dense,
                    "ours_s": ours_s,
                    "peer_s": peer_s,
                    "ours_compress_s": ours_compress,
                    "peer_compress_s": peer_compress,
                    "ours_ppl": ours_ppl,
                    "peer_ppl": peer_ppl,
                    "time_ratio": ours_s / peer_s,
                    "ppl_ratio": ours_ppl / peer_ppl if math.isfinite(peer_ppl) else float("nan"),
                }
                rows.append(row)
                print(row, flush=True)
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| model | scheme | calibration | dense ppl | ours: process (compress) | llm-compressor: process (oneshot) | "
        "time ours ÷ peer (goal ≤ 1.0) | ppl ours / peer | ppl ratio (goal ≤ 1.0) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['scheme']} | {r['calibration']} | {r['dense_ppl']:.2f} | "
            f"{r['ours_s']:.1f} s ({r['ours_compress_s']:.1f} s) | {r['peer_s']:.1f} s ({r['peer_compress_s']:.1f} s) | "
            f"{r['time_ratio']:.2f}× | {r['ours_ppl']:.2f} / {r['peer_ppl']:.2f} | {r['ppl_ratio']:.3f}× |"
        )
    return "\n".join(lines)


def main() -> None:
    import argparse

    from bench import run as bench_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", required=True, help="the peer venv's python (llm-compressor installed)")
    parser.add_argument("--schemes", default=",".join(SCHEMES), help="comma-separated: awq, gptq")
    args = parser.parse_args()
    rows = run(args.python, schemes=tuple(s for s in args.schemes.split(",") if s))
    path = bench_run.HERE / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results["peer"] = rows
    path.write_text(json.dumps(results, indent=2) + "\n")
    (bench_run.HERE / "results.md").write_text(bench_run.render(results))
    print(to_markdown(rows))


if __name__ == "__main__":
    main()
