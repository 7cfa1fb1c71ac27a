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
from cola_core.models.architecture import decoder_layers, expert_width, fused_experts
from cola_core.models.loading import LoadedModel
from cola_core.storage.fingerprints import pool_fingerprint


@dataclass
class Embedded:
    """Samples placed in the activation space; for a mixture-of-experts model also the real tokens
    each sample sends to each expert of each layer (``experts``, (n, layers × experts)) and the tokens
    an expert needs for a full-rank statistic (``expert_floor``): what expert coverage counts."""

    records: list[Record]
    space: np.ndarray
    fingerprint: str  # storage.fingerprints.pool_fingerprint of the records
    experts: np.ndarray | None = None
    expert_floor: int = 0


def split_experts_usage(
    acts: dict[str, np.ndarray], expert_features: bool
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """The arrays the space is projected from, and the expert token counts (None for a dense model).
    With ``expert_features`` each layer's routing becomes part of the space as the share of the
    sample's tokens per expert (a histogram per layer)."""
    usage = {k: v for k, v in acts.items() if k.startswith("experts")}
    space = {k: v for k, v in acts.items() if not k.startswith("experts")}
    if not usage:
        return space, None
    if expert_features:
        space |= {k: v / np.maximum(v.sum(1, keepdims=True), 1) for k, v in usage.items()}
    ordered = sorted(usage, key=lambda k: int(k.removeprefix("experts")))
    return space, np.concatenate([usage[k] for k in ordered], axis=1)


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
    layers = decoder_layers(loaded.model)
    modules = [m for layer in layers for m in fused_experts(layer).values()]
    floor = expert_width(modules[0]) if modules else 0
    out = []
    for records, texts, a in zip(record_sets, text_sets, acts, strict=True):
        space, usage = split_experts_usage(a, config.activations.expert_features)
        fingerprint = pool_fingerprint(texts, [r.id for r in records])
        out.append(
            Embedded(list(records), project_activations(space, config.dim, config.seed), fingerprint, usage, floor)
        )
    return out


def embed_probes(
    loaded: LoadedModel, config: CurateConfig, engine: EngineConfig | None = None
) -> dict[str, np.ndarray]:
    """The capability probe sets of ``config`` in the projected space (for a space built without them)."""
    probes = probe_records(config.capabilities, config.probe_size)
    embedded = embed_sets(loaded, list(probes.values()), config, engine=engine)
    return {cap: e.space for cap, e in zip(probes, embedded, strict=True)}
