"""A process-wide, thread-safe cache of prepared activation spaces for interactive front ends.

The dashboard's sessions share one prepared space per settings (records, projected space, PCA
preview, clusters, tradeoff index); the heavy activations behind it are memory-mapped from the disk
cache. Preparing is serialised per key, so two sessions asking for the same space compute it once.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from cola_core.corpora import Record
from cola_core.curation.activations import Progress
from cola_core.curation.map2d import pca_2d, pca_project, place_outside
from cola_core.curation.pipeline import (
    DEFAULT_CAPABILITIES,
    CurateConfig,
    Embedded,
    build_space,
    coverage_by_capability,
    describe_stages,
    embed_probes,
    measure,
    run_selection,
)
from cola_core.curation.selection import selection_strategy
from cola_core.curation.space import Clusters, cluster_space
from cola_core.curation.tradeoff import TradeoffIndex, build_tradeoff_index
from cola_core.engine.config import EngineConfig
from cola_core.models.loading import DEFAULT_MODEL, load_model_cached
from cola_core.settings import build, selection_settings


@dataclass(frozen=True)
class SpaceSettings:
    """What a prepared space depends on: the model, the map's clusters, and the curation config the
    pool is built with. Its Stage 3 settings (n, strategy, λ) stay at their defaults: they pick
    samples from a built space, they do not change it (:meth:`selection`)."""

    model: str = DEFAULT_MODEL
    device: str = "auto"
    clusters: int = 16
    score_perplexity: bool = True  # costs one forward pass over the pool; enables colouring by perplexity
    curation: CurateConfig = field(default_factory=CurateConfig)

    @staticmethod
    def of(
        model: str = DEFAULT_MODEL,
        device: str = "auto",
        clusters: int = 16,
        score_perplexity: bool = True,
        **curation: Any,
    ) -> SpaceSettings:
        """The settings of a space from flat curation settings (``seqlen=64``, ``corpora=(...)``), as
        :func:`cola_core.settings.build` reads them; Stage 3's are left out."""
        space_only = {k: v for k, v in curation.items() if k not in selection_settings(CurateConfig)}
        return SpaceSettings(model, device, clusters, score_perplexity, build(CurateConfig, space_only))

    def selection(self, n: int, strategy: str, lam: float = CurateConfig.lam, seed: int | None = None) -> CurateConfig:
        """The pipeline config of a selection drawn from this space."""
        seed = self.curation.seed if seed is None else seed
        return replace(self.curation, n=n, strategy=strategy, lam=lam, seed=seed)


@dataclass
class PreparedSpace:
    settings: SpaceSettings
    embedded: Embedded
    preview: np.ndarray  # PCA 2-D
    clusters: Clusters
    index: TradeoffIndex
    engine: EngineConfig | None = None  # where the activations were extracted (probes go there too)
    stage1: dict = field(default_factory=dict)  # the pool's mix and why (pipeline.pool_plan)
    stage2: dict = field(default_factory=dict)  # what Stage 2 did (processing.process_with_report)

    @property
    def records(self) -> list[Record]:
        return self.embedded.records


_LOCK = threading.Lock()
_KEY_LOCKS: dict[SpaceSettings, threading.Lock] = {}
_PREPARED: dict[SpaceSettings, PreparedSpace] = {}


def prepare_space(
    settings: SpaceSettings, progress: Progress | None = None, engine: EngineConfig | None = None
) -> PreparedSpace:
    """The prepared space of ``settings``; ``engine`` says where activations are extracted (the
    result is the same on every engine, so it is not part of the key)."""
    with _LOCK:
        if settings in _PREPARED:
            return _PREPARED[settings]
        key_lock = _KEY_LOCKS.setdefault(settings, threading.Lock())
    with key_lock:
        if settings in _PREPARED:
            return _PREPARED[settings]
        loaded = load_model_cached(settings.model, settings.device)
        space = build_space(
            loaded,
            settings.curation,
            with_probes=False,  # computed on demand: probes_of
            score_perplexity=settings.score_perplexity,
            progress=progress,
            engine=engine,
        )
        embedded = space.embedded
        seed = settings.curation.seed
        clusters = cluster_space(embedded.space, min(settings.clusters, len(embedded.records)), seed)
        index = build_tradeoff_index(embedded.space, seed=seed)
        preview = pca_2d(embedded.space)
        prepared = PreparedSpace(settings, embedded, preview, clusters, index, engine, space.stage1, space.stage2)
        with _LOCK:
            _PREPARED[settings] = prepared
        return prepared


PROBES = DEFAULT_CAPABILITIES  # held-out splits standing for the capabilities lm, code, math, facts
_PROBES: dict[SpaceSettings, dict[str, np.ndarray]] = {}


def probes_of(prepared: PreparedSpace) -> dict[str, np.ndarray]:
    """Capability probe points in the same projected space (computed once per space)."""
    with _LOCK:
        key_lock = _KEY_LOCKS.setdefault(prepared.settings, threading.Lock())
    with key_lock:
        if prepared.settings not in _PROBES:
            loaded = load_model_cached(prepared.settings.model, prepared.settings.device)
            _PROBES[prepared.settings] = embed_probes(loaded, prepared.settings.curation, prepared.engine)
        return _PROBES[prepared.settings]


def probe_positions(
    prepared: PreparedSpace, probes: dict[str, np.ndarray], umap_xy: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Where each capability's probe points fall on the pool's map, placed by that map's own rule: on
    the PCA preview (``umap_xy`` None) the pool's components project them; on a UMAP layout they go
    where UMAP-less pool points go (:func:`~cola_core.curation.map2d.place_outside`: their nearest
    pool points' positions, weighted)."""
    space = prepared.embedded.space
    if umap_xy is None:
        return {cap: pca_project(space, points) for cap, points in probes.items()}
    return {cap: place_outside(space, umap_xy, points) for cap, points in probes.items()}


@dataclass
class CalibrationSet:
    name: str
    records: list[Record]
    strategy: str
    seed: int
    proxy: dict[str, float]  # capability coverage per evaluated capability (lm, code, math, facts)


def calibration_sets(
    prepared: PreparedSpace,
    strategies: tuple[str, ...],
    seeds: tuple[int, ...],
    n: int,
    lam: float = CurateConfig.lam,
    include: tuple[int, ...] = (),
    exclude: tuple[int, ...] = (),
) -> list[CalibrationSet]:
    """One calibration set per strategy × seed from the prepared pool, each with its coverage proxy.

    Include/exclude apply where the strategy's entry honours them (the random baseline keeps its
    uniform draw: excludes only, as in the page)."""
    probes = probes_of(prepared)
    sets = []
    for strategy in strategies:
        for seed in seeds:
            entry = selection_strategy(strategy)
            forced, excluded = entry.edits(include, exclude)
            config = prepared.settings.selection(n, strategy, lam, seed)
            sel = run_selection(prepared.embedded, config, forced, excluded, prepared.index)
            metrics = measure(prepared.embedded, sel, probes, seed=seed)
            proxy = coverage_by_capability(metrics.capability_coverage)
            edits = ", ".join(
                x
                for x in (f"{len(forced)} forced in" if forced else "", f"{len(excluded)} excluded" if excluded else "")
                if x
            )
            knob = f" λ={lam:g}" if "lam" in entry.knobs else ""
            label = f"{strategy}{knob} n={n} seed={seed}{f' ({edits})' if edits else ''}"
            sets.append(CalibrationSet(label, [prepared.records[i] for i in sel.indices], strategy, seed, proxy))
    return sets


def mix_table(prepared: PreparedSpace, selected: dict[str, int], baseline: dict[str, int]) -> pd.DataFrame:
    """Samples per corpus in the pool (after Stage 2), in the selection and in the random baseline,
    with the pool's and the selection's shares: where Stage 3 kept or undid Stage 1's mix."""
    pool = Counter(r.corpus for r in prepared.records)
    n = max(sum(selected.values()), 1)
    rows = {
        c: {
            "pool": pool[c],
            "pool share": pool[c] / len(prepared.records),
            "selection": selected.get(c, 0),
            "selection share": selected.get(c, 0) / n,
            "random baseline": baseline.get(c, 0),
        }
        for c in sorted(pool)
    }
    return pd.DataFrame.from_dict(rows, orient="index")


def stage_trail(prepared: PreparedSpace) -> dict[str, str]:
    """One line per COLA stage for the space page (:func:`~cola_core.curation.pipeline.describe_stages`)."""
    return describe_stages(prepared.stage1, prepared.stage2)
