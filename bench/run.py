"""Run the benchmarks and write bench/results.md and bench/results.json.

    python -m bench.run [--quick]

Figures are wall-clock on this machine, best of several repeats; ratios compare against a baseline
run in the same process, so they hold up on a noisy shared machine better than absolute seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from bench import activations, compression, selection

HERE = Path(__file__).resolve().parent


def machine() -> str:
    import torch

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (smoke run)")
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M")
    act_rows = activations.run(quick=args.quick)
    sel_rows = selection.run(sizes=(1_000, 2_000) if args.quick else (1_000, 10_000, 50_000))
    comp_rows = (
        compression.run(width=256, intermediate=704, heads=4, n=16, seqlen=64) if args.quick else compression.run()
    )
    results = {
        "machine": machine(),
        "date": started,
        "activations": act_rows,
        "selection": sel_rows,
        "compression": comp_rows,
    }
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    md = [
        "# Benchmarks",
        "",
        f"Machine: {results['machine']}; run {started} with `python -m bench.run`.",
        "",
        "## Activation extraction",
        "",
        activations.to_markdown(act_rows),
        "",
        "## Re-selection latency (n = 128, 64-d pools)",
        "",
        "Goal: `tradeoff` ≤ 100 ms at 10k on 2 cores, objective ≥ 99% of the plain greedy.",
        "",
        selection.to_markdown(sel_rows),
        "",
        "## Compression time per decoder layer (Llama-shaped layer, fp32, CPU)",
        "",
        compression.to_markdown(comp_rows),
        "",
    ]
    (HERE / "results.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
