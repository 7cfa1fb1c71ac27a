"""The Ray engine: starting or joining a cluster, actor pools of model replicas, streaming results.

One machine stays the default (engine ``local``). With engine ``ray`` the heavy steps run in Ray Data
pipelines whose last stage is an actor pool (:func:`actor_pool`): each actor loads the driver's model
once — one replica per GPU, or CPU workers — and refuses to run if its weights' fingerprint differs
from the driver's. What runs on the pools lives in :mod:`cola_core.curation.ray_activations`. Ray moves task
arguments between its processes with its own serialiser; the arguments here are plain dicts, lists
and strings, and nothing pickled is ever written to or read from the cache.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

from cola_core.engine.config import EngineConfig
from cola_core.errors import ColaError
from cola_core.paths import PACKAGE_DIR, cache_root

TOKENIZE_CPUS = 0.25  # tokenisation is light next to a forward pass; do not starve the actors
_INIT_LOCK = threading.Lock()
_STARTED: dict[str, Any] = {}  # the (address, CPUs) this process started Ray with
_OWNER_STOP: list[threading.Event] = []  # releases the thread that started Ray (see _init_on_lasting_thread)


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
            _shutdown(ray)
        if not ray.is_initialized():
            _init_on_lasting_thread(ray, engine)
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
        ray.init(
            address=engine.address or "local",
            num_cpus=None if engine.address else engine.local_cpus,
            runtime_env=runtime_env,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=True,
            logging_level="warning",
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ColaError(f"could not reach Ray at {engine.address or 'a new local instance'}: {exc}") from None


def _init_on_lasting_thread(ray, engine: EngineConfig) -> None:
    """:func:`_init` from a thread that lives until Ray is shut down. A local instance's processes die
    when the thread that started them exits (the process then ends with "connection to the plasma
    store is failed"), and Streamlit runs every script run on a thread that ends; the main thread
    lasts as long as the process, so it starts Ray itself."""
    if threading.current_thread() is threading.main_thread():
        _init(ray, engine)
        return
    started: queue.Queue[BaseException | None] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def own() -> None:
        try:
            _init(ray, engine)
        except BaseException as exc:  # handed to the caller's thread
            started.put(exc)
            return
        started.put(None)
        stop.wait()

    threading.Thread(target=own, name="ray-owner", daemon=True).start()
    error = started.get()
    if error is not None:
        raise error
    _OWNER_STOP.append(stop)


def _shutdown(ray) -> None:
    ray.shutdown()
    _STARTED.clear()
    while _OWNER_STOP:
        _OWNER_STOP.pop().set()


def shutdown_ray() -> None:
    try:
        import ray
    except ImportError:
        return
    _shutdown(ray)


def _worker_gpus(ray, engine: EngineConfig) -> float:
    if engine.gpus_per_worker is not None:
        return engine.gpus_per_worker
    return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def actor_pool(ray, ds, actor_cls, ctor: dict[str, Any], engine: EngineConfig, items: int):
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
    share = (ray.cluster_resources().get("CPU", 1.0) - TOKENIZE_CPUS) / workers
    cpus = max(0.01, min(engine.cpus_per_worker, share))
    return ds.map_batches(
        actor_cls,
        fn_constructor_kwargs=ctor,
        batch_size=1,
        # one item in flight per actor: a shard or cell is a large unit of work, and an actor that is ready
        # first must not queue the whole job before the others have loaded their model
        compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
        num_cpus=cpus,
        num_gpus=gpus,
    )


def load_worker_model(spec: dict[str, Any]):
    """A worker's copy of the driver's model, refused if its weights differ from the driver's."""
    from cola_core.models.loading import load_model

    loaded = load_model(spec["name"], spec["device"], spec["dtype"], spec["trust_remote_code"], spec["device_map"])
    if loaded.fingerprint != spec["fingerprint"]:
        raise ColaError(
            f"worker on {socket.gethostname()} loaded a different '{spec['name']}' (fingerprint "
            f"{loaded.fingerprint}, driver {spec['fingerprint']}); give every node the same weights"
        )
    return loaded


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def result_rows(ds) -> Iterator[dict[str, Any]]:
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
