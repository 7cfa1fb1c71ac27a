"""One cell of an experiment grid: calibrate → compress → evaluate (run locally or on Ray workers)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict

from cola_core.compress import CompressConfig, compress_model
from cola_core.curation.export import tokenize_calibration
from cola_core.curation.pipeline import (
    CurateConfig,
    build_pool,
    coverage_by_capability,
    embed,
    embed_probes,
    measure,
    run_selection,
)
from cola_core.curation.processing import ProcessingConfig, process_records
from cola_core.evaluation.suite import evaluate
from cola_core.experiments.config import CalibrationSpec, ExperimentConfig


def _calibration(loaded, spec: CalibrationSpec, cfg: ExperimentConfig, seed: int) -> tuple[dict, dict[str, float], str]:
    """Token tensors, capability coverage (the proxy), and the ids' fingerprint for one set and seed."""
    import hashlib

    curate_cfg = CurateConfig(
        corpora=spec.corpora,
        pool_size=cfg.pool_size,
        n=cfg.n,
        strategy=spec.strategy,
        lam=spec.lam,
        seed=seed,
        capabilities=("prose", "code", "math", "facts"),
        processing=ProcessingConfig(seqlen=cfg.seqlen),
    )
    if spec.self_generated:
        from cola_core.corpora.selfgen import SelfGenConfig, generate_self_corpus

        pool = generate_self_corpus(
            loaded.model, loaded.tokenizer, SelfGenConfig(n=cfg.pool_size, max_new_tokens=cfg.seqlen, seed=seed)
        )
    else:
        pool = build_pool(spec.corpora, cfg.pool_size)
    samples = process_records(pool, loaded.tokenizer, curate_cfg.processing)
    embedded = embed(loaded, samples, curate_cfg)
    selection = run_selection(embedded, curate_cfg)
    probes = embed_probes(loaded, curate_cfg.capabilities, curate_cfg)
    metrics = measure(embedded, selection, probes, seed=seed)
    chosen = [embedded.records[i] for i in selection.indices]
    fp = hashlib.sha256("\n".join(r.id for r in chosen).encode()).hexdigest()[:16]
    proxy = coverage_by_capability(metrics.capability_coverage)
    return tokenize_calibration(chosen, loaded.tokenizer, cfg.seqlen), proxy, fp


def run_cell(loaded, dense_state: dict, cfg: ExperimentConfig, cell: dict, device: str) -> Iterator[tuple[str, dict]]:
    """Run one cell; yields ``(run key, {"scores", "report"})`` per run, or ``{"error"}`` and stops.
    The local loop and the Ray workers (:mod:`cola_core.curation.ray_activations`) both run this."""
    loaded.model.load_state_dict(dense_state)
    if cell["calibration"] == "dense":
        scores = evaluate(loaded.model, loaded.tokenizer, cfg.capabilities, cfg.limit)
        yield cell["runs"][0]["key"], {"scores": {k: asdict(s) for k, s in scores.items()}, "report": {}}
        return
    spec = next(s for s in cfg.calibration_sets if s.name == cell["calibration"])
    tensors, proxy, fp = _calibration(loaded, spec, cfg, cell["seed"])
    for run in cell["runs"]:
        t0 = time.perf_counter()
        try:
            loaded.model.load_state_dict(dense_state)
            result = compress_model(loaded.model, tensors, CompressConfig(**run["settings"], device=device))
            scores = evaluate(loaded.model, loaded.tokenizer, cfg.capabilities, cfg.limit)
        except Exception as exc:
            yield run["key"], {"error": f"{type(exc).__name__}: {exc}"}
            return
        report = {
            "proxy": proxy,
            "calibration_fingerprint": fp,
            "seconds": time.perf_counter() - t0,
            "layers": [{"layer": r["layer"], "seconds": r["seconds"]} for r in result.layers],
        }
        yield run["key"], {"scores": {k: asdict(s) for k, s in scores.items()}, "report": report}
    loaded.model.load_state_dict(dense_state)
