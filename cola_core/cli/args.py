"""Flags of the ``python -m cola_core`` subcommands (the handlers live in :mod:`cola_core.cli.main`).

Every default is read from the config dataclass that owns the setting, so ``--help``, the dashboard
and the library agree (tests/test_defaults.py checks)."""

from __future__ import annotations

import argparse

from cola_core.cli.reporting import ARGS as REPORTING_ARGS
from cola_core.compress.config import CompressConfig
from cola_core.compress.formats import DEFAULT_FORMAT, FORMATS
from cola_core.corpora.selfgen import SelfGenConfig
from cola_core.curation.activations import ActivationConfig
from cola_core.curation.pipeline import CurateConfig
from cola_core.curation.presets import PRESETS
from cola_core.curation.processing import ProcessingConfig
from cola_core.curation.selection import STRATEGIES
from cola_core.engine.config import ENGINES, EngineConfig
from cola_core.evaluation.suite import CAPABILITIES, DEFAULT_LIMIT
from cola_core.models.batching import BATCH_TOKENS
from cola_core.models.loading import DEFAULT_MODEL

_C, _P, _A, _E, _Q, _S = CurateConfig, ProcessingConfig, ActivationConfig, EngineConfig, CompressConfig, SelfGenConfig


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except the empty ones (None: "not given"; False: an off switch),
    which a help text already explains."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _csv(values: tuple[str, ...]) -> str:
    return ",".join(values)


def add_model_args(p: argparse.ArgumentParser, device_map: bool = True) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL, help="built-in name, local directory or hub id")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "float32", "bfloat16", "float16"),
        help="weights' dtype; auto: bfloat16 on GPU, float32 on CPU",
    )
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
    if not scores:
        p.add_argument(
            "--preset",
            choices=tuple(PRESETS),
            default=None,
            help="the paper's settings (n, seqlen capped by the model's context, all layers, 64-d, cola); "
            "flags you give still win",
        )
    p.add_argument(
        "--corpora",
        default=_csv(_C.corpora),
        help="comma-separated: built-in names, file paths, hf:NAME[:CONFIG[:SPLIT]]",
    )
    p.add_argument(
        "--capabilities",
        default=_csv(_C.capabilities),
        help="probe sets: built-in names (held-out split) or corpus specs",
    )
    p.add_argument("--pool-size", type=int, default=_C.pool_size, help="candidate samples drawn from the corpora")
    p.add_argument("--n", type=int, default=_C.n, help="calibration samples to select")
    p.add_argument("--seqlen", type=int, default=_P.seqlen, help="tokens per sample (Stage 2 length)")
    p.add_argument("--strategy", default=_C.strategy, help=f"Stage 3 selection: {', '.join(STRATEGIES)}")
    p.add_argument("--lam", type=float, default=_C.lam, help="tradeoff: 1 = representativeness, 0 = diversity")
    p.add_argument(
        "--layers", default=None, help="comma-separated layer indices (default: all; negative counts from the end)"
    )
    p.add_argument("--pooling", default=_A.pooling, help="mean or last")
    p.add_argument("--include-mlp", action="store_true", help="also use MLP intermediate activations")
    p.add_argument("--dim", type=int, default=_C.dim, help="random projection dimension")
    p.add_argument("--probe-size", type=int, default=_C.probe_size, help="held-out samples per capability probe set")
    p.add_argument(
        "--batch-tokens", type=int, default=_A.batch_tokens, help="activation extraction: tokens per forward batch"
    )
    p.add_argument("--seed", type=int, default=_C.seed, help="projection and selection seed")
    p.add_argument("--min-tokens", type=int, default=_P.min_tokens, help="drop samples shorter than this")
    p.add_argument("--length-mode", default=_P.mode, help="truncate or pack")
    p.add_argument("--reasoning-format", default=_P.reasoning_format, help="keep, explicit or plain")
    p.add_argument("--no-dedupe", action="store_true", help="keep exact and near duplicates")
    p.add_argument(
        "--drop-worst-ppl",
        type=float,
        default=_P.drop_worst_perplexity,
        help="drop this fraction of highest-perplexity samples",
    )
    p.add_argument("--text-field", default=_C.text_field, help="field/column holding the text (files, datasets)")
    p.add_argument(
        "--fields",
        default=_C.fields,
        help="Q&A columns of files and hf: datasets, question=COL,answer=COL[,rationale=COL]: rendered as "
        "Question / Reasoning / Answer (GSM8K '#### N' answers parsed)",
    )
    p.add_argument(
        "--weights", default=None, help="Stage 1: capability weights, e.g. math=3,code=1 (replace --deployment)"
    )
    p.add_argument("--alpha", type=float, default=_C.alpha, help="Stage 1: weight of activation vs token similarity")
    p.add_argument("--deployment", default=_C.deployment, help="Stage 1: general or targeted")
    p.add_argument("--target", default=_C.target, help="Stage 1: the capability to keep first (targeted)")
    p.add_argument(
        "--per-corpus", type=int, default=_C.stage1_samples, help="Stage 1: records per corpus and probe set scored"
    )
    if not scores:
        p.add_argument(
            "--no-stage1", action="store_true", help="equal shares of each corpus instead of Stage 1's mix (ablation)"
        )
        p.add_argument("--mix", default=None, help="your own pool shares, e.g. math=0.5,prose=0.5 (overrides Stage 1)")
        p.add_argument(
            "--out", default="calib.jsonl", help="output .jsonl; .hf/ and .safetensors are written beside it"
        )


def add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default=_E.kind,
        help="local: this process; ray: a Ray Data actor pool (pip install -r requirements-ray.txt)",
    )
    p.add_argument(
        "--ray-address",
        default=_E.address,
        help="join this Ray cluster (auto, or ray://HOST:10001); default: start a local instance",
    )
    p.add_argument("--ray-workers", type=int, default=_E.workers, help="actors, each holding one model replica")
    p.add_argument("--ray-cpus", type=int, default=_E.local_cpus, help="CPUs of a local Ray instance (default: all)")
    p.add_argument(
        "--ray-gpus-per-worker",
        type=float,
        default=_E.gpus_per_worker,
        help="GPUs per actor (default: 1 when the cluster has GPUs, else 0)",
    )
    p.add_argument(
        "--shard-size", type=int, default=_E.shard_size, help="samples per extraction shard (the unit of resume)"
    )


def add_evaluate_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument(
        "--capabilities",
        default=_csv(CAPABILITIES),
        help="built-in suite, comma-separated: lm, code, math, facts; '' for none",
    )
    p.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="items per capability / benchmark")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument(
        "--batch-tokens", type=int, default=BATCH_TOKENS, help="padded tokens per forward pass (scoring, generation)"
    )
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


def add_compress_args(p: argparse.ArgumentParser) -> None:
    from cola_core.compress import METHODS

    add_model_args(p, device_map=False)  # compression offloads layer by layer itself
    p.add_argument("--calib", required=True, help="calibration set: .jsonl or .safetensors written by curate")
    p.add_argument("--method", required=True, help=f"one of {', '.join(METHODS)}")
    p.add_argument("--sparsity", type=float, default=_Q.sparsity, help="unstructured target in [0, 1)")
    p.add_argument("--pattern", default=_Q.pattern, help="N:M semi-structured, e.g. 2:4 (keeps N of every M)")
    p.add_argument("--owl", action="store_true", help="per-layer sparsity by outlier ratio (OWL); mean = --sparsity")
    p.add_argument(
        "--owl-lambda", type=float, default=_Q.owl_lambda, help="OWL: layer sparsities span ≤ 2λ, mean --sparsity"
    )
    p.add_argument("--owl-m", type=float, default=_Q.owl_m, help="OWL: outlier threshold, M × mean score")
    p.add_argument(
        "--quantize",
        default=_Q.quantize,
        help="after a pruning method, quantize each layer too (rtn, gptq, awq), keeping the pruned weights at zero",
    )
    p.add_argument("--bits", type=int, default=_Q.bits, help="2..8 (quantization)")
    p.add_argument(
        "--group-size", type=int, default=_Q.group_size, help="input columns per quantization group; -1 = per row"
    )
    grid = p.add_mutually_exclusive_group()
    grid.add_argument(
        "--sym",
        "--symmetric",
        dest="symmetric",
        action="store_true",
        help="symmetric quantization grid (no zero point)",
    )
    grid.add_argument(
        "--asym",
        dest="symmetric",
        action="store_false",
        default=argparse.SUPPRESS,  # the dest's default comes from --sym: asymmetric
        help="asymmetric grid with a zero point (the default)",
    )
    p.add_argument(
        "--act-order", action="store_true", help="GPTQ: columns by decreasing Hessian diagonal (static groups)"
    )
    p.add_argument("--damp", type=float, default=_Q.damp, help="fraction of mean(diag H) added to the diagonal")
    p.add_argument("--awq-grid", type=int, default=_Q.awq_grid, help="AWQ: scaling exponents α searched per group")
    p.add_argument(
        "--awq-quantizer", choices=("rtn", "gptq"), default=_Q.awq_quantizer, help="AWQ: what rounds the scaled weights"
    )
    p.add_argument("--awq-tokens", type=int, default=_Q.awq_tokens, help="AWQ: calibration tokens the search reads")
    p.add_argument(
        "--no-awq-clip",
        dest="awq_clip",
        action="store_false",
        default=argparse.SUPPRESS,  # absent: CompressConfig's default (clipping on)
        help="AWQ: skip the clipping-range search (on by default)",
    )
    p.add_argument(
        "--batch-tokens", type=int, default=_Q.batch_tokens, help="padded calibration tokens per forward pass"
    )
    p.add_argument(
        "--seqlen",
        type=int,
        default=None,
        help="cap on calibration tokens per sample (default: the set's own length, as curated)",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--format",
        choices=FORMATS,
        default=DEFAULT_FORMAT,
        help="dense: plain dequantized weights for any tool; compressed-tensors: packed int weights and "
        "quantization_config as llm-compressor writes them, for vLLM and transformers",
    )


def add_self_generate_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument("--n", type=int, default=_S.n, help="texts to generate")
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=_S.max_new_tokens,
        help="tokens generated per text (the calibration length)",
    )
    p.add_argument("--temperature", type=float, default=_S.temperature, help="sampling temperature")
    p.add_argument("--top-k", type=int, default=_S.top_k, help="sample among the k likeliest tokens")
    p.add_argument("--top-p", type=float, default=_S.top_p, help="nucleus sampling mass")
    p.add_argument("--repetition-penalty", type=float, default=_S.repetition_penalty, help="> 1 discourages repeats")
    p.add_argument(
        "--prefix-corpus",
        default=_S.prefix_corpus,
        help="corpus whose documents' first tokens prompt the model: built-in name, file path or hf:NAME[:CONFIG[:SPLIT]]",
    )
    p.add_argument("--prefix-tokens", type=int, default=_S.prefix_tokens, help="first tokens of a document per prompt")
    p.add_argument(
        "--prefix", action="append", help="explicit prompt (repeatable), instead of the prefix corpus; '' = BOS alone"
    )
    p.add_argument(
        "--drop-worst-ppl", type=float, default=_S.drop_worst_perplexity, help="drop this highest-perplexity fraction"
    )
    p.add_argument("--seed", type=int, default=_S.seed, help="sampling seed")
    p.add_argument("--out", default="self.jsonl", help="output .jsonl")


def add_command_args(name: str, p: argparse.ArgumentParser) -> None:
    """The flags of one subcommand."""
    if name in REPORTING_ARGS:
        REPORTING_ARGS[name](p)
    if name == "evaluate":
        add_evaluate_args(p)
    if name == "experiment":
        p.add_argument("--config", default=None, help="experiment JSON file or built-in name")
        p.add_argument("--list", action="store_true", help="list the built-in experiment configs")
        p.add_argument("--store", default=None, help="run store path (default: cache/runs.sqlite)")
        p.add_argument("--report", default=None, help="write the markdown report here")
        add_engine_args(p)
    if name == "runs":
        p.add_argument("--store", default=None, help="run store path (default: cache/runs.sqlite)")
        p.add_argument("--experiment", default=None, help="only this experiment's runs")
    if name == "compress":
        add_compress_args(p)
    if name in ("curate", "corpus-scores"):
        add_model_args(p)
        add_curate_args(p, scores=name == "corpus-scores")
    if name in ("curate", "corpus-scores"):
        add_engine_args(p)
    if name == "self-generate":
        add_self_generate_args(p)
    if name == "sample":
        p.add_argument("--corpus", required=True, help="built-in name, file path or hf:NAME[:CONFIG[:SPLIT]]")
        p.add_argument("--split", default="pool", help="train, pool or heldout (built-in corpora)")
        p.add_argument("--n", type=int, default=5, help="how many records")
        p.add_argument("--text-field", default=_C.text_field, help="field/column holding the text (files, datasets)")
        p.add_argument("--fields", default=_C.fields, help="Q&A columns: question=COL,answer=COL[,rationale=COL]")
