"""The three COLA stages' trail of an experiment's calibration sets, for the HTML report.

An experiment run stores its calibration set's token fingerprint, proxy and (newer runs) mix and
token count, not the pool, Stage 2's changes or the 2-D map. Curation is deterministic given its
settings, so the trail is rebuilt here from the config (:func:`~cola_core.experiments.cells.build_calibration`,
the grid's own builder) and shown only when the rebuilt set's token fingerprint equals the
stored run's — then it is that run's calibration set, not a look-alike. When the model is not on
disk, the pool is self-generated, or the pools are too large to rebuild in seconds, the report says
so instead."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cola_core.curation.map2d import pca_2d
from cola_core.errors import ColaError
from cola_core.experiments.cells import build_calibration
from cola_core.experiments.config import CalibrationSpec, ExperimentConfig
from cola_core.models.loading import load_model_cached, resolve_model
from cola_core.storage.fingerprints import calibration_fingerprint

REBUILD_BUDGET = 4000  # pool samples rebuilt per report at most (cola-tiny: ~0.5 s per 120 on 2 cores)


@dataclass
class SetTrail:
    """One calibration set at one seed: what Stages 1–3 did (``None`` where not rebuilt) and why."""

    calibration: str
    seed: int
    status: str  # a sentence: verified against run #id, or why the trail was not rebuilt
    verified: bool = False
    stage1: dict[str, Any] | None = None
    stage2: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    xy: list[tuple[float, float]] = field(default_factory=list)  # PCA of the pool's activation space
    corpora: list[str] = field(default_factory=list)  # each pool sample's corpus
    selected: list[bool] = field(default_factory=list)


def model_on_disk(name: str) -> bool:
    """Whether a model can be loaded without the network (built-in, local folder or HF cache)."""
    try:
        where, _ = resolve_model(name)
    except ColaError:
        return False
    return (Path(where) / "config.json").is_file()


def rebuild_set(loaded, spec: CalibrationSpec, cfg: ExperimentConfig, seed: int, stored: str, run_id: int) -> SetTrail:
    """Rebuild one set as the grid built it and compare its token fingerprint with ``stored``."""
    built = build_calibration(loaded, spec, cfg, seed)
    space, selection, metrics = built.space, built.selection, built.metrics
    fp = calibration_fingerprint(built.tensors)
    if fp != stored:
        return SetTrail(
            spec.name,
            seed,
            f"rebuilt set differs from run #{run_id} (tokens {fp} ≠ stored {stored}): the code or data changed "
            "since the run, so its trail is not shown",
        )
    picked = set(int(i) for i in selection.indices)
    return SetTrail(
        spec.name,
        seed,
        f"rebuilt from the config at seed {seed}; its tokens match run #{run_id} (fingerprint {fp})",
        verified=True,
        stage1=space.stage1,
        stage2=space.stage2,
        metrics=metrics.to_dict(),
        xy=[(float(x), float(y)) for x, y in pca_2d(space.embedded.space)],
        corpora=[r.corpus for r in space.records],
        selected=[i in picked for i in range(len(space.records))],
    )


def experiment_trails(
    cfg: ExperimentConfig,
    stored: Mapping[str, tuple[int, int, str]],
    budget: int = REBUILD_BUDGET,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, SetTrail]:
    """Per calibration set: its trail at the seed of ``stored[set] = (seed, run id, token fingerprint)``
    (a finished run of that set), or a SetTrail whose status says why there is none."""
    trails: dict[str, SetTrail] = {}
    on_disk = model_on_disk(cfg.model)
    used = 0
    for spec in cfg.calibration_sets:
        if spec.name not in stored:
            trails[spec.name] = SetTrail(spec.name, -1, "no finished run of this set")
            continue
        seed, run_id, fp = stored[spec.name]
        why = ""
        if not on_disk:
            why = f"the model {cfg.model} is no longer on disk"
        elif spec.self_generated:
            why = "a self-generated pool (generating it again is the slow part)"
        elif not fp:
            why = f"run #{run_id} stores no calibration fingerprint to check a rebuild against"
        elif used + cfg.curate_config(spec, seed).pool_size > budget:
            why = f"rebuilding more than {budget} pool samples would slow the report down"
        if why:
            trails[spec.name] = SetTrail(spec.name, seed, f"not rebuilt: {why}")
            continue
        used += cfg.curate_config(spec, seed).pool_size
        log(f"report: rebuilding calibration set {spec.name} (seed {seed}) to check its trail")
        try:
            loaded = load_model_cached(cfg.model, "cpu")
            trails[spec.name] = rebuild_set(loaded, spec, cfg, seed, fp, run_id)
        except Exception as exc:  # the report still builds; the section says what went wrong
            trails[spec.name] = SetTrail(spec.name, seed, f"not rebuilt: {type(exc).__name__}: {exc}")
    return trails
