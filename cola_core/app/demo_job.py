"""The demo as a background job for the dashboard's landing page: one per process (the machine is not
overcommitted by two demos), run in a thread by :func:`cola_core.experiments.demo.run_demo` — the same
function ``python -m cola_core demo`` calls — into the dashboard's run store, with its progress in a
locked snapshot the page polls."""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field, replace

from cola_core.evaluation.runstore import RunStore
from cola_core.experiments.config import compression_name
from cola_core.experiments.demo import DemoResult, run_demo


@dataclass(frozen=True)
class DemoState:
    status: str = "idle"  # idle | running | done | failed
    runs_total: int = 0  # runs still to compute when it started (0 until the plan is known)
    runs_done: int = 0
    last: str = ""  # the latest progress line
    error: str = ""
    result: DemoResult | None = None
    log: tuple[str, ...] = field(default_factory=tuple)
    started: float = 0.0  # time.monotonic() at the start
    first_done: float = 0.0  # when the first run finished (the dense run and loading come before it)

    @property
    def fraction(self) -> float:
        return self.runs_done / self.runs_total if self.runs_total else 0.0

    def remaining(self, now: float | None = None) -> float | None:
        """Seconds left, from the pace of the runs finished since the first (None until two have)."""
        now = time.monotonic() if now is None else now
        if self.runs_done < 2 or not self.runs_total:
            return None
        pace = (now - self.first_done) / (self.runs_done - 1)
        return pace * (self.runs_total - self.runs_done)


_DONE = re.compile(r"^done [^/]+/(?P<set>[^/]+)/(?:(?P<label>[^/]+)/(?P<seed>-?\d+)/)?[0-9a-f]+ in (?P<s>\d+)s")


def readable(line: str) -> str:
    """A progress line for people: ``done demo/cola/bits=3-…/1/9ec8… in 12s`` → ``cola · GPTQ 3-bit g32 ·
    seed 1 finished (12 s)``; other lines as they are."""
    if line.startswith("demo: experiment "):  # names the store's path on the server: not for the page
        return "planning the runs"
    m = _DONE.match(line)
    if not m:
        return line
    if not m["label"]:
        return f"the dense model scored ({m['s']} s)"
    return f"{m['set']} · {compression_name(m['label'])} · seed {m['seed']} finished ({m['s']} s)"


_PLANNED = re.compile(r"^(\d+) runs in \d+ cells")


class DemoRunner:
    """Starts the demo at most once at a time and keeps what the page shows of it."""

    def __init__(self, store: RunStore, config: str | None = None):
        self.store = store
        self.config = config  # None: the built-in demo; tests pass a smaller config
        self._lock = threading.Lock()
        self._state = DemoState()

    def run_ids(self) -> list[int]:
        """The demo experiment's runs in the store (finished or not)."""
        from cola_core.experiments.config import load_config
        from cola_core.experiments.demo import DEMO_CONFIG

        return self.store.runs(experiment=load_config(self.config or DEMO_CONFIG).name)["id"].tolist()

    def snapshot(self) -> DemoState:
        with self._lock:
            return self._state

    def start(self) -> bool:
        """Start the demo in a thread; False when one is already running."""
        with self._lock:
            if self._state.status == "running":
                return False
            self._state = DemoState(status="running", last="planning the runs", started=time.monotonic())
        threading.Thread(target=self._run, daemon=True, name="cola-demo").start()
        return True

    def _progress(self, line: str) -> None:
        with self._lock:
            s = self._state
            planned = _PLANNED.match(line)
            self._state = replace(
                s,
                last=line,
                log=(*s.log, line)[-50:],
                runs_total=int(planned.group(1)) if planned else s.runs_total,
                runs_done=s.runs_done + line.startswith("done "),
                first_done=s.first_done or (time.monotonic() if line.startswith("done ") else 0.0),
            )

    def _run(self) -> None:
        try:
            result = run_demo(self.store, self._progress, config=self.config)
        except Exception as exc:  # shown on the page; the run store keeps what finished
            with self._lock:
                self._state = replace(self._state, status="failed", error=f"{type(exc).__name__}: {exc}")
            return
        with self._lock:
            self._state = replace(
                self._state, status="done", result=result, last=f"{result.runs} compressed runs finished"
            )


_RUNNERS: dict[str, DemoRunner] = {}
_RUNNERS_LOCK = threading.Lock()


def demo_runner(store: RunStore, config: str | None = None) -> DemoRunner:
    """The process's demo runner for ``store`` (shared by every dashboard session). ``config``: an
    experiment config (built-in name or JSON file) to run instead of the built-in ``demo``; by default
    the ``COLA_DEMO_CONFIG`` environment variable, so a team can make its own preset the button's."""
    config = config or os.environ.get("COLA_DEMO_CONFIG") or None
    with _RUNNERS_LOCK:
        key = f"{store.path}|{config}"
        if key not in _RUNNERS:
            _RUNNERS[key] = DemoRunner(store, config)
        return _RUNNERS[key]
