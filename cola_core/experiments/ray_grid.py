"""Experiment cells on a Ray actor pool: each actor holds one model replica and runs whole cells
(:func:`cola_core.experiments.cells.run_cell`); the driver stays the only run-store writer."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from cola_core.engine.config import EngineConfig
from cola_core.engine.ray_cluster import actor_pool, ensure_ray, result_rows, worker_name
from cola_core.paths import cache_root


class _CellRunner:
    """An actor that holds one model replica and runs experiment cells (calibrate → compress → evaluate)."""

    def __init__(self, experiment: str, root: str) -> None:
        import copy

        from cola_core.experiments.config import ExperimentConfig
        from cola_core.models.loading import load_model

        os.environ["COLA_CACHE_DIR"] = root  # corpora and activation caches: the driver's
        self.cfg = ExperimentConfig.from_dict(json.loads(experiment))
        self.loaded = load_model(self.cfg.model, device="auto")
        self.dense = copy.deepcopy(self.loaded.model.state_dict())

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        from cola_core.experiments.cells import run_cell

        out: dict[str, list] = {"key": [], "result": []}
        for cell in batch["cell"]:
            for key, result in run_cell(self.loaded, self.dense, self.cfg, json.loads(str(cell)), "auto"):
                if "report" in result:
                    result["report"] = {**result["report"], "engine": "ray", "worker": worker_name()}
                out["key"].append(key)
                out["result"].append(json.dumps(result))
        return out


def ray_cells(
    experiment: dict[str, Any], cells: list[dict[str, Any]], engine: EngineConfig
) -> Iterator[tuple[str, dict]]:
    """Run experiment cells on an actor pool; yields (run key, result) as runs finish anywhere."""
    ray = ensure_ray(engine)
    ds = ray.data.from_items([{"cell": json.dumps(c)} for c in cells], override_num_blocks=len(cells))
    ctor = {"experiment": json.dumps(experiment), "root": str(cache_root())}
    ds = actor_pool(ray, ds, _CellRunner, ctor, engine, len(cells))
    for row in result_rows(ds):
        yield str(row["key"]), json.loads(str(row["result"]))
