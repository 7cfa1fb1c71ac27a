"""Where compression time goes (issue #33, item 1): the whole process of each method on the wide
model, phase by phase, in one process.

The model is the peer bench's compute-bound one (``bench/inputs.py``) — a random 8-layer 1024-wide Llama (2816-wide MLP,
4 KV heads), fp32, saved and loaded back as a user's model would be — calibrated on 64 × 128 tokens of
built-in prose. The engine's own functions are wrapped with timers (nothing in the engine changes):

- load: ``from_pretrained`` of the saved model; imports: a fresh ``python -c`` importing what
  ``compress`` imports (measured once);
- capture: the first layer's inputs for every calibration batch (``capture_layer_inputs``);
- statistics: the replays of each dense layer that collect the linears' input statistics, with the
  accumulation (``layer_statistics``; a layer replayed again for experts under the floor counts here);
- algorithm: the per-matrix method (``compress_linear``: Wanda's ranking, SparseGPT's and GPTQ's
  sweeps, RTN's rounding);
- error: each linear's reconstruction error (``Stats.relative_error``; its denominator is gathered in
  the statistics replay, and SparseGPT's and GPTQ's numerator in their sweeps);
- output replay: the compressed layer run again to give the next layer its inputs (``run_layer``);
- other: the rest of ``compress_model`` — AWQ's scale search and clipping (``prepare``), moving
  layers, the report;
- save: the dense output written (``save_compressed``).

    python -m bench.profile            # prints the table; bench.run --only profile writes it
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

METHODS = ("wanda", "sparsegpt", "gptq", "awq")
PHASES = ("load", "capture", "statistics", "algorithm", "error", "output replay", "other", "save")


@contextmanager
def _timers(spent: dict[str, float]):
    """Wrap the engine's phase functions so each call adds its wall time to ``spent``."""
    from cola_core.compress import engine
    from cola_core.compress.statistics import Stats

    wrapped = {
        (engine, "capture_layer_inputs"): "capture",
        (engine, "layer_statistics"): "statistics",
        (engine, "compress_linear"): "algorithm",
        (Stats, "relative_error"): "error",
        (engine, "run_layer"): "output replay",
    }
    originals = {key: getattr(*key) for key in wrapped}

    def timed(fn, phase):
        def call(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[phase] += time.perf_counter() - t

        return call

    for (owner, name), phase in wrapped.items():
        setattr(owner, name, timed(originals[owner, name], phase))
    try:
        yield
    finally:
        for (owner, name), fn in originals.items():
            setattr(owner, name, fn)


def _imports_seconds() -> float:
    code = "import time; t = time.perf_counter(); import cola_core.compress.run, transformers; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def run(methods: tuple[str, ...] = METHODS, n: int = 64, seqlen: int = 128, layers: int = 8) -> list[dict]:
    import torch
    from transformers import AutoModelForCausalLM

    from bench.compression import make_model
    from bench.inputs import texts
    from cola_core.calibration.files import tokenize_calibration
    from cola_core.compress import CompressConfig, compress_model, save_compressed
    from cola_core.compress.save import build_report
    from cola_core.corpora import Record
    from cola_core.models.loading import load_model

    tokenizer = load_model("cola-tiny").tokenizer
    records = [Record(f"p/{i}", t, "prose", "prose") for i, t in enumerate(texts("pool", n))]
    calibration = tokenize_calibration(records, tokenizer, seqlen)
    imports = _imports_seconds()
    rows = []
    with tempfile.TemporaryDirectory() as root:
        saved = Path(root) / "wide"
        make_model(1024, 2816, 16, kv_heads=4, layers=layers).save_pretrained(saved)
        for method in methods:
            spent: dict[str, float] = defaultdict(float)
            t = time.perf_counter()
            model = AutoModelForCausalLM.from_pretrained(saved, dtype=torch.float32).eval()
            spent["load"] = time.perf_counter() - t
            config = CompressConfig(method=method, bits=4, group_size=128, device="cpu")
            t = time.perf_counter()
            with _timers(spent):
                result = compress_model(model, calibration, config, keep_codes=False)
            compress = time.perf_counter() - t
            spent["other"] = compress - sum(spent[p] for p in PHASES if p not in ("load", "other", "save"))
            t = time.perf_counter()
            report = build_report(result, config, "profile", n, seqlen)
            save_compressed(model, tokenizer, result, report, Path(root) / method)
            spent["save"] = time.perf_counter() - t
            row = {"method": config.short_name, "imports": imports, **{p: spent[p] for p in PHASES}}
            row["total"] = imports + sum(spent[p] for p in PHASES)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def to_markdown(rows: list[dict]) -> str:
    head = "| method | imports | " + " | ".join(PHASES) + " | whole process |"
    lines = [head, "|---|" + "---|" * (len(PHASES) + 2)]
    for r in rows:
        cells = " | ".join(f"{r[p]:.1f} s ({r[p] / r['total']:.0%})" for p in ("imports", *PHASES))
        lines.append(f"| {r['method']} | {cells} | {r['total']:.1f} s |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(to_markdown(run()))
