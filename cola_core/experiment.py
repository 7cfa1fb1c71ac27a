"""Experiments: model × calibration sets × compression settings × seeds, every run recorded in the
run store, finished runs skipped (resume after a crash or Ctrl-C), and a summary with intervals.

This is the COLA paper's main experiment in one command (He et al., NeurIPS 2025, §3): does the
calibration data decide which capabilities survive compression?
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cola_core.compress import CompressConfig, compress_model
from cola_core.curate import (
    CurateConfig,
    build_pool,
    coverage_by_capability,
    embed,
    embed_probes,
    measure,
    run_selection,
)
from cola_core.errors import ColaError
from cola_core.evaluation import Score, evaluate, retention
from cola_core.export import tokenize_calibration
from cola_core.models import load_model
from cola_core.processing import ProcessingConfig, process_records
from cola_core.ray_engine import EngineConfig
from cola_core.runstore import RunStore

BUILTIN_DIR = Path(__file__).resolve().parent / "experiments"
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


@dataclass(frozen=True)
class CalibrationSpec:
    name: str
    corpora: tuple[str, ...] = ("prose", "code", "math", "facts")
    strategy: str = "random"
    lam: float = 0.5
    self_generated: bool = False


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    model: str = "cola-tiny"
    n: int = 64
    pool_size: int = 800
    seqlen: int = 128
    calibration_sets: tuple[CalibrationSpec, ...] = ()
    compression: tuple[dict, ...] = ()
    seeds: tuple[int, ...] = (0, 1, 2)
    capabilities: tuple[str, ...] = ("lm", "code", "math", "facts")
    limit: int = 150
    claims: tuple[dict, ...] = ()
    description: str = ""

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ExperimentConfig:
        try:
            sets = tuple(
                CalibrationSpec(**{**c, "corpora": tuple(c.get("corpora", CalibrationSpec.corpora))})
                for c in d["calibration_sets"]
            )
            return ExperimentConfig(**{**d, "calibration_sets": sets, "compression": tuple(d["compression"]), "seeds": tuple(d.get("seeds", (0,))),
                                       "capabilities": tuple(d.get("capabilities", ExperimentConfig.capabilities)), "claims": tuple(d.get("claims", ()))})  # fmt: skip
        except (KeyError, TypeError) as exc:
            raise ColaError(f"bad experiment config: {exc}") from None


def list_builtin() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.json"))


def load_config(name_or_path: str) -> ExperimentConfig:
    path = Path(name_or_path)
    if not path.is_file():
        path = BUILTIN_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise ColaError(
            f"no experiment config '{name_or_path}': give a JSON file or one of {', '.join(list_builtin())}"
        )
    try:
        return ExperimentConfig.from_dict(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise ColaError(f"{path.name} is not valid JSON (line {exc.lineno}: {exc.msg})") from None


def _calibration(loaded, spec: CalibrationSpec, cfg: ExperimentConfig, seed: int) -> tuple[dict, dict[str, float], str]:
    """Token tensors, capability coverage (the proxy), and the ids' fingerprint for one set and seed."""
    import hashlib

    curate_cfg = CurateConfig(corpora=spec.corpora, pool_size=cfg.pool_size, n=cfg.n, strategy=spec.strategy, lam=spec.lam, seed=seed,
                              capabilities=("prose", "code", "math", "facts"), processing=ProcessingConfig(seqlen=cfg.seqlen))  # fmt: skip
    if spec.self_generated:
        from cola_core.selfgen import SelfGenConfig, generate_self_corpus

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


def _label(c: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in sorted(c.items()))


def pending_cells(cfg: ExperimentConfig, store: RunStore, log: Callable[[str], None] = lambda s: None) -> list[dict]:
    """The grid's unfinished work as cells — the dense evaluation, and each (calibration set, seed)
    with its runs not yet done (one calibration set serves every compression setting of a cell)."""
    cells = []
    dense_key = f"{cfg.name}/dense"
    dense_id = store.create(
        cfg.model, key=dense_key, experiment=cfg.name, calibration="dense", settings={"method": "dense"}
    )
    if store.get(dense_id)["status"] != "done":
        cells.append({"calibration": "dense", "seed": None, "runs": [{"key": dense_key, "settings": {}}]})
    for spec in cfg.calibration_sets:
        for seed in cfg.seeds:
            runs = []
            for c in cfg.compression:
                key = f"{cfg.name}/{spec.name}/{_label(c)}/{seed}"
                rid = store.create(
                    cfg.model, key=key, experiment=cfg.name, calibration=spec.name, seed=seed, settings=c
                )
                if store.get(rid)["status"] != "done":
                    runs.append({"key": key, "settings": c})
            if runs:
                cells.append({"calibration": spec.name, "seed": seed, "runs": runs})
            else:
                log(f"skip {spec.name} seed {seed}: done")
    return cells


def run_cell(loaded, dense_state: dict, cfg: ExperimentConfig, cell: dict, device: str) -> Iterator[tuple[str, dict]]:
    """Run one cell; yields ``(run key, {"scores", "report"})`` per run, or ``{"error"}`` and stops.
    The local loop and the Ray workers (:mod:`cola_core.distributed`) both run this."""
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
        report = {"proxy": proxy, "calibration_fingerprint": fp, "seconds": time.perf_counter() - t0,
                  "layers": [{"layer": r["layer"], "seconds": r["seconds"]} for r in result.layers]}  # fmt: skip
        yield run["key"], {"scores": {k: asdict(s) for k, s in scores.items()}, "report": report}
    loaded.model.load_state_dict(dense_state)


def _local_cells(cfg: ExperimentConfig, cells: list[dict]) -> Iterator[tuple[str, dict]]:
    loaded = load_model(cfg.model, device="cpu")
    dense_state = copy.deepcopy(loaded.model.state_dict())
    for cell in cells:
        yield from run_cell(loaded, dense_state, cfg, cell, "cpu")


def run_experiment(cfg: ExperimentConfig, store: RunStore, log: Callable[[str], None] = lambda s: None,
                   engine: EngineConfig | None = None) -> pd.DataFrame:  # fmt: skip
    """Run (or resume) every cell here or on Ray workers; returns the per-run score table. The run
    store is written by this process only, as results arrive."""
    engine = engine or EngineConfig()
    engine.validate()
    cells = pending_cells(cfg, store, log)
    for cell in cells:
        for run in cell["runs"]:
            store.start(store.create(cfg.model, key=run["key"]))
    if cells:
        log(f"{sum(len(c['runs']) for c in cells)} runs in {len(cells)} cells on {engine.describe()}")
        if engine.kind == "ray":
            from cola_core.distributed import ray_cells

            results = ray_cells(asdict(cfg), cells, engine)
        else:
            results = _local_cells(cfg, cells)
        for key, result in results:
            rid = store.create(cfg.model, key=key)
            if "error" in result:
                store.fail(rid, result["error"])
                raise ColaError(f"run {key} failed: {result['error']}")
            store.finish(rid, {k: Score(**v) for k, v in result["scores"].items()}, result["report"])
            log(f"done {key}" + (f" in {result['report']['seconds']:.0f}s" if "seconds" in result["report"] else ""))
    return retention_table(cfg, store)


def retention_table(cfg: ExperimentConfig, store: RunStore) -> pd.DataFrame:
    """One row per (calibration set, compression, seed, capability): retention with its interval."""
    runs = store.runs(cfg.name)
    runs = runs[runs["status"] == "done"]
    dense = runs[runs["calibration"] == "dense"]
    if dense.empty:
        return pd.DataFrame()
    dense_scores = store.score_items(int(dense.iloc[0]["id"]))
    rows = []
    for _, run in runs[runs["calibration"] != "dense"].iterrows():
        scores = store.score_items(int(run["id"]))
        proxy = json.loads(run["report"] or "{}").get("proxy", {})
        for capability, s in scores.items():
            value, lo, hi = retention(dense_scores[capability], s)
            rows.append({"calibration": run["calibration"], "compression": _label(json.loads(run["settings"])), "seed": run["seed"],
                         "capability": capability, "retention": value, "ci_low": lo, "ci_high": hi, "score": s.score,
                         "coverage": proxy.get(capability.split("_")[0], np.nan)})  # fmt: skip
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean retention over seeds ± a t-interval, per calibration set × compression × capability."""

    def agg(g: pd.DataFrame) -> pd.Series:
        x = g["retention"].to_numpy()
        half = T95.get(len(x) - 1, 1.96) * x.std(ddof=1) / math.sqrt(len(x)) if len(x) > 1 else float("nan")
        return pd.Series(
            {
                "mean": x.mean(),
                "ci_low": x.mean() - half,
                "ci_high": x.mean() + half,
                "seeds": len(x),
                "coverage": g["coverage"].mean(),
            }
        )

    return table.groupby(["compression", "capability", "calibration"]).apply(agg, include_groups=False).reset_index()


def judge_claim(summary: pd.DataFrame, table: pd.DataFrame, claim: dict) -> dict:
    """``{"better": set A, "worse": set B, "capability", "compression"}``: supported when A's retention
    beats B's with a 95% t-interval of the seed-paired difference above zero, not supported when below."""
    sub = table[(table["capability"] == claim["capability"]) & (table["compression"] == claim["compression"])]
    a = sub[sub["calibration"] == claim["better"]].set_index("seed")["retention"]
    b = sub[sub["calibration"] == claim["worse"]].set_index("seed")["retention"]
    diff = (a - b).dropna().to_numpy()
    if len(diff) < 2:
        return {
            **claim,
            "difference": float("nan"),
            "ci_low": float("nan"),
            "ci_high": float("nan"),
            "verdict": "inconclusive",
        }
    half = T95.get(len(diff) - 1, 1.96) * diff.std(ddof=1) / math.sqrt(len(diff))
    lo, hi = diff.mean() - half, diff.mean() + half
    verdict = "supported" if lo > 0 else "not supported" if hi < 0 else "inconclusive"
    return {**claim, "difference": float(diff.mean()), "ci_low": float(lo), "ci_high": float(hi), "verdict": verdict}


def proxy_correlation(table: pd.DataFrame) -> pd.DataFrame:
    """Per capability and compression: Spearman correlation between each calibration set's mean
    capability coverage (the curation proxy) and its mean measured retention."""
    rows = []
    for (comp, capability), g in table.groupby(["compression", "capability"]):
        means = g.groupby("calibration")[["coverage", "retention"]].mean().dropna()
        if len(means) >= 3:
            rho = means["coverage"].rank().corr(means["retention"].rank())
            rows.append({"compression": comp, "capability": capability, "spearman": rho, "sets": len(means)})
    return pd.DataFrame(rows)


def markdown_report(cfg: ExperimentConfig, table: pd.DataFrame, command: str) -> str:
    summary = summarise(table)
    lines = [f"# Experiment `{cfg.name}`", "", cfg.description, "", f"Produced by `{command}`; model {cfg.model}, n = {cfg.n} × {cfg.seqlen} tokens, "
             f"seeds {list(cfg.seeds)}, {cfg.limit} held-out items per capability.", "", "## Claims", "",
             "| claim | capability | compression | retention difference (better − worse) | 95% CI | verdict |", "|---|---|---|---|---|---|"]  # fmt: skip
    for claim in cfg.claims:
        j = judge_claim(summary, table, claim)
        lines.append(f"| {claim['title']} ({claim['better']} vs {claim['worse']}) | {claim['capability']} | {claim['compression']} | "
                     f"{j['difference']:+.3f} | [{j['ci_low']:+.3f}, {j['ci_high']:+.3f}] | **{j['verdict']}** |")  # fmt: skip
    lines += ["", "## Retention (mean over seeds, 95% t-interval)", ""]
    for comp, g in summary.groupby("compression"):
        pivot = g.assign(cell=g.apply(lambda r: f"{r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]", axis=1))
        pivot = pivot.pivot(index="calibration", columns="capability", values="cell")
        lines += [f"### {comp}", "", to_markdown(pivot), ""]
    corr = proxy_correlation(table)
    if not corr.empty:
        lines += ["## Does the proxy predict retention?", "", "Spearman rank correlation across calibration sets between capability "
                  "coverage (computed at curation time) and measured retention:", "", to_markdown(corr.round(3), index=False), ""]  # fmt: skip
    return "\n".join(lines)


def to_markdown(frame: pd.DataFrame, index: bool = True) -> str:
    """A GitHub table without the optional `tabulate` dependency."""
    frame = frame.reset_index() if index else frame
    cols = [str(c) for c in frame.columns]
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols), *rows])
