"""Peak memory of compressing a whole model layer by layer, ÷ the model's size.

Each method runs in a fresh subprocess on a random Llama-shaped model (fp32, CPU): resident memory is
read just before `compress_model` (model and calibration tokens loaded), the kernel's peak counter
(VmHWM) is reset there, and read again after it. On CPU the model already lives in memory, so the figure is the engine's overhead on top of the
model (captured hidden states, statistics / Hessians, one layer's working copies).
"""

from __future__ import annotations

import json
import subprocess
import sys

_CHILD = """
import json, time, torch
from bench.compression import make_model
from bench.memory import hwm_mb, rss_mb
from cola_core.compress import CompressConfig, compress_model

model = make_model({width}, {intermediate}, {heads}, layers={layers})
ids = torch.randint(0, 1024, ({n}, {seqlen}), generator=torch.Generator().manual_seed(0))
model_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
before = rss_mb()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak: model creation's own transient peak must not count
t = time.perf_counter()
compress_model(model, {{"input_ids": ids}}, CompressConfig(method="{method}", device="cpu"))
seconds = time.perf_counter() - t
peak = hwm_mb()
print(json.dumps({{"model_mb": model_mb, "rss_before_mb": before, "peak_mb": peak, "seconds": seconds}}))
"""


_MOE_CHILD = """
import json, time, torch
from transformers import AutoConfig, AutoModelForCausalLM
from cola_core.compress import CompressConfig, compress_model
from bench.memory import hwm_mb, rss_mb

torch.manual_seed(0)
config = AutoConfig.for_model(
    "qwen3_moe", vocab_size=1024, hidden_size={width}, num_hidden_layers={layers}, num_attention_heads=16,
    num_key_value_heads=4, head_dim=64, num_experts={experts}, num_experts_per_tok=8, moe_intermediate_size={intermediate},
)
model = AutoModelForCausalLM.from_config(config).eval()
ids = torch.randint(0, 1024, ({n}, {seqlen}), generator=torch.Generator().manual_seed(0))
model_mb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
before = rss_mb()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
t = time.perf_counter()
result = compress_model(model, {{"input_ids": ids}}, CompressConfig(method="{method}", device="cpu", moe_calibration="{moe}"), keep_codes=False)
seconds = time.perf_counter() - t
fell_back = sum(len(e["all_tokens_for"]) for r in result.layers for e in r["experts"].values())
zeros = [float((p == 0).float().mean()) for n, p in model.named_parameters() if p.dim() == 3]
print(json.dumps({{"model_mb": model_mb, "rss_before_mb": before, "peak_mb": hwm_mb(), "seconds": seconds,
                   "fell_back": fell_back, "expert_zeros_min": min(zeros)}}))
"""


QUANTIZERS = ("rtn", "gptq", "awq")  # their zeros are rounding, not pruning: the column shows –


def rss_mb() -> float:
    import resource

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def hwm_mb() -> float:
    """Peak resident set since the last reset (VmHWM)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def run_moe(
    width: int = 1024,
    intermediate: int = 256,
    experts: int = 64,
    layers: int = 4,
    n: int = 32,
    seqlen: int = 256,
    methods: tuple[str, ...] = ("wanda", "gptq", "awq"),
    moe: tuple[str, ...] = ("routed", "all"),
) -> list[dict]:
    """Peak memory of compressing a random Qwen3-MoE (``experts`` per layer, top 8), each method and
    MoE calibration in a fresh process: every expert's statistics of one layer are held at once (AWQ:
    its search's copy of every expert's gate/up, under the first calibration only, as AWQ searches on
    routed tokens whatever the experts' statistics)."""
    rows = []
    for method in methods:
        for mode in moe if method != "awq" else moe[:1]:
            code = _MOE_CHILD.format(
                width=width,
                intermediate=intermediate,
                experts=experts,
                layers=layers,
                n=n,
                seqlen=seqlen,
                method=method,
                moe=mode,
            )
            model = f"Qwen3-MoE {width} wide, {experts} experts × {intermediate} (top 8), {layers} layers, fp32"
            rows.append(_measure(code, method=method, moe_calibration=mode, model=model, tokens=n * seqlen))
    return rows


def _measure(code: str, **row: object) -> dict:
    """Run one child; its measurements, their ratios to the model's size, and ``row``."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    m = json.loads(out.stdout.strip().splitlines()[-1])
    row |= {
        **m,
        "peak_vs_model": m["peak_mb"] / m["model_mb"],
        "overhead_vs_model": (m["peak_mb"] - m["rss_before_mb"]) / m["model_mb"],
    }
    print(row, flush=True)
    return row


def moe_markdown(rows: list[dict]) -> str:
    lines = [
        "| method | MoE calibration | model | calibration tokens | model size | peak | peak ÷ model | (peak − before) ÷ model | experts that took every token | zeros in the least-pruned expert | time |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['moe_calibration']} | {r['model']} | {r['tokens']:,} | {r['model_mb']:.0f} MB | "
            f"{r['peak_mb']:.0f} MB | {r['peak_vs_model']:.2f} | {r['overhead_vs_model']:.2f} | {r['fell_back']} | "
            f"{'–' if r['method'] in QUANTIZERS else format(r['expert_zeros_min'], '.3f')} | {r['seconds']:.0f} s |"
        )
    return "\n".join(lines)


def run(
    width: int = 1024,
    intermediate: int = 2816,
    heads: int = 16,
    layers: int = 8,
    n: int = 32,
    seqlen: int = 256,
    methods: tuple[str, ...] = ("wanda", "sparsegpt", "gptq"),
) -> list[dict]:
    rows = []
    for method in methods:
        code = _CHILD.format(
            width=width, intermediate=intermediate, heads=heads, layers=layers, n=n, seqlen=seqlen, method=method
        )
        shape = {"layers": layers, "width": width, "intermediate": intermediate}
        rows.append(_measure(code, method=method, **shape, tokens=n * seqlen))
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| method | model | calibration tokens | model size | resident before | peak | peak ÷ model | (peak − before) ÷ model | time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | Llama {r['width']} × {r['intermediate']}, {r['layers']} layers, fp32 | {r['tokens']:,} | "
            f"{r['model_mb']:.0f} MB | {r['rss_before_mb']:.0f} MB | {r['peak_mb']:.0f} MB | {r['peak_vs_model']:.2f} | "
            f"{r['overhead_vs_model']:.2f} | {r['seconds']:.0f} s |"
        )
    return "\n".join(lines)
