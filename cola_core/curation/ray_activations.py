"""Scale-out work on the Ray engine (:mod:`cola_core.engine.ray_cluster`): activation extraction as a Ray
Data pipeline, and experiment grids on actor pools.

Extraction: samples are cut into shards of ``shard_size`` → tokenisation (Ray tasks) → ``map_batches``
on an actor pool of model replicas; each worker writes its shard as a verified cache entry
(:mod:`cola_core.storage.cache_store`) before reporting it, and the driver assembles the shards into the
entry, under the key, that the local path writes, so every later step (map, clusters, selection,
dashboard) is unchanged. A later run skips the shards already written, so a failed run resumes where
it stopped; Ray restarts a killed worker and retries its shard. On a multi-node cluster the cache
directory (``COLA_CACHE_DIR``) must be a shared file system.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from cola_core.curation.activations import ActivationConfig, Progress, activations_key, extract_from_ids
from cola_core.engine.config import EngineConfig, ModelSpec
from cola_core.engine.ray_cluster import (
    TOKENIZE_CPUS,
    actor_pool,
    ensure_ray,
    load_worker_model,
    result_rows,
    worker_name,
)
from cola_core.errors import ColaError
from cola_core.paths import cache_root
from cola_core.storage.cache_store import cache_key, load_entry, save_entry

SHARDS = "activation-shards"  # cache kind of the per-shard entries (removed once assembled)


# --- activation extraction ------------------------------------------------------------------------


def shard_bounds(n: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def shard_kind(key: str) -> str:
    """Every shard of one extraction lives in one folder, removed whole once the entry is assembled
    (so shards of an earlier ``--shard-size`` go too)."""
    return f"{SHARDS}/{key}"


def shard_key(start: int, stop: int, dtype: str) -> str:
    """A shard's name: its rows and the dtype it was computed in (a resumed run in another dtype
    recomputes rather than mixing precisions in one entry)."""
    return cache_key(start=start, stop=stop, dtype=dtype)


@lru_cache(maxsize=4)
def _tokenizer(name: str, trust_remote_code: bool):
    from transformers import AutoTokenizer

    from cola_core.models.loading import ensure_pad_token, resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(name)[0], trust_remote_code=trust_remote_code)
    ensure_pad_token(tokenizer)
    return tokenizer


def _tokenize(batch: dict[str, np.ndarray], model: dict[str, Any], seqlen: int) -> dict[str, np.ndarray]:
    """Pipeline stage 1 (Ray tasks): a shard's texts → flat token ids plus each sample's length."""
    from cola_core.curation.activations import tokenize_samples

    tokenizer = _tokenizer(model["name"], model["trust_remote_code"])
    flat, lengths = [], []
    for texts in batch["texts"]:
        ids = tokenize_samples(tokenizer, [str(t) for t in texts], seqlen)
        flat.append(np.array([t for x in ids for t in x], dtype=np.int64))
        lengths.append(np.array([len(x) for x in ids], dtype=np.int64))
    return {
        "kind": batch["kind"],
        "key": batch["key"],
        "start": batch["start"],
        "stop": batch["stop"],
        "ids": flat,
        "lengths": lengths,
    }


class _ShardExtractor:
    """Pipeline stage 2 (actor pool): one model replica; each call extracts one shard and writes it."""

    def __init__(self, model: dict[str, Any], config: dict[str, Any], root: str) -> None:
        from pathlib import Path

        self.loaded = load_worker_model(model)
        self.config = ActivationConfig(**{**config, "layers": tuple(config["layers"]) if config["layers"] else None})
        self.root = Path(root)
        self.pad = self.loaded.tokenizer.pad_token_id

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        out: dict[str, list] = {"start": [], "stop": [], "worker": []}
        for kind, key, start, stop, flat, lengths in zip(
            batch["kind"], batch["key"], batch["start"], batch["stop"], batch["ids"], batch["lengths"], strict=True
        ):
            ids = np.split(np.asarray(flat, dtype=np.int64), np.cumsum(lengths)[:-1])
            acts = extract_from_ids(self.loaded.model, [x.tolist() for x in ids], self.pad, self.config)
            save_entry(str(kind), str(key), acts, {"start": int(start), "stop": int(stop)}, root=self.root)
            out["start"].append(int(start))
            out["stop"].append(int(stop))
            out["worker"].append(worker_name())
        return out


@dataclass
class ExtractionReport:
    """What one distributed extraction did: shards computed now, shards found from an earlier run."""

    shards: int = 0
    computed: int = 0
    reused: int = 0
    cached: bool = False  # the assembled entry already existed: no shard was needed


def ray_activations(
    model: ModelSpec,
    texts: Sequence[str],
    config: ActivationConfig,
    engine: EngineConfig,
    progress: Progress | None = None,
    on_shard: Callable[[dict[str, Any]], None] | None = None,
    report: ExtractionReport | None = None,
) -> dict[str, np.ndarray]:
    """:func:`cola_core.curation.activations.cached_activations` on a Ray actor pool: the same arrays under
    the same cache key. ``on_shard`` sees each finished shard (start, stop, worker)."""
    return ray_activation_sets(model, [texts], config, engine, progress, on_shard, report)[0]


def ray_activation_sets(
    model: ModelSpec,
    text_sets: Sequence[Sequence[str]],
    config: ActivationConfig,
    engine: EngineConfig,
    progress: Progress | None = None,
    on_shard: Callable[[dict[str, Any]], None] | None = None,
    report: ExtractionReport | None = None,
) -> list[dict[str, np.ndarray]]:
    """:func:`ray_activations` for several sample sets (a pool and its capability probe sets) in one
    pipeline, so each actor loads the model once for all of them. Each set keeps its own cache
    entry; ``progress`` counts samples over all distinct sets."""
    report = report if report is not None else ExtractionReport()
    if not text_sets or any(not texts for texts in text_sets):
        raise ColaError("no samples to extract activations from")
    keys = [activations_key(model.fingerprint, texts, config, model.dtype) for texts in text_sets]
    distinct = dict(zip(keys, text_sets, strict=True))  # a set given twice is extracted once
    found = {key: hit[0] for key in distinct if (hit := load_entry("activations", key)) is not None}
    pending = {key: texts for key, texts in distinct.items() if key not in found}
    report.cached = not pending
    items = []
    for key, texts in pending.items():
        bounds = shard_bounds(len(texts), engine.shard_size)
        todo = [(a, b) for a, b in bounds if load_entry(shard_kind(key), shard_key(a, b, model.dtype)) is None]
        report.shards += len(bounds)
        report.reused += len(bounds) - len(todo)
        items += [
            {
                "kind": shard_kind(key),
                "key": shard_key(a, b, model.dtype),
                "start": a,
                "stop": b,
                "texts": list(texts[a:b]),
            }
            for a, b in todo
        ]
    total = sum(map(len, distinct.values()))
    done = total - sum(item["stop"] - item["start"] for item in items)
    if progress:
        progress(done, total)
    if items:
        ray = ensure_ray(engine)
        spec = asdict(model)
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map_batches(
            _tokenize, fn_kwargs={"model": spec, "seqlen": config.seqlen}, batch_size=1, num_cpus=TOKENIZE_CPUS
        )
        ds = actor_pool(
            ray,
            ds,
            _ShardExtractor,
            {"model": spec, "config": asdict(config), "root": str(cache_root())},
            engine,
            len(items),
        )
        for row in result_rows(ds):
            report.computed += 1
            done += row["stop"] - row["start"]
            if on_shard:
                on_shard(row)
            if progress:
                progress(done, total)
    for key, texts in pending.items():
        found[key] = _assemble(key, len(texts), config, model.dtype, engine.shard_size)
    return [found[key] for key in keys]


def _assemble(key: str, n: int, config: ActivationConfig, dtype: str, shard_size: int) -> dict[str, np.ndarray]:
    """Join one extraction's shards into its "activations" entry and remove them."""
    kind = shard_kind(key)
    parts = [load_entry(kind, shard_key(a, b, dtype)) for a, b in shard_bounds(n, shard_size)]
    if any(p is None for p in parts):
        hit = load_entry("activations", key)  # another driver on the same key assembled it first
        if hit is not None:
            return hit[0]
        raise ColaError("a shard written by a worker is missing or corrupt; run again to recompute it")
    acts = {name: np.concatenate([p[0][name] for p in parts]) for name in parts[0][0]}  # type: ignore[index]
    save_entry("activations", key, acts, {"n": n, "config": asdict(config)})
    shutil.rmtree(cache_root() / kind, ignore_errors=True)
    return acts


# --- experiment grids -----------------------------------------------------------------------------
