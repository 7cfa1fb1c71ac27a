"""Flags of the ``python -m cola_core`` subcommands (the handlers live in :mod:`cola_core.cli.main`).

The flags of a config's settings are derived from its dataclass fields (:func:`cola_core.settings.add_flags`:
name, help, default, choices), so ``--help``, the dashboard and the library agree; only the flags
that are not settings of a config (model, paths, formats, evaluation) are written here."""

from __future__ import annotations

import argparse

from cola_core.compress.config import CompressConfig
from cola_core.compress.formats import DEFAULT_FORMAT, FORMATS
from cola_core.corpora.selfgen import SelfGenConfig
from cola_core.curation.pipeline import CurateConfig
from cola_core.curation.presets import PRESETS
from cola_core.engine.config import EngineConfig
from cola_core.evaluation.benchmark_registry import benchmarks_help, names_of
from cola_core.evaluation.suite import CAPABILITIES, DEFAULT_LIMIT
from cola_core.models.batching import BATCH_TOKENS
from cola_core.models.chat import CHAT_MODES, THINKING
from cola_core.models.loading import DEFAULT_MODEL
from cola_core.settings import add_flags


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default, except the empty ones (None: "not given"; False: an off switch),
    which a help text already explains."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


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
    """Every flat setting of :class:`CurateConfig` is a flag (its help and default are the field's);
    ``corpus-scores`` takes those Stage 1 reads."""
    if not scores:
        p.add_argument(
            "--preset",
            choices=tuple(PRESETS),
            default=None,
            help="the paper's settings (n, seqlen capped by the model's context, all layers, 64-d, cola); "
            "flags you give still win",
        )
    add_flags(p, CurateConfig, skip=("stage1", "mix") if scores else ())
    if not scores:
        p.add_argument(
            "--out", default="calib.jsonl", help="output .jsonl; .hf/ and .safetensors are written beside it"
        )


def add_engine_args(p: argparse.ArgumentParser) -> None:
    add_flags(p, EngineConfig)


def add_evaluate_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument(
        "--capabilities",
        default=",".join(CAPABILITIES),
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
        help=benchmarks_help(),
    )
    p.add_argument(
        "--benchmark-data",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="local copy of a benchmark's data (dataset folder or .jsonl/.json/.parquet/.csv); repeatable",
    )
    p.add_argument(
        "--chat-template",
        choices=CHAT_MODES[:2],
        default="auto",
        help="math and facts prompts as a user turn of the tokenizer's chat template when it has one (auto) or plain (off)",
    )
    p.add_argument(
        "--thinking",
        choices=THINKING,
        default="auto",
        help="the chat template's thinking switch: on, off, or its default",
    )
    p.add_argument("--backend", choices=("builtin", "lm-eval"), default="builtin", help="who runs the benchmarks")
    p.add_argument("--shots", type=int, default=5, help=f"{names_of('generate')}: worked examples in the prompt")
    p.add_argument(
        "--allow-code-execution",
        action="store_true",
        help=f"{names_of('code')}: run generated code (in a subprocess with time and memory limits)",
    )


def add_compress_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p, device_map=False)  # compression offloads layer by layer itself
    p.add_argument("--calib", required=True, help="calibration set: .jsonl or .safetensors written by curate")
    add_flags(p, CompressConfig)
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
    add_flags(p, SelfGenConfig)
    p.add_argument("--out", default="self.jsonl", help="output .jsonl")


def curate_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    add_curate_args(p)
    add_engine_args(p)


def corpus_scores_args(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    add_curate_args(p, scores=True)
    add_engine_args(p)


def experiment_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="experiment JSON file or built-in name")
    p.add_argument("--list", action="store_true", help="list the built-in experiment configs")
    add_store_arg(p)
    p.add_argument("--report", default=None, help="write the markdown report here")
    add_engine_args(p)


def runs_args(p: argparse.ArgumentParser) -> None:
    add_store_arg(p)
    p.add_argument("--experiment", default=None, help="only this experiment's runs")


def sample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", required=True, help="built-in name, file path or hf:NAME[:CONFIG[:SPLIT]]")
    p.add_argument("--split", default="pool", help="train, pool or heldout (built-in corpora)")
    p.add_argument("--n", type=int, default=5, help="how many records")
    add_flags(p, CurateConfig, only=("text_field", "fields"))


def export_tasks_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", help="folder for the task YAMLs and their data (lm_eval --include_path DIR)")
    p.add_argument("--capabilities", default=",".join(CAPABILITIES), help="built-in suite, comma-separated")
    p.add_argument("--limit", type=int, default=None, help="the first N held-out items of each (default: all)")


def add_store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None, help="run store path (default: cache/runs.sqlite)")


def no_args(p: argparse.ArgumentParser) -> None:
    """A command with no flags of its own (besides --json)."""
