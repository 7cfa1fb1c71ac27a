"""Flags of the ``python -m cola_core`` subcommands (the handlers live in :mod:`cola_core.cli.main`)."""

from __future__ import annotations

import argparse


def add_model_args(p: argparse.ArgumentParser, device_map: bool = True) -> None:
    p.add_argument("--model", default="cola-tiny", help="built-in name, local directory or hub id")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    if device_map:
        p.add_argument(
            "--device-map",
            choices=("auto",),
            default=None,
            help="auto: spread a model larger than one GPU over all GPUs, then CPU, then disk (accelerate)",
        )
    p.add_argument(
        "--trust-remote-code", action="store_true", help="run the model repository's own code (off by default)"
    )


def add_curate_args(p: argparse.ArgumentParser, scores: bool = False) -> None:
    p.add_argument(
        "--corpora",
        default="prose,code,math,facts",
        help="comma-separated: built-in names, file paths, hf:NAME[:CONFIG[:SPLIT]]",
    )
    p.add_argument(
        "--capabilities",
        default="prose,code,math,facts",
        help="probe sets: built-in names (held-out split) or corpus specs",
    )
    p.add_argument("--pool-size", type=int, default=2000)
    p.add_argument("--n", type=int, default=128, help="calibration samples to select")
    p.add_argument("--seqlen", type=int, default=256)
    p.add_argument("--strategy", default="cola", help="random, stratified, cola or tradeoff")
    p.add_argument("--lam", type=float, default=0.5, help="tradeoff: 1 = representativeness, 0 = diversity")
    p.add_argument(
        "--layers", default=None, help="comma-separated layer indices (default: all; negative counts from the end)"
    )
    p.add_argument("--pooling", default="mean", help="mean or last")
    p.add_argument("--include-mlp", action="store_true", help="also use MLP intermediate activations")
    p.add_argument("--dim", type=int, default=64, help="random projection dimension")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-tokens", type=int, default=8)
    p.add_argument("--length-mode", default="truncate", help="truncate or pack")
    p.add_argument("--reasoning-format", default="keep", help="keep, explicit or plain")
    p.add_argument("--no-dedupe", action="store_true")
    p.add_argument("--drop-worst-ppl", type=float, default=0.0, help="drop this fraction of highest-perplexity samples")
    p.add_argument("--text-field", default="text")
    if scores:
        p.add_argument("--alpha", type=float, default=0.5, help="weight of activation vs token similarity")
        p.add_argument("--deployment", default="general", help="general or targeted")
        p.add_argument("--target", default=None, help="capability to weight up (targeted)")
        p.add_argument("--per-corpus", type=int, default=200)
    else:
        p.add_argument(
            "--out", default="calib.jsonl", help="output .jsonl; .hf/ and .safetensors are written beside it"
        )


def add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process; ray: a Ray Data actor pool (pip install -r requirements-ray.txt)",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        help="join this Ray cluster (auto, or ray://HOST:10001); default: start a local instance",
    )
    p.add_argument("--ray-workers", type=int, default=2, help="actors, each holding one model replica")
    p.add_argument("--ray-cpus", type=int, default=None, help="CPUs of a local Ray instance (default: all)")
    p.add_argument(
        "--ray-gpus-per-worker",
        type=float,
        default=None,
        help="GPUs per actor (default: 1 when the cluster has GPUs, else 0)",
    )
    p.add_argument("--shard-size", type=int, default=256, help="samples per extraction shard (the unit of resume)")


def add_command_args(name: str, p: argparse.ArgumentParser) -> None:
    """The flags of one subcommand."""
    if name == "evaluate":
        add_model_args(p)
        p.add_argument(
            "--capabilities",
            default="lm,code,math,facts",
            help="built-in suite, comma-separated: lm, code, math, facts; '' for none",
        )
        p.add_argument("--limit", type=int, default=200, help="items per capability / benchmark")
        p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
        p.add_argument(
            "--benchmarks",
            default="",
            help="public benchmarks, comma-separated: wikitext2, gsm8k, piqa, "
            "hellaswag, arc_easy, arc_challenge, winogrande, mbpp, humaneval",
        )
        p.add_argument(
            "--benchmark-data",
            action="append",
            default=[],
            metavar="NAME=PATH",
            help="local copy of a benchmark's data (dataset folder or .jsonl/.json/.parquet/.csv); repeatable",
        )
        p.add_argument("--backend", choices=("builtin", "lm-eval"), default="builtin", help="who runs the benchmarks")
        p.add_argument("--shots", type=int, default=5, help="gsm8k: worked examples in the prompt")
        p.add_argument(
            "--allow-code-execution",
            action="store_true",
            help="mbpp/humaneval: run generated code (in a subprocess with time and memory limits)",
        )
    if name == "experiment":
        p.add_argument("--config", default=None, help="experiment JSON file or built-in name")
        p.add_argument("--list", action="store_true", help="list the built-in experiment configs")
        p.add_argument("--store", default=None, help="run store path (default: cache/runs.sqlite)")
        p.add_argument("--report", default=None, help="write the markdown report here")
        add_engine_args(p)
    if name == "runs":
        p.add_argument("--store", default=None, help="run store path (default: cache/runs.sqlite)")
        p.add_argument("--experiment", default=None)
    if name == "compress":
        add_model_args(p, device_map=False)  # compression offloads layer by layer itself
        p.add_argument("--calib", required=True, help="calibration set: .jsonl or .safetensors written by curate")
        p.add_argument("--method", required=True, help="magnitude, wanda, sparsegpt, rtn or gptq")
        p.add_argument("--sparsity", type=float, default=0.5, help="unstructured target in [0, 1)")
        p.add_argument("--pattern", default=None, help="N:M semi-structured, e.g. 2:4 (keeps N of every M)")
        p.add_argument(
            "--owl", action="store_true", help="per-layer sparsity by outlier ratio (OWL); mean = --sparsity"
        )
        p.add_argument("--owl-lambda", type=float, default=0.08, help="OWL: layer sparsities within target ± λ")
        p.add_argument("--owl-m", type=float, default=5.0, help="OWL: outlier threshold, M × mean score")
        p.add_argument("--bits", type=int, default=4, help="2..8 (rtn, gptq)")
        p.add_argument("--group-size", type=int, default=128, help="input columns per quantization group; -1 = per row")
        p.add_argument("--symmetric", action="store_true")
        p.add_argument(
            "--act-order", action="store_true", help="GPTQ: columns by decreasing Hessian diagonal (static groups)"
        )
        p.add_argument("--damp", type=float, default=0.01)
        p.add_argument("--batch-size", type=int, default=8)
        p.add_argument("--seqlen", type=int, default=256, help="calibration tokens per sample (cap)")
        p.add_argument("--out", required=True, help="output directory")
    if name in ("curate", "corpus-scores", "self-generate"):
        add_model_args(p)
    if name in ("curate", "corpus-scores"):
        add_curate_args(p, scores=name == "corpus-scores")
    if name == "curate":
        add_engine_args(p)
    if name == "self-generate":
        p.add_argument("--n", type=int, default=200)
        p.add_argument("--max-new-tokens", type=int, default=128)
        p.add_argument("--temperature", type=float, default=0.8)
        p.add_argument("--top-k", type=int, default=50)
        p.add_argument("--top-p", type=float, default=0.95)
        p.add_argument("--repetition-penalty", type=float, default=1.1)
        p.add_argument("--prefix", action="append", help="seed prefix (repeatable); default: start from BOS")
        p.add_argument("--drop-worst-ppl", type=float, default=0.1)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--out", default="self.jsonl")
    if name == "sample":
        p.add_argument("--corpus", required=True, help="built-in name, file path or hf:NAME[:CONFIG[:SPLIT]]")
        p.add_argument("--split", default="pool", help="train, pool or heldout (built-in corpora)")
        p.add_argument("--n", type=int, default=5, help="how many records")
        p.add_argument("--text-field", default="text", help="field/column holding the text (files, datasets)")
