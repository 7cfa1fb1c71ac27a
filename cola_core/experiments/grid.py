"""Experiments: model × calibration sets × compression settings × seeds, every run recorded in the
run store, finished runs skipped (resume after a crash or Ctrl-C) when their full settings, model
and data match (plan.py), and a summary with intervals.

This is the COLA paper's main experiment in one command (He et al., NeurIPS 2025, §3): does the
calibration data decide which capabilities survive compression?
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterator

import pandas as pd

from cola_core.engine.config import EngineConfig
from cola_core.errors import ColaError
from cola_core.evaluation.runstore import RunStore
from cola_core.evaluation.suite import Score
from cola_core.experiments.cells import run_cell
from cola_core.experiments.config import ExperimentConfig
from cola_core.experiments.plan import Plan, PlannedRun, plan_runs
from cola_core.experiments.results import retention_table
from cola_core.models.loading import load_model


def _create(store: RunStore, cfg: ExperimentConfig, plan: Plan, run: PlannedRun) -> dict:
    rid = store.create(
        cfg.model,
        key=run.key,
        experiment=cfg.name,
        model_fingerprint=plan.model_fingerprint,
        calibration=run.calibration,
        seed=run.seed,
        settings=run.settings,
        settings_hash=run.settings_hash,
    )
    return store.get(rid)


def pending_cells(
    cfg: ExperimentConfig, store: RunStore, log: Callable[[str], None] = lambda s: None, plan: Plan | None = None
) -> list[dict]:
    """The grid's unfinished work as cells — the dense evaluation, and each (calibration set, seed)
    with its runs not yet done (one calibration set serves every compression setting of a cell).
    A stored run counts as done only under its full key (plan.py): settings, model and data."""
    plan = plan or plan_runs(cfg)
    cells = []
    if _create(store, cfg, plan, plan.dense)["status"] != "done":
        cells.append({"calibration": "dense", "seed": None, "runs": [{"key": plan.dense.key, "settings": {}}]})
    for (name, seed), group in itertools.groupby(plan.runs, key=lambda r: (r.calibration, r.seed)):
        runs, done = [], []
        for run in group:
            row = _create(store, cfg, plan, run)
            if row["status"] == "done":
                done.append({"key": run.key, "settings": run.settings, "fingerprint": row["calibration_fingerprint"]})
            else:
                runs.append({"key": run.key, "settings": run.settings})
        if runs:
            cells.append({"calibration": name, "seed": seed, "runs": runs, "done": done})
        else:
            log(f"skip {name} seed {seed}: done")
    return cells


def _local_cells(cfg: ExperimentConfig, cells: list[dict], model_fp: str) -> Iterator[tuple[str, dict]]:
    loaded = load_model(cfg.model, device="cpu")
    if loaded.fingerprint != model_fp:
        raise ColaError(
            f"{cfg.model} changed while the experiment was planned (weights {loaded.fingerprint} ≠ {model_fp})"
        )
    dense_state = copy.deepcopy(loaded.model.state_dict())
    for cell in cells:
        yield from run_cell(loaded, dense_state, cfg, cell, "cpu")


def run_experiment(
    cfg: ExperimentConfig,
    store: RunStore,
    log: Callable[[str], None] = lambda s: None,
    engine: EngineConfig | None = None,
) -> pd.DataFrame:
    """Run (or resume) every cell here or on Ray workers; returns the per-run score table of this
    config's runs. The run store is written by this process only, as results arrive."""
    engine = engine or EngineConfig()
    engine.validate()
    cfg.validate()
    plan = plan_runs(cfg)
    cells = pending_cells(cfg, store, log, plan)
    for cell in cells:
        for run in cell["runs"]:
            store.start(store.create(cfg.model, key=run["key"]))
    if cells:
        log(f"{sum(len(c['runs']) for c in cells)} runs in {len(cells)} cells on {engine.describe()}")
        if engine.kind == "ray":
            from cola_core.experiments.ray_grid import ray_cells

            results = ray_cells(cfg.to_dict(), cells, engine)
        else:
            results = _local_cells(cfg, cells, plan.model_fingerprint)
        for key, result in results:
            rid = store.create(cfg.model, key=key)
            if "error" in result:
                store.fail(rid, result["error"])
                raise ColaError(f"run {key} failed: {result['error']}")
            scores = {k: Score(**v) for k, v in result["scores"].items()}
            store.finish(rid, scores, result["report"], result["report"].get("calibration_fingerprint"))
            log(f"done {key}" + (f" in {result['report']['seconds']:.0f}s" if "seconds" in result["report"] else ""))
            if "recomputed" in result["report"]:
                log(f"recomputed {key}: {result['report']['recomputed']}")
    return retention_table(plan, store)
