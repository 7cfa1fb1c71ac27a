"""A process-wide, thread-safe cache of prepared activation spaces for interactive front ends.

The dashboard's sessions share one prepared space per settings (records, projected space, PCA
preview, clusters, tradeoff index); the heavy activations behind it are memory-mapped from the disk
cache. Preparing is serialised per key, so two sessions asking for the same space compute it once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from cola_core.corpora import Record
from cola_core.curation.activations import ActivationConfig, Progress
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
from cola_core.curation.processing import ProcessingConfig
from cola_core.curation.selection import TradeoffIndex, build_tradeoff_index
from cola_core.curation.space import Clusters, cluster_space
from cola_core.engine.config import EngineConfig
from cola_core.models.loading import DEFAULT_MODEL, load_model_cached

_C, _P, _A = CurateConfig, ProcessingConfig, ActivationConfig  # the defaults below are theirs


@dataclass(frozen=True)
class SpaceSettings:
    """What a prepared space depends on; every default is the pipeline config's own."""

    model: str = DEFAULT_MODEL
    device: str = "auto"
    corpora: tuple[str, ...] = _C.corpora
    pool_size: int = _C.pool_size
    seqlen: int = _P.seqlen
    layers: tuple[int, ...] | None = _A.layers
    pooling: str = _A.pooling
    clusters: int = 16
    seed: int = _C.seed
    reasoning_format: str = _P.reasoning_format  # Stage 2: keep | explicit | plain
    dedupe: bool = _P.dedupe
    drop_worst_perplexity: float = _P.drop_worst_perplexity
    score_perplexity: bool = True  # costs one forward pass over the pool; enables colouring by perplexity
    stage1: bool = _C.stage1  # Stage 1 draws the pool in the recommended mix (False: equal shares)
    deployment: str = _C.deployment
    target: str | None = _C.target
    alpha: float = _C.alpha
    mix: tuple[tuple[str, float], ...] = _C.mix  # the user's own shares (override Stage 1)
    fields: str | None = _C.fields  # Q&A columns of files and datasets (question=COL,answer=COL[,rationale=COL])


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


def curate_config(
    s: SpaceSettings,
    n: int = CurateConfig.n,
    strategy: str = CurateConfig.strategy,
    lam: float = CurateConfig.lam,
    seed: int | None = None,
) -> CurateConfig:
    """The pipeline config of a space's settings (and of a selection drawn from it)."""
    processing = ProcessingConfig(
        seqlen=s.seqlen,
        reasoning_format=s.reasoning_format,
        dedupe=s.dedupe,
        drop_worst_perplexity=s.drop_worst_perplexity,
    )
    return CurateConfig(
        corpora=s.corpora,
        pool_size=s.pool_size,
        n=n,
        strategy=strategy,
        lam=lam,
        seed=s.seed if seed is None else seed,
        stage1=s.stage1,
        deployment=s.deployment,
        target=s.target,
        alpha=s.alpha,
        mix=s.mix,
        fields=s.fields,
        activations=ActivationConfig(layers=s.layers, pooling=s.pooling),
        processing=processing,
    )


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
            curate_config(settings),
            with_probes=False,  # computed on demand: probes_of
            score_perplexity=settings.score_perplexity,
            progress=progress,
            engine=engine,
        )
        embedded = space.embedded
        clusters = cluster_space(embedded.space, min(settings.clusters, len(embedded.records)), settings.seed)
        index = build_tradeoff_index(embedded.space, seed=settings.seed)
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
            cfg = curate_config(prepared.settings)
            _PROBES[prepared.settings] = embed_probes(loaded, cfg, prepared.engine)
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

    Include/exclude apply to every strategy (random baselines honour excludes only, as in the page)."""
    probes = probes_of(prepared)
    sets = []
    for strategy in strategies:
        for seed in seeds:
            forced = include if strategy != "random" else ()
            config = curate_config(prepared.settings, n=n, strategy=strategy, lam=lam, seed=seed)
            sel = run_selection(prepared.embedded, config, forced, exclude, prepared.index)
            metrics = measure(prepared.embedded, sel, probes, seed=seed)
            proxy = coverage_by_capability(metrics.capability_coverage)
            edits = ", ".join(
                x
                for x in (f"{len(forced)} forced in" if forced else "", f"{len(exclude)} excluded" if exclude else "")
                if x
            )
            label = f"{strategy}{f' λ={lam:g}' if strategy == 'tradeoff' else ''} n={n} seed={seed}{f' ({edits})' if edits else ''}"
            sets.append(CalibrationSet(label, [prepared.records[i] for i in sel.indices], strategy, seed, proxy))
    return sets


def stage_trail(prepared: PreparedSpace) -> dict[str, str]:
    """One line per COLA stage for the space page (:func:`~cola_core.curation.pipeline.describe_stages`)."""
    return describe_stages(prepared.stage1, prepared.stage2)
