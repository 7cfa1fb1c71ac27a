"""Opt-in scale-out on Ray: activation extraction and experiment grids on Ray Data actor pools.

One machine stays the default (engine ``local``). With engine ``ray`` the same functions run in a
Ray Data pipeline — records → tokenisation (tasks) → ``map_batches`` on an actor pool holding one
model replica per GPU (or CPU workers) — and the results land in the project's disk cache under
the keys the local path uses, so every later step (map, clusters, selection, dashboard) is unchanged.

Extraction is cut into shards of ``shard_size`` samples; each worker writes its shard as a verified
cache entry (:mod:`cola_core.cache_store`) before reporting it, and a later run skips the shards
already written, so a failed run resumes where it stopped. Ray restarts a killed worker and retries
its shard. On a multi-node cluster the cache directory (``COLA_CACHE_DIR``) must be a shared file
system. Ray moves task arguments between its processes with its own serialiser; the arguments here
are plain dicts, lists and strings, and nothing pickled is ever written to or read from the cache.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from cola_core.activations import ActivationConfig, Progress, activations_key, extract_from_ids
from cola_core.cache_store import cache_key, load_entry, save_entry
from cola_core.errors import ColaError
from cola_core.paths import PACKAGE_DIR, cache_root

ENGINES = ("local", "ray")
SHARDS = "activation-shards"  # cache kind of the per-shard entries (removed once assembled)
_INIT_LOCK = threading.Lock()
_STARTED: dict[str, Any] = {}  # the (address, CPUs) this process started Ray with
_TOKENIZE_CPUS = 0.25  # tokenisation is light next to a forward pass; do not starve the actors


@dataclass(frozen=True)
class EngineConfig:
    """Where the heavy steps run. ``address=None`` starts a local Ray instance with ``local_cpus``
    CPUs; ``"auto"`` or ``"ray://host:10001"`` joins an existing cluster.
    ``gpus_per_worker=None`` gives each worker one GPU when the cluster has GPUs, else none."""

    kind: str = "local"
    address: str | None = None
    workers: int = 2
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None
    shard_size: int = 256
    local_cpus: int | None = None

    def validate(self) -> None:
        if self.kind not in ENGINES:
            raise ColaError(f"unknown engine '{self.kind}': use {' or '.join(ENGINES)}")
        if self.workers <= 0 or self.shard_size <= 0 or self.cpus_per_worker < 0:
            raise ColaError(f"workers and shard size must be positive, got {self.workers} and {self.shard_size}")
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            raise ColaError(f"--ray-gpus-per-worker must be 0 or more, got {self.gpus_per_worker}")
        if self.local_cpus is not None and self.local_cpus <= 0:
            raise ColaError(f"--ray-cpus must be positive, got {self.local_cpus}")
        if self.kind == "local" and self.address:
            raise ColaError("--ray-address needs --engine ray")
        if self.address and self.local_cpus is not None:
            raise ColaError("--ray-cpus sizes a new local instance; a cluster at --ray-address has its own CPUs")

    def describe(self) -> str:
        if self.kind == "local":
            return "local (this process)"
        where = self.address or f"a local Ray instance ({self.local_cpus or os.cpu_count()} CPUs)"
        return f"Ray at {where}: {self.workers} workers, shards of {self.shard_size} samples"


@dataclass(frozen=True)
class ModelSpec:
    """What a worker needs to load the driver's model, and the fingerprint it must match."""

    name: str
    fingerprint: str
    device: str = "auto"
    dtype: str = "auto"
    trust_remote_code: bool = False
    device_map: str | None = None

    @staticmethod
    def of(loaded: Any) -> ModelSpec:
        """The spec of a :class:`cola_core.models.LoadedModel`: workers use the driver's dtype (so the
        vectors match the local path) on their own device; a local folder travels as an absolute path."""
        dtype = str(loaded.dtype).removeprefix("torch.")
        name = str(Path(loaded.name).resolve()) if Path(loaded.name).is_dir() else loaded.name
        return ModelSpec(name, loaded.fingerprint, "auto", dtype, loaded.trust_remote_code, loaded.device_map)


def ray_available() -> bool:
    """Whether the optional Ray dependency is installed (requirements-ray.txt)."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise ColaError("engine 'ray' needs Ray: pip install -r requirements-ray.txt") from None
    return ray


def ensure_ray(engine: EngineConfig):
    """The ``ray`` module, connected to the engine's cluster or a local instance. Ray is started once
    per process; asking for another address (or another local size) restarts it."""
    ray = _ray()
    wanted = {"address": engine.address, "cpus": engine.local_cpus}
    with _INIT_LOCK:  # two dashboard sessions may ask at once
        if ray.is_initialized() and _STARTED and wanted != _STARTED:
            ray.shutdown()
        if not ray.is_initialized():
            _init(ray, engine)
            _STARTED.clear()
            _STARTED.update(wanted)
    ray.data.DataContext.get_current().enable_progress_bars = False  # progress is ours (per shard)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # no execution-plan chatter on stderr
    return ray


def _init(ray, engine: EngineConfig) -> None:
    """Connect to the cluster, or start a local instance; workers get the driver's cache directory."""
    passed = ("COLA_CACHE_DIR", "HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    env = {k: os.environ[k] for k in passed if k in os.environ}
    env["COLA_CACHE_DIR"] = str(cache_root())
    runtime_env: dict[str, Any] = {"env_vars": env}
    if engine.address:  # remote nodes get this package's code from the driver
        runtime_env["py_modules"] = [str(PACKAGE_DIR)]
    try:
        ray.init(address=engine.address or "local", num_cpus=None if engine.address else engine.local_cpus,
                 runtime_env=runtime_env, include_dashboard=False, log_to_driver=False,
                 configure_logging=True, logging_level="warning")  # fmt: skip
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ColaError(f"could not reach Ray at {engine.address or 'a new local instance'}: {exc}") from None


def shutdown_ray() -> None:
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()
    _STARTED.clear()


def _worker_gpus(ray, engine: EngineConfig) -> float:
    if engine.gpus_per_worker is not None:
        return engine.gpus_per_worker
    return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def _actor_pool(ray, ds, actor_cls, ctor: dict[str, Any], engine: EngineConfig, items: int):
    """``ds.map_batches`` on ``engine.workers`` actors (no more than ``items``: each actor loads a
    model), one item per call (a shard or a grid cell). Actors ask for at most their share of the
    cluster's CPUs, less what tokenisation needs, so a pool as large as the machine still schedules."""
    workers = max(1, min(engine.workers, items))
    gpus = _worker_gpus(ray, engine)
    if gpus > 0:  # an actor waiting for a GPU that does not exist would stall the pool
        fit = int(ray.cluster_resources().get("GPU", 0) // gpus)
        if fit == 0:
            raise ColaError(
                f"the Ray cluster has no room for a worker with {gpus:g} GPU(s); lower --ray-gpus-per-worker"
            )
        workers = min(workers, fit)
    share = (ray.cluster_resources().get("CPU", 1.0) - _TOKENIZE_CPUS) / workers
    cpus = max(0.01, min(engine.cpus_per_worker, share))
    return ds.map_batches(actor_cls, fn_constructor_kwargs=ctor, batch_size=1,
                          compute=ray.data.ActorPoolStrategy(size=workers),
                          num_cpus=cpus, num_gpus=gpus)  # fmt: skip


def _load(spec: dict[str, Any]):
    """A worker's copy of the driver's model, refused if its weights differ from the driver's."""
    from cola_core.models import load_model

    loaded = load_model(spec["name"], spec["device"], spec["dtype"], spec["trust_remote_code"], spec["device_map"])
    if loaded.fingerprint != spec["fingerprint"]:
        raise ColaError(
            f"worker on {socket.gethostname()} loaded a different '{spec['name']}' (fingerprint "
            f"{loaded.fingerprint}, driver {spec['fingerprint']}); give every node the same weights"
        )
    return loaded


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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

    from cola_core.models import ensure_pad_token, resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(name)[0], trust_remote_code=trust_remote_code)
    ensure_pad_token(tokenizer)
    return tokenizer


def _tokenize(batch: dict[str, np.ndarray], model: dict[str, Any], seqlen: int) -> dict[str, np.ndarray]:
    """Pipeline stage 1 (Ray tasks): a shard's texts → flat token ids plus each sample's length."""
    from cola_core.activations import tokenize_samples

    tokenizer = _tokenizer(model["name"], model["trust_remote_code"])
    flat, lengths = [], []
    for texts in batch["texts"]:
        ids = tokenize_samples(tokenizer, [str(t) for t in texts], seqlen)
        flat.append(np.array([t for x in ids for t in x], dtype=np.int64))
        lengths.append(np.array([len(x) for x in ids], dtype=np.int64))
    return {"kind": batch["kind"], "key": batch["key"], "start": batch["start"], "stop": batch["stop"], "ids": flat,
            "lengths": lengths}  # fmt: skip


class _ShardExtractor:
    """Pipeline stage 2 (actor pool): one model replica; each call extracts one shard and writes it."""

    def __init__(self, model: dict[str, Any], config: dict[str, Any], root: str) -> None:
        from pathlib import Path

        self.loaded = _load(model)
        self.config = ActivationConfig(**{**config, "layers": tuple(config["layers"]) if config["layers"] else None})
        self.root = Path(root)
        self.pad = self.loaded.tokenizer.pad_token_id

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        out: dict[str, list] = {"start": [], "stop": [], "worker": []}
        for kind, key, start, stop, flat, lengths in zip(batch["kind"], batch["key"], batch["start"], batch["stop"],
                                                         batch["ids"], batch["lengths"], strict=True):  # fmt: skip
            ids = np.split(np.asarray(flat, dtype=np.int64), np.cumsum(lengths)[:-1])
            acts = extract_from_ids(self.loaded.model, [x.tolist() for x in ids], self.pad, self.config)
            save_entry(str(kind), str(key), acts, {"start": int(start), "stop": int(stop)}, root=self.root)
            out["start"].append(int(start))
            out["stop"].append(int(stop))
            out["worker"].append(_worker_name())
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
    """:func:`cola_core.activations.cached_activations` on a Ray actor pool: the same arrays under
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
    keys = [activations_key(model.fingerprint, texts, config) for texts in text_sets]
    found: dict[str, dict[str, np.ndarray]] = {}
    pending: dict[str, Sequence[str]] = {}  # key → texts still to assemble (a set given twice is done once)
    for key, texts in zip(keys, text_sets, strict=True):
        if key in found or key in pending:
            continue
        hit = load_entry("activations", key)
        if hit is not None:
            found[key] = hit[0]
        else:
            pending[key] = texts
    total = sum(len(texts) for texts in dict(zip(keys, text_sets, strict=True)).values())
    done = total - sum(len(texts) for texts in pending.values())
    report.cached = not pending
    items = []
    for key, texts in pending.items():
        bounds = shard_bounds(len(texts), engine.shard_size)
        todo = [(a, b) for a, b in bounds if load_entry(shard_kind(key), shard_key(a, b, model.dtype)) is None]
        report.shards += len(bounds)
        report.reused += len(bounds) - len(todo)
        done += sum(b - a for a, b in bounds) - sum(b - a for a, b in todo)
        items += [{"kind": shard_kind(key), "key": shard_key(a, b, model.dtype), "start": a, "stop": b,
                   "texts": list(texts[a:b])} for a, b in todo]  # fmt: skip
    if progress:
        progress(done, total)
    if items:
        ray = ensure_ray(engine)
        spec = asdict(model)
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map_batches(_tokenize, fn_kwargs={"model": spec, "seqlen": config.seqlen}, batch_size=1,
                            num_cpus=_TOKENIZE_CPUS)  # fmt: skip
        ds = _actor_pool(ray, ds, _ShardExtractor, {"model": spec, "config": asdict(config),
                                                     "root": str(cache_root())}, engine, len(items))  # fmt: skip
        for row in _rows(ds):
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


def _rows(ds) -> Iterator[dict[str, Any]]:
    """Stream result rows; a failed pipeline becomes one ColaError (what was written stays written).
    A worker's own ColaError (wrong weights, a bad setting) reaches the user as its one line."""
    try:
        yield from ds.iter_rows()
    except Exception as exc:
        chain, cause = [], exc
        while cause is not None and cause not in chain:
            chain.append(cause)
            cause = cause.__cause__ or cause.__context__
        for e in chain:
            if isinstance(e, ColaError):
                raise ColaError(str(e)) from None
            found = re.search(r"ColaError: (.+)", str(e))
            if found:
                raise ColaError(found.group(1).strip()) from None
        last = next((str(e).splitlines()[0] for e in reversed(chain) if str(e).strip()), type(exc).__name__)
        raise ColaError(f"the Ray pipeline failed: {last}; finished shards are kept, run again to resume") from None


# --- experiment grids -----------------------------------------------------------------------------


class _CellRunner:
    """An actor that holds one model replica and runs experiment cells (calibrate → compress → evaluate)."""

    def __init__(self, experiment: str, root: str) -> None:
        import copy

        from cola_core.experiment import ExperimentConfig
        from cola_core.models import load_model

        os.environ["COLA_CACHE_DIR"] = root  # corpora and activation caches: the driver's
        self.cfg = ExperimentConfig.from_dict(json.loads(experiment))
        self.loaded = load_model(self.cfg.model, device="auto")
        self.dense = copy.deepcopy(self.loaded.model.state_dict())

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        from cola_core.experiment import run_cell

        out: dict[str, list] = {"key": [], "result": []}
        for cell in batch["cell"]:
            for key, result in run_cell(self.loaded, self.dense, self.cfg, json.loads(str(cell)), "auto"):
                if "report" in result:
                    result["report"] = {**result["report"], "engine": "ray", "worker": _worker_name()}
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
    ds = _actor_pool(ray, ds, _CellRunner, ctor, engine, len(cells))
    for row in _rows(ds):
        yield str(row["key"]), json.loads(str(row["result"]))
