"""Record sets placed in the activation space (Stage 3's representation, He et al. §5): pooled
activations, extracted here or on Ray workers into the same disk cache, then randomly projected;
and the capability probe sets that live in the same space."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cola_core.corpora import BUILTIN_CORPORA, Record, load_records
from cola_core.curation.activations import Progress, cached_activations
from cola_core.curation.config import CurateConfig
from cola_core.curation.space import project_activations
from cola_core.engine.config import EngineConfig
from cola_core.models.loading import LoadedModel
from cola_core.storage.fingerprints import pool_fingerprint


@dataclass
class Embedded:
    """Samples placed in the activation space."""

    records: list[Record]
    space: np.ndarray
    fingerprint: str  # storage.fingerprints.pool_fingerprint of the records


def probe_records(capabilities: Sequence[str], limit: int) -> dict[str, list[Record]]:
    """A capability's probe set: a built-in corpus's probe split (disjoint from the evaluated
    held-out items, so the proxy never sees what is scored), or any corpus spec whole."""
    return {cap: load_records(cap, "probe" if cap in BUILTIN_CORPORA else "pool", limit=limit) for cap in capabilities}


def embed_sets(
    loaded: LoadedModel,
    record_sets: Sequence[Sequence[Record]],
    config: CurateConfig,
    progress: Progress | None = None,
    engine: EngineConfig | None = None,
) -> list[Embedded]:
    """Pooled activations of each record set (disk-cached; extracted here or on Ray workers, which
    read and write the same cache entry) projected to ``config.dim`` dimensions. On Ray the sets
    share one pipeline (one model load per worker)."""
    extraction = config.extraction()
    text_sets = [[r.text for r in records] for records in record_sets]
    if engine is not None and engine.kind == "ray":
        from cola_core.curation.ray_activations import ray_activation_sets
        from cola_core.engine.config import ModelSpec

        acts = ray_activation_sets(ModelSpec.of(loaded), text_sets, extraction, engine, progress)
    else:
        total, offset, acts = sum(map(len, text_sets)), 0, []
        for texts in text_sets:  # progress counts samples over all sets, as on Ray
            step = (lambda done, _n, o=offset: progress(o + done, total)) if progress else None
            acts.append(cached_activations(loaded.model, loaded.tokenizer, loaded.fingerprint, texts, extraction, step))
            offset += len(texts)
    return [
        Embedded(
            list(records),
            project_activations(a, config.dim, config.seed),
            pool_fingerprint(texts, [r.id for r in records]),
        )
        for records, texts, a in zip(record_sets, text_sets, acts, strict=True)
    ]


def embed_probes(
    loaded: LoadedModel, config: CurateConfig, engine: EngineConfig | None = None
) -> dict[str, np.ndarray]:
    """The capability probe sets of ``config`` in the projected space (for a space built without them)."""
    probes = probe_records(config.capabilities, config.probe_size)
    embedded = embed_sets(loaded, list(probes.values()), config, engine=engine)
    return {cap: e.space for cap, e in zip(probes, embedded, strict=True)}
