"""Experiments: model × calibration sets × compression settings × seeds, every run recorded in the
run store, finished runs skipped (resume after a crash or Ctrl-C), and a summary with intervals.

This is the COLA paper's main experiment in one command (He et al., NeurIPS 2025, §3): does the
calibration data decide which capabilities survive compression?
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import asdict

import pandas as pd

from cola_core.engine.config import EngineConfig
from cola_core.errors import ColaError
from cola_core.evaluation.runstore import RunStore
from cola_core.evaluation.suite import Score
from cola_core.experiments.cells import run_cell
from cola_core.experiments.config import ExperimentConfig, compression_label
from cola_core.experiments.report import retention_table
from cola_core.models.loading import load_model


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
                key = f"{cfg.name}/{spec.name}/{compression_label(c)}/{seed}"
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


def _local_cells(cfg: ExperimentConfig, cells: list[dict]) -> Iterator[tuple[str, dict]]:
    loaded = load_model(cfg.model, device="cpu")
    dense_state = copy.deepcopy(loaded.model.state_dict())
    for cell in cells:
        yield from run_cell(loaded, dense_state, cfg, cell, "cpu")


def run_experiment(
    cfg: ExperimentConfig,
    store: RunStore,
    log: Callable[[str], None] = lambda s: None,
    engine: EngineConfig | None = None,
) -> pd.DataFrame:
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
            from cola_core.experiments.ray_grid import ray_cells

            results = ray_cells(asdict(cfg), cells, engine)
        else:
            results = _local_cells(cfg, cells)
        for key, result in results:
            rid = store.create(cfg.model, key=key)
            if "error" in result:
                store.fail(rid, result["error"])
                raise ColaError(f"run {key} failed: {result['error']}")
            scores = {k: Score(**v) for k, v in result["scores"].items()}
            store.finish(rid, scores, result["report"], result["report"].get("calibration_fingerprint"))
            log(f"done {key}" + (f" in {result['report']['seconds']:.0f}s" if "seconds" in result["report"] else ""))
    return retention_table(cfg, store)
