"""One cell of an experiment grid: calibrate → compress → evaluate (run locally or on Ray workers)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from cola_core.calibration.files import tokenize_calibration
from cola_core.compress import CompressConfig, compress_with_calibration
from cola_core.corpora.selfgen import generate_self_corpus
from cola_core.curation.metrics import SelectionMetrics, probe_coverage
from cola_core.curation.pipeline import Space, build_space, coverage_by_capability, select_and_measure
from cola_core.curation.selection import Selection
from cola_core.evaluation.suite import answer_prompts, evaluate
from cola_core.experiments.config import CalibrationSpec, ExperimentConfig
from cola_core.experiments.plan import selfgen_config
from cola_core.storage.fingerprints import calibration_fingerprint


@dataclass
class BuiltSet:
    """One experiment calibration set as the grid builds it: the space (pool, probes, Stages 1–2),
    Stage 3's selection and its metrics, and the token tensors the compressor reads."""

    space: Space
    selection: Selection
    metrics: SelectionMetrics
    tensors: dict


def build_calibration(loaded, spec: CalibrationSpec, cfg: ExperimentConfig, seed: int) -> BuiltSet:
    """Build one set at one seed: the pipeline of :mod:`cola_core.curation.pipeline`, as the CLI runs
    it (the seed draws the pool from the whole pool split and drives the selection). The grid, the
    HTML report's trail and the Compare page's maps all build sets here, so a rebuilt set is the
    run's own exactly when its token fingerprint matches."""
    curate_cfg = cfg.curate_config(spec, seed)
    pool = None
    if spec.self_generated:
        pool = generate_self_corpus(loaded.model, loaded.tokenizer, selfgen_config(curate_cfg, spec.selfgen))
    space = build_space(loaded, curate_cfg, pool=pool, need=curate_cfg.n)
    selection, metrics = select_and_measure(space, curate_cfg)
    chosen = [space.records[i] for i in selection.indices]
    tensors = tokenize_calibration(chosen, loaded.tokenizer, curate_cfg.processing.seqlen)
    return BuiltSet(space, selection, metrics, tensors)


def _calibration(loaded, spec: CalibrationSpec, cfg: ExperimentConfig, seed: int) -> tuple[dict, dict]:
    """Token tensors and what the report needs of one set and seed (the proxy, the set's mix and
    real-token count, its fingerprint, the seconds it took). The proxy is coverage of the capability
    probes on the probes' own scale (metrics.probe_coverage), comparable across sets with different
    pools."""
    t0 = time.perf_counter()
    built = build_calibration(loaded, spec, cfg, seed)
    points = built.space.embedded.space[built.selection.indices]
    about = {
        "proxy": coverage_by_capability(probe_coverage(built.space.probes, points)),
        "proxy_pool_centred": coverage_by_capability(built.metrics.capability_coverage),
        "mix": built.metrics.mix,
        "tokens": int(built.tensors["attention_mask"].sum()),
        "calibration_fingerprint": calibration_fingerprint(built.tensors),
        "calibration_seconds": time.perf_counter() - t0,
    }
    return built.tensors, about


def _layer_summary(layer: dict) -> dict:
    """What an experiment run keeps of a layer's compression report: its time and each linear's
    relative reconstruction error (the codes and statistics stay out of the run store)."""
    linears = {name: {"relative_error": v.get("relative_error")} for name, v in layer.get("linears", {}).items()}
    return {"layer": layer["layer"], "seconds": layer["seconds"], "linears": linears}


def run_cell(loaded, dense_state: dict, cfg: ExperimentConfig, cell: dict, device: str) -> Iterator[tuple[str, dict]]:
    """Run one cell; yields ``(run key, {"scores", "report"})`` per run, or ``{"error"}`` and stops.
    The local loop and the Ray workers (:mod:`cola_core.experiments.ray_grid`) both run this.

    ``cell["done"]`` lists the finished runs of the same set and seed with their calibration
    fingerprints: any whose calibration set differs from the one built now is run again."""
    loaded.model.load_state_dict(dense_state)
    if cell["calibration"] == "dense":
        t0 = time.perf_counter()
        scores = evaluate(loaded.model, loaded.tokenizer, cfg.capabilities, cfg.limit)
        report = {"seconds": time.perf_counter() - t0, "answers": answer_prompts(loaded.model, loaded.tokenizer)}
        yield cell["runs"][0]["key"], {"scores": {k: asdict(s) for k, s in scores.items()}, "report": report}
        return
    spec = next(s for s in cfg.calibration_sets if s.name == cell["calibration"])
    tensors, about = _calibration(loaded, spec, cfg, cell["seed"])
    fp = about["calibration_fingerprint"]
    stale = [r for r in cell.get("done", ()) if r["fingerprint"] != fp]
    runs = [*cell["runs"], *stale]
    share = about["calibration_seconds"] / len(runs)  # the set serves every run of the cell
    for run in runs:
        t0 = time.perf_counter()
        try:
            loaded.model.load_state_dict(dense_state)
            config = CompressConfig(**run["settings"], device=device)
            result = compress_with_calibration(loaded, tensors, config, keep_codes=False).result
            scores = evaluate(loaded.model, loaded.tokenizer, cfg.capabilities, cfg.limit)
            answers = answer_prompts(loaded.model, loaded.tokenizer)  # the weights are not kept: their answers are
        except Exception as exc:
            yield run["key"], {"error": f"{type(exc).__name__}: {exc}"}
            return
        report = {
            **about,
            "seconds": time.perf_counter() - t0 + share,  # this run's compute, its share of curation included
            "layers": [_layer_summary(r) for r in result.layers],
            "answers": answers,
        }
        if "fingerprint" in run:
            report["recomputed"] = f"calibration set {run['fingerprint']} → {fp}"
        yield run["key"], {"scores": {k: asdict(s) for k, s in scores.items()}, "report": report}
    loaded.model.load_state_dict(dense_state)
