"""Ours against llm-compressor (the peer users compare us with) on the same model, calibration
texts and scheme: whole-process wall time, held-out perplexity and first-layer output error, as
ratios ours ÷ peer.

llm-compressor pins its own transformers, so it runs in its own virtual environment, never ours:

    python3 -m venv .peer-venv && .peer-venv/bin/pip install torch==2.13.0 && .peer-venv/bin/pip install llmcompressor==0.14.0.1
    python -m bench.peer --python .peer-venv/bin/python [--methods wanda,sparsegpt,gptq,awq] [--models tiny,wide,moe] [--repeats 3] [--peer-seeds 1] [--device cpu|cuda]

Both sides run in a fresh process (imports, model load, compression, save), taking turns, each
``--repeats`` times (3) where a run takes under two minutes, the fastest run counted; quality is then computed
for each output by the same functions in one process (this one), on built-in prose held-out texts
neither side calibrated on: perplexity; the mean per-token KL divergence of the compressed model's
next-token distribution from the dense model's (fidelity: on a random model perplexity moves either way
by chance); and the first decoder layer's output error ‖y − y_dense‖² / ‖y_dense‖² on the held-out
tokens — each model with its own weights, so AWQ's scales folded into the layer's norm count as they
should (bench/peer_quality.py). The perplexity and KL ratios carry 95% paired bootstrap intervals
over the held-out texts. Methods: Wanda 50% and SparseGPT 50% (theirs
``WandaPruningModifier`` / ``SparseGPTModifier``, lm_head ignored on both sides), GPTQ 4-bit g128 asym
(``GPTQModifier`` W4A16_ASYM) and AWQ 4-bit g128 asym (``AWQModifier`` + ``QuantizationModifier``).
llm-compressor's ``oneshot`` shuffles the calibration samples (its default), from torch's generator,
which a process seeds at random, so its output changes from run to run; each of its runs here is
seeded, the k-th with k mod ``--peer-seeds``, and with more than one seed the peer's quality is the mean
over its orders, per text, so the intervals stay over the texts and its spread over orders is shown
beside it. ``--device cuda`` compresses on the GPU on both sides, in fp32 as on the CPU (llm-compressor takes
one whenever it sees one; on ``cpu`` it is shown none), quality still scored on the CPU; each row names
its device. Models: cola-tiny (imports dominate), a random 8-layer 1024-wide Llama (compute dominates) and a
random Qwen3-MoE (every expert compressed by both sides, by all four methods; quantized on a
symmetric grid, see the note under ``OURS``). Rows of pairs not re-run are kept, so ``--models``/``--methods`` refresh part of the
table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import description, replaced
from bench.inputs import MODELS, MOE_LABEL, WIDE_LABEL, bench_inputs
from bench.peer_quality import Dense, compare, heldout_perplexity

PEER_VENV = (
    "python3 -m venv .peer-venv && .peer-venv/bin/pip install torch==2.13.0 "
    "&& .peer-venv/bin/pip install llmcompressor==0.14.0.1"
)
METHODS = ("wanda", "sparsegpt", "gptq", "awq")
LABELS = {"wanda": "Wanda 50%", "sparsegpt": "SparseGPT 50%", "gptq": "GPTQ 4-bit g128", "awq": "AWQ 4-bit g128"}
OURS = {
    "wanda": ["--method", "wanda", "--sparsity", "0.5"],
    "sparsegpt": ["--method", "sparsegpt", "--sparsity", "0.5"],
    "gptq": ["--method", "gptq", "--bits", "4", "--group-size", "128"],
    "awq": ["--method", "awq", "--bits", "4", "--group-size", "128"],
}
# A mixture-of-experts model is quantized on a symmetric grid by both sides: transformers 5.23 drops
# packed experts' zero points when it loads a compressed-tensors checkpoint (docs/compression.md), so
# an asymmetric MoE checkpoint could not be scored.

# Each side's process runs ``--repeats`` times, the two taking turns, and the fastest run counts, as
# for every figure of bench.run; a pair whose single run takes two minutes or more runs once — the
# machine's noise (about ±1.5 s a run on 2 cores) is a small share of it.
REPEAT_BELOW_S = 120.0

_PEER = """
import json, sys, time
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from llmcompressor import oneshot
from llmcompressor.modifiers.pruning import WandaPruningModifier
from llmcompressor.modifiers.pruning.sparsegpt import SparseGPTModifier
from llmcompressor.modifiers.quantization import GPTQModifier, QuantizationModifier
from llmcompressor.modifiers.transform.awq import AWQModifier

# llm-compressor 0.14's AWQ pins cached activations (Tensor.pin_memory), which a CPU-only torch refuses
# ("Cannot access accelerator device"); pinning is only a transfer speed-up, so make it a no-op here.
if not torch.cuda.is_available():
    torch.Tensor.pin_memory = lambda self, *args, **kwargs: self
a = json.loads(sys.argv[1])
# oneshot shuffles the calibration samples by default, drawing on torch's generator, which a process
# seeds at random: seeded, a run is reproducible and the order is the run's seed.
torch.manual_seed(a["seed"])
model = AutoModelForCausalLM.from_pretrained(a["model"], dtype=torch.float32)
tok = AutoTokenizer.from_pretrained(a["model"])
texts = [json.loads(line)["text"] for line in open(a["calib"])]
ds = Dataset.from_dict({"text": texts})
recipe = {
    "wanda": lambda: WandaPruningModifier(sparsity=0.5, targets=["Linear"], ignore=["re:.*lm_head", "re:.*mlp.gate$"]),
    "sparsegpt": lambda: SparseGPTModifier(sparsity=0.5, targets=["Linear"], ignore=["re:.*lm_head", "re:.*mlp.gate$"]),
    "gptq": lambda: [GPTQModifier(targets=["Linear"], ignore=["lm_head", "re:.*mlp.gate$"], scheme=a["scheme"])],
    "awq": lambda: [AWQModifier(), QuantizationModifier(targets=["Linear"], ignore=["lm_head", "re:.*mlp.gate$"], scheme=a["scheme"])],
}[a["method"]]()
t = time.perf_counter()
oneshot(model=model, processor=tok, dataset=ds, recipe=recipe, max_seq_length=a["seqlen"],
        num_calibration_samples=len(texts))
seconds = time.perf_counter() - t
model.save_pretrained(a["out"], save_compressed=a["method"] in ("gptq", "awq"))  # AWQ rounds when saving compressed
tok.save_pretrained(a["out"])
print(json.dumps({"compress_s": seconds}))
"""


def compress_command(
    model: str, calib: Path, seqlen: int, flags: list[str], out: Path | str, device: str = "cpu"
) -> list[str]:
    """Our whole-process command: ``cola_core compress`` on ``device`` in fp32 (as the peer loads the
    model; ``auto`` would take bf16 on a GPU) with ``flags``, JSON out."""
    cli = [sys.executable, "-m", "cola_core", "compress", "--model", model, "--device", device, "--dtype", "float32"]
    return [*cli, "--calib", str(calib), "--seqlen", str(seqlen), *flags, "--out", str(out), "--json"]


def chosen(parser, value: str, known: tuple[str, ...], flag: str) -> tuple[str, ...]:
    """The comma-separated names of ``value``, or the parser's one-line error (exit 2) when one is
    unknown or none is given."""
    given = tuple(m for m in value.split(",") if m)
    unknown = sorted(set(given) - set(known))
    if unknown or not given:
        parser.error(f"{flag}: choose from {', '.join(known)}, got '{','.join(unknown or given)}'")
    return given


def peer_problem(python: str) -> str | None:
    """Why ``python`` cannot run the peer (no such interpreter, or llm-compressor not importable
    there), or None: checked before any model is built."""
    try:
        out = subprocess.run([python, "-c", "import llmcompressor"], capture_output=True, text=True)
    except OSError as err:
        return f"cannot run it ({err.strerror})"
    if out.returncode:
        return "llm-compressor is not importable there"
    return None


def device_name(device: str) -> str:
    """Where a row's processes ran, as its table states it: the GPU's name, or the CPU cores this
    process may use (a container's share, not the host's count)."""
    import torch

    return torch.cuda.get_device_name() if device == "cuda" else f"CPU, {len(os.sched_getaffinity(0))} cores"


def _timed(argv: list[str], env: dict | None = None) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"{argv[:4]} failed:\n{out.stderr[-3000:]}")
    return time.perf_counter() - t, out.stdout


def _peer(python: str, args: dict, seed: int, device: str) -> tuple[float, float]:
    """One whole process of the peer calibrating in the order of ``seed``, saved to ``<out>-s<seed>``:
    (process seconds, oneshot seconds). llm-compressor takes a GPU whenever one is visible, so on
    ``device`` cpu none is."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""} if device == "cpu" else None
    argv = [python, "-c", _PEER, json.dumps({**args, "seed": seed, "out": f"{args['out']}-s{seed}"})]
    seconds, out = _timed(argv, env)
    return seconds, json.loads(out.strip().splitlines()[-1])["compress_s"]


def run(
    python: str,
    n: int = 64,
    seqlen: int = 128,
    heldout: int = 200,
    methods: tuple[str, ...] = METHODS,
    models: tuple[str, ...] = MODELS,
    repeats: int = 3,
    peer_seeds: int = 1,
    device: str = "cpu",
    on_row: Callable[[dict], None] = lambda row: None,
) -> list[dict]:
    rows, where = [], device_name(device)
    with bench_inputs(n, heldout, models) as (root, calib, held, built):
        for label, model in built.items():
            dense_ppl = heldout_perplexity(model, held, seqlen).score
            dense = Dense(model, held, seqlen)
            moe = label == MOE_LABEL
            for method in methods:
                ours_dir, peer_dir = root / f"ours-{method}", root / f"peer-{method}"
                grid = [] if OURS[method][1] in ("wanda", "sparsegpt") else ["--sym" if moe else "--asym"]
                cli = compress_command(model, calib, seqlen, [*OURS[method], *grid], ours_dir, device)
                args = {"model": model, "calib": str(calib), "method": method, "seqlen": seqlen, "out": str(peer_dir)}
                args["scheme"] = "W4A16" if moe else "W4A16_ASYM"
                ours, peer = [], []  # (process seconds, compress seconds) of each run, the two taking turns
                while not ours or (len(ours) < repeats and max(ours[0][0], peer[0][0]) < REPEAT_BELOW_S):
                    seconds, out = _timed(cli)
                    ours.append((seconds, json.loads(out)["seconds"]))
                    peer.append(_peer(python, args, len(peer) % peer_seeds, device))
                while len(peer) < peer_seeds:  # every seed once, whatever the repeats
                    peer.append(_peer(python, args, len(peer), device))
                (ours_s, ours_compress), (peer_s, peer_compress) = min(ours), min(peer)
                q = compare(str(ours_dir), [f"{peer_dir}-s{seed}" for seed in range(peer_seeds)], dense)
                (ratio, lo, hi), (kl_ratio, kl_lo, kl_hi) = q["ppl_ratio"], q["kl_ratio"]
                ours_err, peer_err = q["error"]
                row = {
                    "model": label,
                    "device": where,
                    "method": LABELS[method] + ("" if not grid else " sym" if moe else " asym"),
                    "calibration": f"{n} × {seqlen}",
                    "runs": len(ours),
                    "dense_ppl": dense_ppl,
                    "ours_s": ours_s,
                    "peer_s": peer_s,
                    "ours_compress_s": ours_compress,
                    "peer_compress_s": peer_compress,
                    "ours_ppl": q["ppl"][0].score,
                    "peer_ppl": q["ppl"][1].score,
                    "peer_ppl_each": q["each"],
                    "ours_kl": q["kl"][0],
                    "peer_kl": q["kl"][1],
                    "kl_ratio": kl_ratio,
                    "kl_ratio_ci": [kl_lo, kl_hi],
                    "ours_error": ours_err,
                    "peer_error": peer_err,
                    "time_ratio": ours_s / peer_s,
                    "ppl_ratio": ratio,
                    "ppl_ratio_ci": [lo, hi],
                    "error_ratio": ours_err / peer_err if peer_err > 0 else float("nan"),
                }
                rows.append(row)
                on_row(row)
                print(row, flush=True)
    return rows


def _interval(ci: list[float] | None) -> str:
    """`` [lo, hi]`` of a stored interval; empty for rows measured before intervals were (none stored)."""
    return "" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def _orders(row: dict) -> str:
    """The peer's perplexity under each calibration order it ran, where it ran more than one (its
    figures in the row are then their mean)."""
    each = row.get("peer_ppl_each", [])
    return f" (mean of {len(each)} orders: {min(each):.2f}–{max(each):.2f})" if len(each) > 1 else ""


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| model | device | method | calibration | dense ppl | runs | ours: process (compress) | "
        "llm-compressor: process (oneshot) | time ours ÷ peer | ppl ours / peer | ppl ratio [95%] | "
        "KL to dense ours / peer | KL ratio [95%] | first-layer error ours / peer | error ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "method" not in r:  # a row of the earlier table (issue #19), before errors were measured
            continue
        ppl_ci, kl_ci = _interval(r.get("ppl_ratio_ci")), _interval(r.get("kl_ratio_ci"))
        kl = f"{r['ours_kl']:.4f} / {r['peer_kl']:.4f} | {r['kl_ratio']:.2f}×{kl_ci}" if "kl_ratio" in r else "– | –"
        lines.append(
            f"| {r['model']} | {r['device']} | {r['method']} | {r['calibration']} | {r['dense_ppl']:.2f} | {r.get('runs', 1)} | "
            f"{r['ours_s']:.1f} s ({r['ours_compress_s']:.1f} s) | {r['peer_s']:.1f} s ({r['peer_compress_s']:.1f} s) | "
            f"{r['time_ratio']:.2f}× | {r['ours_ppl']:.2f} / {r['peer_ppl']:.2f}{_orders(r)} | {r['ppl_ratio']:.3f}×{ppl_ci} | {kl} | "
            f"{r['ours_error']:.4f} / {r['peer_error']:.4f} | {r['error_ratio']:.2f}× |"
        )
    return "\n".join(lines)


def _table_order(row: dict) -> tuple[bool, str, int, int]:
    """Rows by device (the CPU's first), model (cola-tiny, wide, MoE), then method, whichever pairs a
    command re-ran."""
    model = ["cola-tiny", WIDE_LABEL, MOE_LABEL].index(row["model"])
    method = next(i for i, m in enumerate(METHODS) if row["method"].startswith(LABELS[m]))
    return not row["device"].startswith("CPU"), row["device"], model, method


def merged(stored: list[dict], rows: list[dict]) -> list[dict]:
    """The stored table with ``rows`` in place of the same pairs on the same device; the others stay."""
    current = [r for r in stored if "method" in r]  # rows of the earlier table (issue #19) go
    return sorted(replaced(current, rows, lambda r: (r["model"], r["method"], r["device"])), key=_table_order)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def main() -> None:
    import argparse

    from bench import run as bench_run

    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--python", required=True, help="the peer venv's python (llm-compressor installed)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated: {', '.join(METHODS)}")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated: {', '.join(MODELS)}")
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each side, the fastest counted (pairs under two minutes)"
    )
    parser.add_argument(
        "--peer-seeds",
        type=int,
        default=1,
        help="calibration orders the peer runs under (its oneshot shuffles the samples), scored as their mean",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where both sides compress (the peer takes a GPU whenever one is visible, so on cpu none is); "
        "quality is scored on the CPU either way",
    )
    parser.add_argument("--docs", action="store_true", help="also copy the tables into docs/performance.md")
    args = parser.parse_args()
    for flag, value in (("--repeats", args.repeats), ("--peer-seeds", args.peer_seeds)):
        if value < 1:
            parser.error(f"{flag} must be at least 1, got {value}")
    methods = chosen(parser, args.methods, METHODS, "--methods")
    models = chosen(parser, args.models, MODELS, "--models")
    if args.device == "cuda" and not _cuda():
        parser.error("--device cuda: no CUDA GPU is visible here; leave --device out to compare on the CPU")
    problem = peer_problem(args.python)
    if problem:
        parser.error(f"--python {args.python}: {problem}; make the peer's venv: {PEER_VENV}")

    def save(row: dict) -> None:  # each row as it is measured, so a run cut short keeps what it finished
        bench_run.save_section("peer", lambda stored: merged(stored, [row]), args.docs)

    rows = run(
        args.python,
        methods=methods,
        models=models,
        repeats=args.repeats,
        peer_seeds=args.peer_seeds,
        device=args.device,
        on_row=save,
    )
    print(to_markdown(rows))


if __name__ == "__main__":
    main()
