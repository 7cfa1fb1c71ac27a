"""Background compression jobs for interactive front ends: one worker thread per process runs jobs
in order (the machine is not overcommitted), each recorded in the run store, with per-layer progress
in a locked object a UI polls, and cancellation between layers. Each finished job's model is saved
(atomically) under ``cache/runs/run-<id>/`` so it can be compared, prompted and deployed."""

from __future__ import annotations

import copy
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Any

from cola_core.calibration.files import tokenize_calibration
from cola_core.compress import Cancelled, CompressConfig, compress_with_calibration
from cola_core.corpora import Record
from cola_core.curation.processing import ProcessingConfig
from cola_core.evaluation.runstore import RunStore
from cola_core.evaluation.suite import DEFAULT_LIMIT, evaluate
from cola_core.models.loading import load_model_cached, pick_device
from cola_core.paths import cache_root


@dataclass
class Job:
    run_id: int
    model: str
    calibration_name: str
    records: list[Record]
    config: CompressConfig
    seqlen: int
    limit: int
    status: str = "queued"
    layers_done: int = 0
    layers_total: int = 0
    message: str = ""
    device: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)


class JobQueue:
    def __init__(self, store: RunStore):
        self.store = store
        self.jobs: dict[int, Job] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job] = queue.Queue()
        threading.Thread(target=self._work, daemon=True, name="cola-jobs").start()

    def submit(
        self,
        model: str,
        calibration_name: str,
        records: list[Record],
        config: CompressConfig,
        seqlen: int = ProcessingConfig.seqlen,
        limit: int = DEFAULT_LIMIT,
        extra: dict[str, Any] | None = None,
    ) -> int:
        """Queue one run; ``extra`` (e.g. the selection's strategy, seed and coverage proxy) is kept in its settings."""
        config.validate()
        settings = {**config.__dict__, "limit": limit, "seqlen": seqlen, **(extra or {})}
        seed = (extra or {}).get("seed")  # the run history's seed column: the selection's seed, as given
        run_id = self.store.create(model, calibration=calibration_name, settings=settings, seed=seed)
        job = Job(run_id, model, calibration_name, list(records), config, seqlen, limit)
        with self._lock:
            self.jobs[run_id] = job
        self._queue.put(job)
        return run_id

    def cancel(self, run_id: int) -> None:
        with self._lock:
            job = self.jobs.get(run_id)
        if job:
            job.cancel.set()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "run_id": j.run_id,
                    "calibration": j.calibration_name,
                    "method": j.config.method,
                    "status": j.status,
                    "layers": f"{j.layers_done}/{j.layers_total}",
                    "device": j.device,
                    "message": j.message,
                }
                for j in self.jobs.values()
            ]

    def _set(self, job: Job, **fields: Any) -> None:
        with self._lock:
            for k, v in fields.items():
                setattr(job, k, v)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job.cancel.is_set():
                self.store.cancel(job.run_id)
                self._set(job, status="cancelled")
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        self.store.start(job.run_id)
        self._set(job, status="running", message="compressing")
        t0 = time.perf_counter()
        try:
            self._set(job, device=str(pick_device(job.config.device)))
            dense = load_model_cached(job.model, job.config.device)
            loaded = replace(dense, model=copy.deepcopy(dense.model))  # the shared dense model stays untouched
            out = cache_root() / "runs" / f"run-{job.run_id}"
            report = compress_with_calibration(
                loaded,
                tokenize_calibration(job.records, dense.tokenizer, job.seqlen),
                job.config,
                out=out,  # saved atomically, dense (no integer codes held): it is evaluated in memory
                progress=lambda d, t, _r: self._set(job, layers_done=d, layers_total=t),
                should_cancel=job.cancel.is_set,
            ).report
            report["out"] = str(out)
            self._set(job, message="evaluating")
            scores = evaluate(loaded.model, dense.tokenizer, limit=job.limit)
            fingerprint = report["calibration"]["fingerprint"]
            self.store.finish(job.run_id, scores, report, calibration_fingerprint=fingerprint)
            self._set(job, status="done", message=f"{time.perf_counter() - t0:.0f}s")
        except Cancelled:
            self.store.cancel(job.run_id)
            self._set(job, status="cancelled", message="cancelled between layers")
        except Exception as exc:  # recorded on the run, shown in the UI; the worker keeps serving
            self.store.fail(job.run_id, f"{type(exc).__name__}: {exc}")
            self._set(job, status="failed", message=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            traceback.print_exc()


_QUEUE: JobQueue | None = None
_QUEUE_LOCK = threading.Lock()


def job_queue() -> JobQueue:
    """The process's job queue (one worker, shared by every dashboard session)."""
    global _QUEUE
    with _QUEUE_LOCK:
        if _QUEUE is None:
            _QUEUE = JobQueue(RunStore())
        return _QUEUE


def dense_scores(model: str, limit: int = DEFAULT_LIMIT) -> int:
    """Run id of the dense model's evaluation in the store, evaluating once if missing."""
    store = job_queue().store
    key = f"dense/{model}/{load_model_cached(model).fingerprint}/{limit}"
    run_id = store.create(model, key=key, calibration="dense", settings={"method": "dense", "limit": limit})
    if store.get(run_id)["status"] != "done":
        loaded = load_model_cached(model)
        store.start(run_id)
        store.finish(run_id, evaluate(loaded.model, loaded.tokenizer, limit=limit))
    return run_id
