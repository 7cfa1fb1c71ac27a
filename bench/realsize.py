"""The whole path on a model of Qwen2.5-0.5B's exact shape (random weights; 24 layers, hidden 896,
MLP 4864, 14 query / 2 key-value heads, vocabulary 151,936, tied embeddings: 494M parameters), as a
user runs it: each step is the CLI in a fresh process, timed, with its peak resident memory (the
kernel's ``ru_maxrss`` of that child alone) ÷ the model's size in the run's dtype.

A bare forward pass (one batch of 16 × 128 tokens, in process) gives the model's raw speed; each step
is also stated as a number of such forwards, so a user can project a step's cost on their own model
from a single timed forward of it. The tokenizer is cola-tiny's (ids < 1,024): cost depends on the
model's shape, not on which tokens it reads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import description

QWEN25_05B = {
    "vocab_size": 151_936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32_768,
    "tie_word_embeddings": True,
    "rope_theta": 1_000_000.0,
}
FORWARD = (16, 128)  # the bare forward: rows × tokens
# each compression method as a user runs it, after the curate and evaluate steps
COMPRESS = {
    "compress wanda 2:4": ["--method", "wanda", "--pattern", "2:4"],
    "compress sparsegpt 50%": ["--method", "sparsegpt", "--sparsity", "0.5"],
    "compress gptq 4-bit g128": ["--method", "gptq", "--bits", "4", "--group-size", "128"],
    "compress awq 4-bit g128": ["--method", "awq", "--bits", "4", "--group-size", "128"],
}


def make_model(folder: Path, shape: dict = QWEN25_05B, layers: int | None = None, dtype: str = "float32") -> Path:
    """A random model of ``shape`` saved in ``dtype`` (as checkpoints ship: bf16 for bf16 runs) with
    cola-tiny's tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    from cola_core.models.loading import BUILTIN_MODELS

    torch.manual_seed(0)
    cfg = Qwen2Config(**{**shape, **({"num_hidden_layers": layers} if layers else {})})
    AutoModelForCausalLM.from_config(cfg).to(getattr(torch, dtype)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(BUILTIN_MODELS["cola-tiny"]).save_pretrained(folder)
    return folder


_WRAP = """
import os, resource, subprocess, sys, time, json
t = time.perf_counter()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
_, status, usage = os.wait4(p.pid, 0)
seconds = time.perf_counter() - t
err = p.stderr.read().decode()[-3000:]
print(json.dumps({"seconds": seconds, "peak": usage.ru_maxrss * 1024, "status": status, "err": err}))
"""


def _step(argv: list[str], env: dict[str, str]) -> dict:
    """Time one CLI invocation and read its own peak RSS (wait4 on that process alone)."""
    out = subprocess.run([sys.executable, "-c", _WRAP, *argv], capture_output=True, text=True, env=env, check=True)
    m = json.loads(out.stdout.strip().splitlines()[-1])
    if m["status"]:
        raise RuntimeError(f"{' '.join(argv[2:5])} … failed:\n{m['err']}")
    return m


_FORWARD = """
import json, sys, time, torch
from cola_core.models.loading import load_model
loaded = load_model(sys.argv[1], device=sys.argv[2], dtype=sys.argv[3])
rows, length = {rows}, {length}
ids = torch.randint(3, 1024, (rows, length), device=loaded.model.device)
with torch.inference_mode():
    loaded.model.base_model(input_ids=ids)  # warm-up
    best = float("inf")
    for _ in range(3):
        if ids.is_cuda: torch.cuda.synchronize()
        t = time.perf_counter()
        loaded.model.base_model(input_ids=ids)
        if ids.is_cuda: torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
size = sum(p.numel() * p.element_size() for p in loaded.model.parameters())
print(json.dumps({{"forward_s": best, "model_bytes": size, "dtype": str(loaded.dtype)}}))
"""


def run(
    dtypes: tuple[str, ...] = ("float32", "bfloat16"),
    device: str = "cpu",
    layers: int | None = None,
    pool: int = 120,
    n: int = 16,
    seqlen: int = 128,
    limit: int = 20,
    root: Path | None = None,
    label: str = "after",
    only: tuple[str, ...] = (),
    shape: dict = QWEN25_05B,
) -> list[dict]:
    """Every step of the path on the real-size shape (or ``shape``, for a smoke run), once per dtype. ``root``: run another checkout's
    CLI (an older commit, for a before/after; it must accept the same flags, ``--dtype`` aside).
    ``only``: the steps whose names start with one of these; without the curate step, the compress
    steps read ``n`` built-in prose texts instead of its selection (their cost depends on the token
    count, not on which texts)."""
    import torch

    machine = f"{os.cpu_count()} cores, {torch.get_num_threads()} torch threads, {device}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    if root is not None:
        env["PYTHONPATH"] = str(root)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env["COLA_CACHE_DIR"] = str(tmp / "cache")
        cli = [sys.executable, "-m", "cola_core"]
        for dtype in dtypes:
            model = str(make_model(tmp / f"model-{dtype}", shape, layers=layers, dtype=dtype))
            common = ["--model", model, "--device", device, *(["--dtype", dtype] if root is None else [])]
            code = _FORWARD.format(rows=FORWARD[0], length=FORWARD[1])
            fwd = subprocess.run(
                [sys.executable, "-c", code, model, device, dtype],
                capture_output=True,
                text=True,
                env={k: v for k, v in env.items() if k != "PYTHONPATH"},  # the current code
                check=True,
            )
            base = json.loads(fwd.stdout.strip().splitlines()[-1])
            calib = str(tmp / f"calib-{dtype}.jsonl")
            steps = {
                "load": [
                    sys.executable,
                    "-c",
                    "try:\n    from cola_core.models.loading import load_model\n"
                    "except ImportError:  # an older checkout\n    from cola_core.models import load_model\n"
                    f"load_model({model!r}, device={device!r}, dtype={dtype!r})",
                ],
                f"curate (pool {pool}, n {n}, seqlen {seqlen}, cola)": [
                    *cli,
                    "curate",
                    *common,
                    "--pool-size",
                    str(pool),
                    "--n",
                    str(n),
                    "--seqlen",
                    str(seqlen),
                    "--strategy",
                    "cola",
                    "--out",
                    calib,
                    "--json",
                ],
                f"evaluate lm,math (limit {limit})": [
                    *cli,
                    "evaluate",
                    *common,
                    "--capabilities",
                    "lm,math",
                    "--limit",
                    str(limit),
                ],
            }
            for i, (name, flags) in enumerate(COMPRESS.items()):
                steps[name] = [*cli, "compress", *common, "--calib", calib, *flags, "--out", str(tmp / f"out-{i}")]
            if only:
                steps = {k: v for k, v in steps.items() if k.startswith(only)}
                if not any(k.startswith("curate") for k in steps):
                    from cola_core.corpora import load_records

                    texts = [r.text for r in load_records("prose", "pool", limit=n)]
                    Path(calib).write_text(
                        "".join(
                            json.dumps({"id": f"p{i}", "text": t, "corpus": "prose", "domain": "prose"}) + "\n"
                            for i, t in enumerate(texts)
                        )
                    )
            for name, argv in steps.items():
                m = _step(argv, env)
                row = {
                    "machine": machine,
                    "step": name,
                    "code": label,
                    "dtype": dtype,
                    "device": device,
                    "seconds": m["seconds"],
                    "peak_gb": m["peak"] / 1e9,
                    "model_gb": base["model_bytes"] / 1e9,
                    "peak_vs_model": m["peak"] / base["model_bytes"],
                    "forwards": m["seconds"] / base["forward_s"],
                    "forward_s": base["forward_s"],
                    "forward_tokens_per_s": FORWARD[0] * FORWARD[1] / base["forward_s"],
                }
                rows.append(row)
                print(row, flush=True)
    return rows


def to_markdown(rows: list[dict]) -> str:
    machines = sorted({r.get("machine", "?") for r in rows})
    lines = [
        f"Measured on: {'; '.join(machines)}. `python -m bench.realsize` (add `--root OLD_CHECKOUT --label before` "
        "for the code before a change).",
        "",
        "| step | code | dtype | wall time | peak RSS | peak RSS ÷ model size | = bare forwards of 16 × 128 tokens "
        "(one took) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['step']} | {r.get('code', 'after')} | {r['dtype']} | {r['seconds']:.0f} s | {r['peak_gb']:.2f} GB | "
            f"{r['peak_vs_model']:.2f}× | {r['forwards']:.0f} ({r['forward_s']:.1f} s) |"
        )
    seen = {}
    for r in rows:  # each run's bare forward, on the current code: steps re-run apart carry their own
        seen.setdefault((r["dtype"], round(r["forward_s"], 2)), r)
    lines.append("")
    lines.append(
        "Bare forward (16 × 128 tokens, in process, best of 3): "
        + "; ".join(
            f"{d}: {r['forward_s']:.2f} s, {r['forward_tokens_per_s']:,.0f} tokens/s, model {r['model_gb']:.2f} GB"
            for (d, _), r in seen.items()
        )
        + "."
    )
    return "\n".join(lines)


def main() -> None:
    """Run the section and merge its rows into bench/results.json (rows of the same code label and
    dtype are replaced), then re-render bench/results.md."""
    import argparse

    from bench import run as bench_run

    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated dtypes to run")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--root", type=Path, default=None, help="another checkout whose CLI to run (a before)")
    parser.add_argument("--label", default="after", help="the code's label in the table")
    parser.add_argument("--layers", type=int, default=None, help="fewer layers than the real shape (a smoke run)")
    parser.add_argument("--only", default="", help="comma-separated step-name prefixes to re-run (e.g. compress)")
    args = parser.parse_args()
    dtypes = tuple(d for d in args.dtypes.split(",") if d)
    only = tuple(x for x in args.only.split(",") if x)
    rows = run(dtypes, args.device, args.layers, root=args.root, label=args.label, only=only)
    path = bench_run.HERE / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    fresh = {(r["code"], r["dtype"], r["step"]) for r in rows}
    kept = [
        r
        for r in results.get("realsize", [])
        if (r.get("code", "after"), r["dtype"], r["step"]) not in fresh
        and (only or (r.get("code", "after"), r["dtype"]) not in {(args.label, d) for d in dtypes})
    ]
    results["realsize"] = kept + rows
    bench_run.write_whole(path, json.dumps(results, indent=2) + "\n")
    (bench_run.HERE / "results.md").write_text(bench_run.render(results))
    print(to_markdown(results["realsize"]))


if __name__ == "__main__":
    main()
