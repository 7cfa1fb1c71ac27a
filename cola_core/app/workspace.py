"""A process-wide, thread-safe cache of prepared activation spaces for interactive front ends.

The dashboard's sessions share one prepared space per settings (records, projected space, PCA
preview, clusters, tradeoff index); the heavy activations behind it are memory-mapped from the disk
cache. Preparing is serialised per key, so two sessions asking for the same space compute it once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from cola_core.corpora import Record
from cola_core.curation.activations import ActivationConfig, Progress
from cola_core.curation.map2d import pca_2d
from cola_core.curation.pipeline import (
    DEFAULT_CAPABILITIES,
    CurateConfig,
    Embedded,
    build_pool,
    coverage_by_capability,
    embed,
    embed_probes,
    measure,
)
from cola_core.curation.processing import ProcessingConfig, process_records
from cola_core.curation.selection import TradeoffIndex, build_tradeoff_index, select
from cola_core.curation.space import Clusters, cluster_space
from cola_core.engine.config import EngineConfig
from cola_core.models.loading import context_length, load_model_cached


@dataclass(frozen=True)
class SpaceSettings:
    model: str = "cola-tiny"
    device: str = "auto"
    corpora: tuple[str, ...] = ("prose", "code", "math", "facts")
    pool_size: int = 1000
    seqlen: int = 128
    layers: tuple[int, ...] | None = None
    pooling: str = "mean"
    clusters: int = 16
    seed: int = 0
    reasoning_format: str = "keep"  # Stage 2: keep | explicit | plain
    dedupe: bool = True
    drop_worst_perplexity: float = 0.0
    score_perplexity: bool = True  # costs one forward pass over the pool; enables colouring by perplexity


@dataclass
class PreparedSpace:
    settings: SpaceSettings
    embedded: Embedded
    preview: np.ndarray  # PCA 2-D
    clusters: Clusters
    index: TradeoffIndex
    engine: EngineConfig | None = None  # where the activations were extracted (probes go there too)

    @property
    def records(self) -> list[Record]:
        return self.embedded.records


_LOCK = threading.Lock()
_KEY_LOCKS: dict[SpaceSettings, threading.Lock] = {}
_PREPARED: dict[SpaceSettings, PreparedSpace] = {}


def curate_config(s: SpaceSettings) -> CurateConfig:
    return CurateConfig(
        corpora=s.corpora,
        pool_size=s.pool_size,
        seed=s.seed,
        activations=ActivationConfig(layers=s.layers, pooling=s.pooling),
        processing=ProcessingConfig(
            seqlen=s.seqlen,
            reasoning_format=s.reasoning_format,
            dedupe=s.dedupe,
            drop_worst_perplexity=s.drop_worst_perplexity,
        ),
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
        cfg = curate_config(settings)
        cfg.processing.validate(context_length(loaded.model))
        scorer = loaded.model if settings.score_perplexity or settings.drop_worst_perplexity > 0 else None
        samples = process_records(
            build_pool(settings.corpora, settings.pool_size), loaded.tokenizer, cfg.processing, model=scorer
        )
        embedded = embed(loaded, samples, cfg, progress, engine)
        prepared = PreparedSpace(
            settings,
            embedded,
            pca_2d(embedded.space),
            cluster_space(embedded.space, min(settings.clusters, len(samples)), settings.seed),
            build_tradeoff_index(embedded.space, seed=settings.seed),
            engine,
        )
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
            _PROBES[prepared.settings] = embed_probes(loaded, PROBES, cfg, prepared.engine)
        return _PROBES[prepared.settings]


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
    lam: float = 0.5,
    include: tuple[int, ...] = (),
    exclude: tuple[int, ...] = (),
) -> list[CalibrationSet]:
    """One calibration set per strategy × seed from the prepared pool, each with its coverage proxy.

    Include/exclude apply to every strategy (random baselines honour excludes only, as in the page)."""
    probes = probes_of(prepared)
    groups = [r.corpus for r in prepared.records]
    sets = []
    for strategy in strategies:
        for seed in seeds:
            forced = include if strategy != "random" else ()
            sel = select(
                prepared.embedded.space,
                n,
                strategy,
                lam=lam,
                seed=seed,
                groups=groups,
                include=forced,
                exclude=exclude,
                index=prepared.index,
            )
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
