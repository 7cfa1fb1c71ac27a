"""Run the benchmarks and write bench/results.md and bench/results.json.

    python -m bench.run [--quick] [--only SECTIONS] [--docs]

Figures are wall-clock on this machine, best of several repeats; ratios compare against a baseline
run in the same process, so they hold up on a noisy shared machine better than absolute seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from bench import (
    activations,
    compression,
    description,
    distributed,
    e2e,
    experts,
    gpu,
    large,
    maps,
    memory,
    peer,
    placement,
    profile,
    realsize,
    scaling,
    selection,
    variants,
    warmup,
)

HERE = Path(__file__).resolve().parent


def machine() -> str:
    import torch

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )


# section → (module, heading, lines under the heading), in report order
REPORT = {
    "activations": (activations, "Activation extraction", ()),
    "selection": (
        selection,
        "Re-selection latency (n = 128, 64-d pools)",
        ("Goal: `tradeoff` ≤ 100 ms at 10k on 2 cores, objective ≥ 99% of the plain greedy.", ""),
    ),
    "maps": (maps, "2-D map", ()),
    "warmup": (warmup, "First UMAP map in a fresh process, without and with the background warm-up", ()),
    "compression": (compression, "Compression time per decoder layer (Llama-shaped layer, fp32, CPU)", ()),
    "memory": (memory, "Peak memory of whole-model compression (CPU)", ()),
    "profile": (
        profile,
        "Where compression time goes: the whole process on the wide model (8 × 1024 Llama, 64 × 128 tokens, CPU)",
        ("Issue #33, item 1: each phase's seconds and share of the whole process.", ""),
    ),
    "moe": (
        SimpleNamespace(to_markdown=memory.moe_markdown),
        "Peak memory of compressing a mixture-of-experts model (CPU)",
        ("Goal (issue #31): one layer at a time, all of its experts' statistics bounded.", ""),
    ),
    "experts": (experts, "Expert coverage of Stage 3's selections (random mixture-of-experts model)", ()),
    "e2e": (e2e, "End to end and dashboard cold start", ()),
    "scaling": (scaling, "Scaling", ()),
    "large": (large, "Large pools (synthetic, downstream of extraction)", ()),
    "placement": (placement, "Large-pool map: placing the points UMAP was not fitted on", ()),
    "distributed": (distributed, "Ray engine overhead on this machine (activation extraction)", ()),
    "gpu": (gpu, "GPU (Llama-3-8B-shaped layers)", ()),
    "peer": (
        peer,
        "Against llm-compressor (its own venv; `python -m bench.peer --python .peer-venv/bin/python`)",
        (
            "Goals (issue #33): on the wide model every method ≤ 0.7× llm-compressor's whole-process time "
            "(cola-tiny ≤ 1.0×), at ≤ 1.0× its held-out perplexity and ≤ 1.05× its first-layer output error. "
            "Intervals: 95% paired bootstrap over the 200 held-out texts (the same draw for both models). KL to "
            "dense: mean per-token KL(p_dense ‖ p_compressed) in nats — fidelity to the dense model, which "
            "perplexity on a random model does not measure (it can fall below the dense model's by chance). "
            "Runs: each side's whole process ran that many times, the two taking turns, and the fastest counts "
            "(three where one run takes under two minutes). llm-compressor shuffles its calibration samples, so "
            'its output depends on the order; each of its runs is seeded, and "mean of k orders" marks a row '
            "scored on the mean of k orders' outputs per text (`--peer-seeds k`), their perplexities' range shown.",
            "",
        ),
    ),
    "variants": (
        variants,
        "Two settings of one method (`python -m bench.variants`; the comparisons behind defaults)",
        (
            "B ÷ A of each measure on the held-out items: lower is better for perplexity and KL to dense, higher "
            "for accuracy. Intervals: paired bootstrap at the level shown, Bonferroni over the ratios one run "
            "reads; B differs from A only where its interval excludes 1.",
            "",
        ),
    ),
    "realsize": (
        realsize,
        "A real-size model (Qwen2.5-0.5B's shape, random weights): every step, time and peak memory",
        ("Goal (issue #18): every step ≤ 1.5× the model's size in peak RSS on CPU.", ""),
    ),
}
SECTIONS = tuple(REPORT)


def render(results: dict) -> str:
    md = [
        "# Benchmarks",
        "",
        f"Machine: {results['machine']}; `python -m bench.run` (sections re-run: {results['runs']}).",
        "",
    ]
    for section, (module, heading, intro) in REPORT.items():
        if results.get(section):
            md += [f"## {heading}", "", *intro, module.to_markdown(results[section]), ""]
    return "\n".join(md)


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--quick", action="store_true", help="small sizes only (smoke run)")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated sections to (re-)run: {', '.join(SECTIONS)}"
    )
    parser.add_argument(
        "--docs",
        "--readme",
        dest="docs",
        action="store_true",
        help="also copy the tables into docs/performance.md, between its bench markers (--readme: old name)",
    )
    parser.add_argument(
        "--merge",
        action="append",
        default=[],
        type=Path,
        metavar="RESULTS_JSON",
        help="also take the gpu section and the peer rows of a results.json written on another machine "
        "(bench/gpu_session.sh's); repeatable",
    )
    args = parser.parse_args()
    merged = []
    for other in args.merge:
        try:
            data = json.loads(other.read_text())
        except (OSError, ValueError) as err:
            parser.error(f"--merge {other}: not a readable results.json ({err})")
        if not isinstance(data, dict):
            parser.error(f"--merge {other}: not a results.json (its top level is not an object)")
        merged.append(data)
    wanted = [x for x in args.only.split(",") if x]
    path = HERE / "results.json"
    results = json.loads(path.read_text()) if path.exists() and set(wanted) != set(SECTIONS) else {}
    for other in merged:
        results = merge_from(results, other)
    if set(wanted) - {"gpu"}:
        results["machine"] = machine()
    runs = dict(results.get("run_dates", {}))
    for section in wanted:
        started = time.strftime("%Y-%m-%d %H:%M")
        if section == "activations":
            results[section] = activations.run(quick=args.quick)
        elif section == "selection":
            results[section] = selection.run(sizes=(1_000, 2_000) if args.quick else (1_000, 10_000, 50_000))
        elif section == "maps":
            results[section] = maps.run(n=2_000 if args.quick else 10_000)
        elif section == "warmup":
            results[section] = warmup.run(sizes=(1_000,) if args.quick else (1_000, 10_000))
        elif section == "compression":
            results[section] = (
                compression.run(width=256, intermediate=768, heads=4, n=16, seqlen=64)
                if args.quick
                else compression.run()
            )
        elif section == "memory":
            results[section] = (
                memory.run(width=256, intermediate=704, heads=4, layers=2, n=8, seqlen=64)
                if args.quick
                else memory.run()
            )
        elif section == "moe":
            results[section] = (
                memory.run_moe(width=256, intermediate=64, experts=64, layers=2, n=8, seqlen=64)
                if args.quick
                else memory.run_moe()
            )
        elif section == "profile":
            results[section] = profile.run(methods=("wanda",), layers=1) if args.quick else profile.run()
        elif section == "experts":
            results[section] = experts.run(sizes=(8,), seeds=(0, 1), pool=200) if args.quick else experts.run()
        elif section == "e2e":
            results[section] = e2e.run()
        elif section == "scaling":
            results[section] = scaling.run(results.get("selection"))
        elif section == "large":
            results[section] = large.run((2_000, 10_000) if args.quick else (10_000, 100_000, 1_000_000))
        elif section == "placement":
            results[section] = placement.run(size=10_000 if args.quick else 100_000)
        elif section == "distributed":
            results[section] = distributed.run(n=256 if args.quick else 1024)
        elif section == "peer":
            rows = peer.run(os.environ.get("COLA_PEER_PYTHON", ".peer-venv/bin/python"))
            results[section] = peer.merged(results.get(section, []), rows)  # rows of other devices stay
        elif section == "variants":
            rows = variants.run(*variants.AWQ_DUO, models=("tiny", "wide"))
            results[section] = variants.merged(results.get(section, []), rows)
        elif section == "realsize":
            results[section] = realsize.run(layers=2 if args.quick else None)
        elif section == "gpu":
            measured = gpu.run(quick=args.quick)
            if not measured:
                continue
            results[section] = measured
        runs[section] = started
    results["run_dates"] = runs
    results["runs"] = ", ".join(f"{k} {v}" for k, v in runs.items())
    write_whole(path, json.dumps(results, indent=2) + "\n")
    (HERE / "results.md").write_text(render(results))
    if args.docs:
        update_docs(render(results))
    print(render(results))


def merge_from(results: dict, other: dict) -> dict:
    """``results`` with ``other``'s gpu section (when it has one) and peer rows (each replacing the same
    pair on the same device): a results.json written on another machine, the GPU session's, whose
    other sections are this machine's and stay as they are here."""
    out = dict(results)
    if other.get("gpu"):
        out["gpu"] = other["gpu"]
        if "gpu" in other.get("run_dates", {}):
            out["run_dates"] = {**out.get("run_dates", {}), "gpu": other["run_dates"]["gpu"]}
    rows = [r for r in other.get("peer", []) if "method" in r]
    if rows:
        out["peer"] = peer.merged(out.get("peer", []), rows)
    return out


def write_whole(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a process killed mid-write leaves the old file)."""
    part = path.with_name(path.name + ".part")
    part.write_text(text)
    os.replace(part, path)


def save_section(section: str, update: Callable[[list], list], docs: bool) -> None:
    """One command's rows into the stored results (``update`` maps the section's stored rows to the
    new ones), results.md re-rendered and, with ``docs``, docs/performance.md."""
    path = HERE / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results[section] = update(results.get(section, []))
    write_whole(path, json.dumps(results, indent=2) + "\n")
    (HERE / "results.md").write_text(render(results))
    if docs:
        update_docs(render(results))


def update_docs(markdown: str, page: Path = HERE.parent / "docs" / "performance.md") -> None:
    """Replace what lies between the page's bench markers with the tables (headings one level down)."""
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    text = page.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{page} has no {start} … {end} markers")
    body = "\n".join(("#" + line if line.startswith("## ") else line) for line in markdown.splitlines()[2:])
    head, rest = text.split(start, 1)
    page.write_text(f"{head}{start}\n{body.strip()}\n{end}{rest.split(end, 1)[1]}")


if __name__ == "__main__":
    main()
