"""The stored results of one experiment config: only the runs its plan names (plan.py), so sets,
seeds or settings no longer in the config, and runs made under other settings, never reach a report."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cola_core.evaluation.retention import retention
from cola_core.evaluation.runstore import RunStore
from cola_core.evaluation.suite import Score
from cola_core.experiments.plan import Plan

RunId = tuple[str, str, int]  # (calibration set, compression label, seed)


@dataclass
class ExperimentResults:
    table: pd.DataFrame  # one row per finished run × score: retention (items bootstrap), score, coverage
    dense: dict[str, Score] = field(default_factory=dict)  # the dense model's scores, with per-item data
    scores: dict[RunId, dict[str, Score]] = field(default_factory=dict)  # each finished run's scores
    missing: list[str] = field(default_factory=list)  # keys of planned runs not finished
    seconds: float = 0.0  # compute stored with the finished runs (curation, compression, evaluation)
    budgets: pd.DataFrame = field(default_factory=pd.DataFrame)  # per set: mean real tokens and mix
    span: float = 0.0  # seconds from the first finished run's start to the last one's finish (pauses included)

    def arm(self, calibration: str, compression: str, capability: str, seeds: list[int]) -> list[Score]:
        """One calibration set's scores of a capability at the given seeds, in that order."""
        return [self.scores[(calibration, compression, s)][capability] for s in seeds]

    def seeds(self, calibration: str, compression: str) -> list[int]:
        return sorted(s for c, comp, s in self.scores if (c, comp) == (calibration, compression))


TABLE_COLUMNS = [
    "calibration",
    "compression",
    "seed",
    "capability",
    "retention",
    "ci_low",
    "ci_high",
    "score",
    "coverage",
]


def load_results(plan: Plan, store: RunStore) -> ExperimentResults:
    """The finished runs of the plan, with item-level scores, and the planned runs still missing."""
    runs = store.runs(keys=plan.keys)
    done = runs[runs["status"] == "done"].set_index("key")
    missing = [k for k in plan.keys if k not in done.index]
    if plan.dense.key not in done.index:
        return ExperimentResults(pd.DataFrame(columns=TABLE_COLUMNS), missing=missing)
    dense = store.score_items(int(done.loc[plan.dense.key, "id"]))
    seconds = float(json.loads(done.loc[plan.dense.key, "report"] or "{}").get("seconds", 0.0))
    rows, scores, sets = [], {}, []
    for run in plan.runs:
        if run.key not in done.index:
            continue
        row = done.loc[run.key]
        report = json.loads(row["report"] or "{}")
        proxy = report.get("proxy", {})
        seconds += float(report.get("seconds", 0.0))
        sets.append(
            {"calibration": run.calibration, "seed": run.seed, "tokens": report.get("tokens"), **report.get("mix", {})}
        )
        scores[(run.calibration, run.compression, run.seed)] = found = store.score_items(int(row["id"]))
        for capability, s in found.items():
            value, lo, hi = retention(dense[capability], s)
            rows.append(
                {
                    "calibration": run.calibration,
                    "compression": run.compression,
                    "seed": run.seed,
                    "capability": capability,
                    "retention": value,
                    "ci_low": lo,
                    "ci_high": hi,
                    "score": s.score,
                    "coverage": proxy.get(capability.split("_")[0], np.nan),
                }
            )
    budgets = set_budgets(sets)
    span = float(done["finished"].max() - done["started"].min())
    return ExperimentResults(pd.DataFrame(rows, columns=TABLE_COLUMNS), dense, scores, missing, seconds, budgets, span)


def set_budgets(sets: list[dict]) -> pd.DataFrame:
    """Per calibration set, the mean over its seeds of the real tokens and of the samples per corpus
    (one row per set and seed in ``sets``). A corpus absent from one seed's set counts 0 there, so
    the mean is over every seed of the set, not only those where the corpus appears."""
    budgets = pd.DataFrame(sets)
    if budgets.empty:
        return budgets
    budgets = budgets.drop_duplicates(["calibration", "seed"]).drop(columns="seed")
    corpora = [c for c in budgets.columns if c not in ("calibration", "tokens")]
    budgets[corpora] = budgets[corpora].fillna(0.0)
    return budgets.groupby("calibration", sort=False).mean().fillna(0.0)


def retention_table(plan: Plan, store: RunStore) -> pd.DataFrame:
    """One row per (calibration set, compression, seed, capability) of the plan's finished runs."""
    return load_results(plan, store).table
