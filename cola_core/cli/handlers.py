"""What each ``python -m cola_core`` command does: parsed flags in, one JSON-able payload out (the
table that names commands, their flags and their text output is :data:`cola_core.cli.main.COMMANDS`).
Configs are built from the flags by :func:`cola_core.settings.from_args`; logs go to stderr."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cola_core.cli import flags
from cola_core.errors import ColaError
from cola_core.storage.atomic import check_output


def cmd_models(args: argparse.Namespace) -> dict[str, Any]:
    from cola_core.models.loading import list_models

    return {"models": [m.to_dict() for m in list_models()]}


def cmd_corpora(args: argparse.Namespace) -> dict[str, Any]:
    from cola_core.corpora import list_corpora

    return {"corpora": [c.to_dict() for c in list_corpora()]}


def cmd_sample(args: argparse.Namespace) -> dict[str, Any]:
    from cola_core.corpora import load_records
    from cola_core.corpora.fields import fields_for

    mapping = fields_for(args.fields, args.corpus)  # a per-corpus --fields works here as in curate
    records = load_records(args.corpus, args.split, limit=args.n, text_field=args.text_field, fields=mapping)
    return {"records": [r.to_dict() for r in records]}


def cmd_export_tasks(args: argparse.Namespace) -> dict[str, Any]:
    from cola_core.evaluation.harness_tasks import TASKS, export_tasks

    if args.limit is not None and args.limit <= 0:
        raise ColaError(f"--limit must be positive, got {args.limit}")
    folder = Path(args.dir)
    if folder.exists() and not folder.is_dir():
        raise ColaError(f"{folder} is a file, not a folder; choose another DIR")
    written = export_tasks(folder, flags.csv_list(args.capabilities), args.limit)
    return {"dir": str(folder), "tasks": {c: {"task": TASKS[c], "yaml": y} for c, y in written.items()}}


OPEN_BARS: list[Any] = []  # progress bars still on screen; an error line must not land on one


def _progress_bar(label: str):
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=label, file=sys.stderr, leave=False)
            OPEN_BARS.append(bar)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            OPEN_BARS.remove(bar)

    return update


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def _load(args: argparse.Namespace):
    from cola_core.models.loading import load_model

    _log(f"loading model {args.model} …")
    if args.trust_remote_code:
        _log(
            f"warning: --trust-remote-code runs Python code from {args.model}'s repository; use it only for code you trust"
        )
    return load_model(
        args.model,
        device=args.device,
        dtype=args.dtype,
        trust_remote_code=args.trust_remote_code,
        device_map=getattr(args, "device_map", None),
    )


def _engine(args: argparse.Namespace):
    from cola_core.engine.config import EngineConfig

    engine = flags.from_args(EngineConfig, args)
    engine.validate()
    _log(f"engine: {engine.describe()}")
    return engine


def cmd_curate(args: argparse.Namespace) -> dict[str, Any]:
    from dataclasses import replace

    from cola_core.curation.pipeline import CurateConfig, curate
    from cola_core.curation.presets import cap_seqlen
    from cola_core.models.loading import context_length

    applied = flags.apply_preset(args)
    config = flags.from_args(CurateConfig, args)
    config.validate()
    check_output(args.out, "calibration set")  # before the model loads (its .hf/ and .safetensors go beside it)
    engine = _engine(args)
    loaded = _load(args)
    if "seqlen" in applied:
        seqlen = cap_seqlen(config.processing.seqlen, context_length(loaded.model))
        if seqlen != config.processing.seqlen:
            _log(f"preset {args.preset}: sequence length {config.processing.seqlen} capped at the model's {seqlen}")
        config = replace(config, processing=replace(config.processing, seqlen=seqlen))
    if applied:
        _log(f"preset {args.preset}: " + ", ".join(f"--{d.replace('_', '-')}" for d in sorted(applied)))
    result = curate(loaded, config, args.out, log=_log, progress=_progress_bar("activations"), engine=engine)
    m = result.metrics
    return {
        "n": m.n,
        "strategy": result.selection.strategy,
        "representativeness": m.representativeness,
        "diversity": m.diversity_mean,
        "diversity_min": m.diversity_min,
        "cluster_coverage": m.cluster_coverage,
        **({"expert_coverage": m.expert_coverage} if m.expert_coverage is not None else {}),
        "mix": m.mix,  # the selection's samples per corpus
        "pool_mix": result.pool_mix,  # the pool's, after Stage 2: what the selection drew from
        "selection": result.selection.params,  # cola-quota: each corpus's quota and any shortfall
        "tokens": m.tokens,
        "capability_coverage": m.capability_coverage,
        "seqlen": config.processing.seqlen,
        "stage1": result.stage1,
        "stage2": result.stage2,
        "seconds": round(result.seconds, 3),
        "out": result.paths["jsonl"],
        "files": result.paths,
    }


def cmd_corpus_scores(args: argparse.Namespace) -> dict[str, Any]:
    from cola_core.curation.pipeline import CurateConfig, recommend_mix, score_corpora

    config = flags.from_args(CurateConfig, args)
    config.validate()
    if not config.capabilities:
        raise ColaError("name at least one capability to score the corpora against (--capabilities)")
    engine = _engine(args)
    c = config
    table = score_corpora(_load(args), c.corpora, c.capabilities, c, c.alpha, c.stage1_samples, engine)
    mix = recommend_mix(table, c.deployment, c.target, weights=dict(c.weights))
    return {
        "table": table.to_dict(orient="records"),
        "mix": mix.round(4).to_dict(),
        "alpha": c.alpha,
        "deployment": c.deployment,
    }


def cmd_self_generate(args: argparse.Namespace) -> dict[str, Any]:
    from cola_core.corpora.quality import drop_worst
    from cola_core.corpora.selfgen import SelfGenConfig, sample_self_corpus, write_self_corpus

    config = flags.from_args(SelfGenConfig, args)
    config.validate()  # before the model loads
    check_output(args.out, "self-generated corpus")
    loaded = _load(args)
    sampled = sample_self_corpus(loaded.model, loaded.tokenizer, config, name=Path(args.out).stem)
    records = drop_worst(sampled, config.drop_worst_perplexity)
    path = write_self_corpus(records, args.out)
    ppl = [r.meta["perplexity"] for r in records]
    payload = {"n": len(records), "out": str(path), "mean_perplexity": sum(ppl) / len(ppl)}
    if config.prompts:
        graded = any(r.meta["correct"] is not None for r in sampled)
        payload |= {
            "questions": config.n,
            "right": len(sampled) if graded else None,  # only right answers are kept where gold exists
            "chat_template": bool(sampled[0].meta["chat_template"]),
        }
    return payload


def cmd_compress(args: argparse.Namespace) -> dict[str, Any]:
    from dataclasses import replace

    from cola_core.calibration.files import check_calibration_path
    from cola_core.compress import CompressConfig, compress_with_calibration
    from cola_core.compress.formats import serving_note

    config = flags.from_args(CompressConfig, args)
    if args.format == "compressed-tensors" and config.quantizes and not hasattr(args, "symmetric"):
        # neither --sym nor --asym: symmetric, as llm-compressor's W4A16, so a plain from_pretrained loads it
        config = replace(config, symmetric=True)
        _log("compressed-tensors: a symmetric grid (no zero points; --asym for one per group)")
    config.validate()  # before the model loads
    check_calibration_path(args.calib)
    if note := serving_note(args.format, config.bits if config.quantizes else None):  # said before the work, not after
        _log(note)
    if args.out:
        check_output(args.out, "compressed model", folder=True)
    bar = _progress_bar("layers")
    report = compress_with_calibration(
        _load(args),
        args.calib,
        config,
        out=args.out,
        format=args.format,
        seqlen=args.seqlen,
        progress=lambda d, t, _r: bar(d, t),
        log=_log,
    ).report
    layers = [
        {
            "layer": r["layer"],
            "seconds": round(r["seconds"], 3),
            "sparsity": sum(v["sparsity"] for v in r["linears"].values()) / len(r["linears"]),
            "relative_error": {k: v["relative_error"] for k, v in r["linears"].items()},
            **({"experts": r["experts"]} if "experts" in r else {}),
        }
        for r in report["layers"]
    ]
    return {
        "method": "+".join(filter(None, (report["method"], report["quantize"]))),
        "achieved_sparsity": report["achieved_sparsity"],
        "bits": report["bits"],
        "layers": layers,
        "fallbacks": report["fallbacks"],
        **({"experts": report["experts"]} if "experts" in report else {}),
        "device": report["device"],
        "seqlen": report["calibration"]["seqlen"],
        "calibration_fingerprint": report["calibration"]["fingerprint"],
        "seconds": round(report["seconds"], 3),
        "out": str(args.out),
        "format": report["format"],
        "size_bytes": report["size_bytes"],
    }


def cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    import time

    from cola_core.evaluation.suite import evaluate
    from cola_core.models.chat import uses_template

    t0 = time.perf_counter()
    from cola_core.evaluation.benchmarks import BENCHMARKS

    benchmarks = flags.csv_list(args.benchmarks)
    sources = dict(flags.pair_of(x, "--benchmark-data") for x in args.benchmark_data)
    for name in (*benchmarks, *sources):
        if name not in BENCHMARKS:
            raise ColaError(f"unknown benchmark '{name}': choose from {', '.join(BENCHMARKS)}")
    if args.batch_tokens <= 0:
        raise ColaError(f"--batch-tokens must be positive, got {args.batch_tokens}")
    if benchmarks and args.backend != "lm-eval":  # a benchmark asked for by name must run, or nothing does
        from cola_core.evaluation.benchmarks import check_benchmarks

        check_benchmarks(benchmarks, sources, args.allow_code_execution)
    capabilities = flags.csv_list(args.capabilities)
    harness = args.backend == "lm-eval" and bool(capabilities)
    if harness:  # the real harness scores the built-in items: what it cannot score is said before loading
        from cola_core.evaluation.harness_tasks import HARNESS_CAPABILITIES, evaluate_capabilities_with_harness

        wrong = [c for c in capabilities if c not in HARNESS_CAPABILITIES]
        if wrong:
            raise ColaError(
                f"--backend lm-eval scores the capabilities {', '.join(HARNESS_CAPABILITIES)} the way the built-in suite "
                f"does; {wrong[0]} is a perplexity the harness takes over rolling windows: use --backend builtin for it"
            )
    loaded = _load(args)
    if harness:
        scores = evaluate_capabilities_with_harness(loaded.model, loaded.tokenizer, capabilities, args.limit)
    else:
        scores = evaluate(
            loaded.model,
            loaded.tokenizer,
            capabilities,
            limit=args.limit,
            seed=args.seed,
            batch_tokens=args.batch_tokens,
            chat_template=args.chat_template,
            thinking=args.thinking,
        )
    skipped: dict[str, str] = {}
    if benchmarks and args.backend == "lm-eval":
        from cola_core.evaluation.harness import evaluate_with_harness

        scores |= evaluate_with_harness(
            loaded.model, loaded.tokenizer, benchmarks, limit=args.limit, allow_code_execution=args.allow_code_execution
        )
    elif benchmarks:
        from cola_core.evaluation.benchmarks import run_benchmarks

        found, skipped = run_benchmarks(
            loaded.model,
            loaded.tokenizer,
            benchmarks,
            limit=args.limit,
            seed=args.seed,
            sources=sources,
            allow_code_execution=args.allow_code_execution,
            shots=args.shots,
            batch_tokens=args.batch_tokens,
        )
        scores |= found
    return {
        "model": args.model,
        "scores": {k: {kk: v for kk, v in s.summary().items() if kk != "capability"} for k, s in scores.items()},
        "skipped": skipped,
        "backend": args.backend,
        "chat_template": not harness and uses_template(loaded.tokenizer, args.chat_template),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def cmd_runs(args: argparse.Namespace) -> dict[str, Any]:
    from cola_core.evaluation.runstore import RunStore

    store = RunStore(args.store)
    runs = store.runs(args.experiment)
    cols = ["id", "experiment", "model", "calibration", "seed", "status", "created", "finished", "error"]
    return {"runs": runs[cols].to_dict(orient="records"), "store": str(store.path)}


def cmd_experiment(args: argparse.Namespace) -> dict[str, Any]:
    from cola_core.evaluation.runstore import RunStore
    from cola_core.experiments.config import list_builtin, load_config
    from cola_core.experiments.grid import run_experiment
    from cola_core.experiments.plan import plan_runs
    from cola_core.experiments.report import (
        dense_baselines,
        judged_claims,
        markdown_report,
        models_report,
        proxy_correlation,
        summarise,
    )
    from cola_core.experiments.results import load_results

    if args.list:
        return {"builtin": list_builtin()}
    if not args.config:
        raise ColaError("name a config: --config FILE or a built-in name (see --list)")
    cfg = load_config(args.config)
    store = RunStore(args.store)
    results = []
    for part in cfg.per_model():  # the grid once per model variant (one part without ``models``)
        run_experiment(part, store, log=_log, engine=_engine(args))
        results.append(load_results(plan_runs(part), store))
    command = f"python -m cola_core experiment --config {args.config}"
    parts = cfg.per_model()
    claims = [judged_claims(part, r) for part, r in zip(parts, results, strict=True)]  # judged once, shown twice
    pooled = judged_claims(cfg, results) if cfg.models else None
    if cfg.models:
        report = models_report(cfg, results, command, pooled, claims)
    else:
        report = markdown_report(cfg, results[0], command, claims[0])
    if args.report:
        Path(args.report).write_text(report + "\n")

    def about(result, judged) -> dict[str, Any]:
        return {
            "dense": dense_baselines(result).to_dict(orient="records"),
            "claims": judged.to_dict(orient="records"),
            "summary": summarise(result).to_dict(orient="records"),
            "proxy_correlation": proxy_correlation(result).to_dict(orient="records"),
        }

    out = {"experiment": cfg.name, "runs": sum(len(r.scores) for r in results)}
    if cfg.models:  # the claims pooled over the models, and each model's own numbers
        out["claims"] = pooled.to_dict(orient="records")
        out["per_model"] = {p.model: about(r, j) for p, r, j in zip(parts, results, claims, strict=True)}
    else:
        out.update(about(results[0], claims[0]))
    return {
        **out,
        "report": args.report,
        "markdown": report,
    }
