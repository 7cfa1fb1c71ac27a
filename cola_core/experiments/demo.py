"""The demo: a preset comparison (the built-in ``demo`` experiment: generic text, math-only text, and
random, COLA and COLA-quota selections from one math + prose pool, three seeds, GPTQ 3-bit on
cola-tiny) run into the run store with the experiment machinery, and its claims judged on the held-out
items (``"claims_over": "items"``). ``python -m cola_core demo`` (which then writes the
shareable HTML report, :mod:`cola_core.html_report`) and the dashboard's landing page both call
:func:`run_demo`; a second call reuses the finished runs."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cola_core.evaluation.runstore import RunStore
from cola_core.experiments.config import compression_label, compression_name, load_config
from cola_core.experiments.grid import run_experiment
from cola_core.experiments.plan import plan_runs
from cola_core.experiments.report import judged_claims
from cola_core.experiments.results import load_results

DEMO_CONFIG = "demo"  # cola_core/experiments/configs/demo.json


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced: the experiment's name (its config: ``config``), how many compressed
    runs are finished, and each claim's verdict with its difference and 95% t-interval."""

    experiment: str
    config: str
    runs: int
    verdicts: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "config": self.config, "runs": self.runs, "verdicts": self.verdicts}


def describe(config: str | None = None) -> str:
    """The demo in one sentence, from its config (the landing page shows it): its sets, seeds, settings."""
    cfg = load_config(config or DEMO_CONFIG)
    sets = ", ".join(f"**{s.name}**" for s in cfg.calibration_sets)
    settings = " and ".join(compression_name(compression_label(c)) for c in cfg.compression)
    shared = cfg.shared
    return (
        f"compresses {cfg.model} with {len(cfg.calibration_sets)} calibration sets of {shared.n} × "
        f"{shared.processing.seqlen} tokens — {sets} — {len(cfg.seeds)} seeds each, under {settings}, scores "
        f"every compressed model on {cfg.limit} held-out items per capability ({', '.join(cfg.capabilities)})"
    )


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def run_demo(
    store: RunStore,
    progress: Callable[[str], None] | None = None,
    *,
    config: str | None = None,
) -> DemoResult:
    """Run (or resume) the demo experiment into ``store`` and judge its claims. ``progress`` receives
    one line per step; ``config`` is a built-in name or a JSON file (default :data:`DEMO_CONFIG`;
    tests pass a smaller one)."""
    log = progress or (lambda s: None)
    config = config or DEMO_CONFIG
    cfg = load_config(config)
    log(f"demo: experiment {cfg.name} into {store.path}")
    run_experiment(cfg, store, log=log)
    results = load_results(plan_runs(cfg), store)
    claims = judged_claims(cfg, results) if cfg.claims else None
    verdicts = []
    for r in claims.itertuples() if claims is not None else ():
        verdicts.append(
            {
                "claim": f"{r.title}: {r.better} vs {r.worse}",
                "capability": r.capability,
                "compression": r.compression,
                "difference": _finite(r.difference),
                "ci_low": _finite(r.boot_low),
                "ci_high": _finite(r.boot_high),
                "p_holm": _finite(r.p_holm),
                "verdict": r.verdict,
            }
        )
    return DemoResult(cfg.name, config, len(results.scores), verdicts)
