"""Where the heavy steps run — this process (``local``) or a Ray cluster (``ray``) — and what a Ray
worker needs to load the driver's model. Imports no Ray, so local callers never pay for it; the Ray
plumbing is :mod:`cola_core.engine.ray_cluster`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cola_core.errors import ColaError
from cola_core.settings import setting

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class EngineConfig:
    """Where the heavy steps run. ``address=None`` starts a local Ray instance with ``local_cpus``
    CPUs; ``"auto"`` or ``"ray://host:10001"`` joins an existing cluster.
    ``gpus_per_worker=None`` gives each worker one GPU when the cluster has GPUs, else none."""

    kind: str = setting(
        "local",
        "local: this process; ray: a Ray Data actor pool (pip install -r requirements-ray.txt)",
        flag="--engine",
        choices=ENGINES,
    )
    address: str | None = setting(
        None, "join this Ray cluster (auto, or ray://HOST:10001); default: start a local instance", flag="--ray-address"
    )
    workers: int = setting(2, "actors, each holding one model replica", flag="--ray-workers")
    cpus_per_worker: float = setting(1.0, "CPUs per actor", cli=False)
    gpus_per_worker: float | None = setting(
        None, "GPUs per actor (default: 1 when the cluster has GPUs, else 0)", flag="--ray-gpus-per-worker"
    )
    shard_size: int = setting(256, "samples per extraction shard (the unit of resume)")
    local_cpus: int | None = setting(None, "CPUs of a local Ray instance (default: all)", flag="--ray-cpus")

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
        """The spec of a :class:`cola_core.models.loading.LoadedModel`: workers use the driver's dtype (so the
        vectors match the local path) on their own device; a local folder travels as an absolute path."""
        dtype = str(loaded.dtype).removeprefix("torch.")
        name = str(Path(loaded.name).resolve()) if Path(loaded.name).is_dir() else loaded.name
        return ModelSpec(name, loaded.fingerprint, "auto", dtype, loaded.trust_remote_code, loaded.device_map)


def ray_available() -> bool:
    """Whether the optional Ray dependency is installed (requirements-ray.txt)."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None
