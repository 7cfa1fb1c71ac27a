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
import json, resource, time, torch
from bench.compression import make_model
from cola_core.compress import CompressConfig, compress_model

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20

def hwm_mb():  # peak resident set since the last reset (VmHWM)
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024

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
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        m = json.loads(out.stdout.strip().splitlines()[-1])
        row = {
            "method": method,
            "layers": layers,
            "width": width,
            "intermediate": intermediate,
            "tokens": n * seqlen,
            **m,
            "peak_vs_model": m["peak_mb"] / m["model_mb"],
            "overhead_vs_model": (m["peak_mb"] - m["rss_before_mb"]) / m["model_mb"],
        }
        rows.append(row)
        print(row, flush=True)
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
