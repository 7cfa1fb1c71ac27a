"""Calibration sets side by side (A/B) under one compression setting, for the Compare page and the
HTML report: per capability, each set's retention with its interval, the paired difference against
a reference set with a Holm-adjusted verdict, and each set's mix, token budget and map.

A *set* is the runs that share a calibration set across seeds: an experiment's named set
(``smoke/cola``) or dashboard runs with the same calibration label up to the seed
(``dashboard/cola n=16``). The statistics are the experiment report's own
(:func:`~cola_core.experiments.report.summarise`, :mod:`cola_core.evaluation.significance`). The
question here is "does set A keep more than set B on these held-out items, for this model" (issue
#30): each set's seeds are averaged item by item (the seeds are clusters of one set's observations)
and the difference's variance comes from a bootstrap over the items, the same draws for both sets
(:func:`~cola_core.experiments.claims.judge_on_items`). Whether another draw of the calibration
sets would do the same is a question about the distribution of sets, which the experiment answers
(:mod:`cola_core.experiments.claims`, seeds resampled)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cola_core.compress import CompressConfig
from cola_core.errors import ColaError
from cola_core.evaluation.retention import retention
from cola_core.evaluation.runstore import RunStore
from cola_core.evaluation.significance import ALPHA, holm, verdict
from cola_core.evaluation.suite import CAPABILITIES, Score
from cola_core.experiments.claims import judge_on_items
from cola_core.experiments.config import compression_label
from cola_core.experiments.report import summarise
from cola_core.experiments.results import TABLE_COLUMNS, ExperimentResults

DASHBOARD = "dashboard"  # the group prefix of runs launched from the dashboard's Compress page
# Dashboard labels name the seed; a set spans seeds.
_SEED = re.compile(r"\s*seed=-?\d+")
_SPEED_ONLY = {"batch_tokens", "device", "error_tokens"}  # CompressConfig fields that do not change the model
GROUP_COLUMNS = ("group", "source", "calibration", "compression", "seeds", "run_ids", "limit", "newest")
_TESTED = ("group", "reference", "capability", "difference", "ci_low", "ci_high", "p")
DIFFERENCE_COLUMNS = [*_TESTED, "p_holm", "verdict", "pairs", "seeds", "note"]


def _json(text: Any) -> dict:
    return json.loads(text) if isinstance(text, str) and text else {}


def run_compression(settings: dict, experiment: str | None) -> str:
    """A run's compression label: an experiment's as its config writes it (``compression_label``);
    a dashboard run's from the settings that change the model — method, sparsity or bits, and any
    other setting off its default — so that the same setting gets the same label in both."""
    if experiment:
        return compression_label(settings)
    defaults = asdict(CompressConfig())
    method = settings.get("method", defaults["method"])
    headline = {"method", "sparsity"} if CompressConfig(method=method).is_pruning else {"method", "bits"}
    kept = {
        k: v
        for k, v in settings.items()
        if k in defaults and k not in _SPEED_ONLY and (k in headline or v != defaults[k])
    }
    return compression_label(kept)


def _group_of(row: pd.Series) -> str:
    if row["experiment"]:
        return f"{row['experiment']}/{row['calibration']}"
    label = _SEED.sub("", str(row["calibration"])).strip()
    return f"{DASHBOARD}/{label}"


def _finished(store: RunStore, model: str) -> pd.DataFrame:
    """The finished compressed runs of ``model``, one per (group, compression, seed) — the newest."""
    runs = store.runs()
    runs = runs[(runs["status"] == "done") & (runs["model"] == model) & (runs["calibration"] != "dense")].copy()
    if runs.empty:
        return runs.assign(group=[], compression=[])
    runs["experiment"] = runs["experiment"].where(runs["experiment"].notna(), None)
    settings = runs["settings"].map(_json)
    runs["seed"] = [
        int(s) if pd.notna(s) else int(st.get("seed", 0)) for s, st in zip(runs["seed"], settings, strict=True)
    ]
    runs["group"] = runs.apply(_group_of, axis=1)
    runs["compression"] = [run_compression(s, e) for s, e in zip(settings, runs["experiment"], strict=True)]
    return runs.sort_values("id").drop_duplicates(["group", "compression", "seed"], keep="last")


def set_groups(store: RunStore, model: str) -> pd.DataFrame:
    """The selectable calibration sets of ``model``: one row per set and compression setting, with
    columns group, source (``experiment <name>`` or ``dashboard``), calibration, compression, seeds
    and run_ids (lists, by seed), limit (held-out items per capability of a dashboard set's runs,
    whose dense evaluation :func:`cola_core.app.jobs.dense_scores` makes) and newest (its newest run id)."""
    runs = _finished(store, model)
    rows = []
    for (group, comp), g in runs.groupby(["group", "compression"], sort=True):
        g = g.sort_values("seed")
        first = g.iloc[0]
        rows.append(
            {
                "group": group,
                "source": f"experiment {first['experiment']}" if first["experiment"] else DASHBOARD,
                "calibration": group.split("/", 1)[1],
                "compression": comp,
                "seeds": [int(s) for s in g["seed"]],
                "run_ids": [int(i) for i in g["id"]],
                "limit": None if first["experiment"] else _json(first["settings"]).get("limit"),
                "newest": int(g["id"].max()),
            }
        )
    return pd.DataFrame(rows, columns=[*GROUP_COLUMNS])


def default_choice(groups: pd.DataFrame, compression: str) -> tuple[list[str], str]:
    """What the view preselects: the sets of the newest experiment under ``compression`` (up to five)
    and, as the reference, its set named ``generic`` (random generic text, the paper's baseline), else
    ``random``, else its first; nothing for dashboard runs, whose sets the user picks."""
    mine = groups[(groups["compression"] == compression) & (groups["source"] != DASHBOARD)]
    if mine.empty:
        return [], ""
    newest = mine.loc[mine["newest"].idxmax(), "source"]
    chosen = mine[mine["source"] == newest].sort_values("group")["group"].tolist()[:5]
    return chosen, default_reference(chosen)


def default_reference(groups: Sequence[str]) -> str:
    """The baseline a set is compared against: random generic text (``…/generic``, the paper's
    baseline), else random selection (``…/random`` or a dashboard ``random`` set), else the first."""
    for name in ("generic", "random"):
        found = [g for g in groups if g.endswith(f"/{name}") or g.split("/")[-1].startswith(f"{name} ")]
        if found:
            return found[0]
    return groups[0]


@dataclass
class ABComparison:
    """Calibration sets compared under one compression setting (see :func:`compare_sets`)."""

    compression: str
    reference: str
    groups: list[str]
    retention: pd.DataFrame  # group × capability: mean retention over seeds, bootstrap and t intervals, seeds
    differences: pd.DataFrame  # group − reference per capability: DIFFERENCE_COLUMNS
    sets: pd.DataFrame  # per group: source, seeds, run_ids, n, tokens and mix (when the runs record them)
    run_ids: dict[str, list[int]] = field(default_factory=dict)  # group → run ids, by seed
    seeds: dict[str, list[int]] = field(default_factory=dict)  # group → seeds, in run_ids' order
    dense_run_id: int = 0  # the dense evaluation every retention divides by
    alpha: float = ALPHA


def dense_run(store: RunStore, run_id: int) -> int:
    """The dense evaluation a finished run is measured against: its experiment's, or for a dashboard run
    the dense run of the same model and number of held-out items (:func:`cola_core.app.jobs.dense_scores`)."""
    runs, run = store.runs(), store.get(run_id)
    dense = runs[(runs["calibration"] == "dense") & (runs["status"] == "done") & (runs["model"] == run["model"])]
    limit = _json(run["settings"]).get("limit")
    if run["experiment"]:
        dense = dense[dense["experiment"] == run["experiment"]]
    else:
        dense = dense[dense["experiment"].isna() & (dense["settings"].map(lambda s: _json(s).get("limit")) == limit)]
    if dense.empty:
        where = f"experiment {run['experiment']}" if run["experiment"] else f"{limit} items"
        raise ColaError(f"no finished dense evaluation of {run['model']} ({where}) to measure run {run_id} against")
    return int(dense["id"].iloc[-1])


def _same_items(a: dict[str, Score], b: dict[str, Score]) -> bool:
    return a.keys() == b.keys() and all(a[k].items == b[k].items for k in a)


def _budget(report: dict) -> tuple[int | None, int | None, dict[str, float]]:
    """(n, real tokens, corpus shares) of a run's calibration set as its report records them, if it does."""
    cal = report.get("calibration") if isinstance(report.get("calibration"), dict) else {}
    tokens = report.get("tokens", cal.get("tokens"))
    mix = report.get("mix", cal.get("mix")) or {}
    total = sum(mix.values())
    n = cal.get("n", report.get("n", total or None))
    return n, tokens, {k: v / total for k, v in mix.items()} if total else {}


def _collect(store: RunStore, groups: Sequence[str], compression: str) -> tuple[pd.DataFrame, int]:
    all_runs = store.runs()
    if all_runs.empty:
        raise ColaError("the run store holds no runs")
    models = set(all_runs.loc[all_runs["calibration"] != "dense", "model"])
    runs = pd.concat([_finished(store, m) for m in sorted(models)])
    picked = runs[runs["group"].isin(groups) & (runs["compression"] == compression)]
    for g in groups:
        if g not in set(picked["group"]):
            raise ColaError(f"no finished runs of set '{g}' under {compression}: pick from Compare's list of sets")
    if picked["model"].nunique() > 1:
        raise ColaError(f"the sets compress different models ({', '.join(sorted(set(picked['model'])))}): pick one")
    denses = {int(i): dense_run(store, int(i)) for i in picked["id"]}
    dense_id = denses[int(picked.iloc[0]["id"])]
    dense = store.score_items(dense_id)
    for other in set(denses.values()) - {dense_id}:
        if not _same_items(dense, store.score_items(other)):
            raise ColaError(
                "the sets were evaluated on different held-out items (another number of items per capability): "
                "compare sets evaluated alike"
            )
    return picked.sort_values(["group", "seed"]), dense_id


def _results(store: RunStore, picked: pd.DataFrame, dense_id: int) -> ExperimentResults:
    """The picked runs as an experiment's results (group names as calibration sets)."""
    dense = store.score_items(dense_id)
    rows, scores = [], {}
    for run in picked.itertuples():
        proxy = _json(run.report).get("proxy", {})
        found = store.score_items(int(run.id))
        scores[(run.group, run.compression, run.seed)] = found
        for capability, s in found.items():
            if capability not in dense or len(dense[capability].items) != len(s.items):
                raise ColaError(f"run {run.id} scored {capability} on other items than its dense run")
            value, lo, hi = retention(dense[capability], s)
            cov = proxy.get(capability.split("_")[0], np.nan)
            rows.append([run.group, run.compression, run.seed, capability, value, lo, hi, s.score, cov])
    return ExperimentResults(pd.DataFrame(rows, columns=TABLE_COLUMNS), dense, scores)


def _item_paired(results: ExperimentResults, group: str, reference: str, capability: str, comp: str) -> dict:
    claim = {"better": group, "worse": reference, "capability": capability, "compression": comp}
    j = judge_on_items(results, claim)
    return {
        **{k: j[k] for k in ("difference", "p", "pairs", "seeds", "untestable", "note")},
        "ci_low": j["boot_low"],
        "ci_high": j["boot_high"],
    }


def differences(results: ExperimentResults, groups: Sequence[str], reference: str, comp: str) -> pd.DataFrame:
    """Each group − reference per capability, paired over the evaluated items (each set's seeds
    averaged item by item); p Holm-adjusted over the comparisons shown, and the verdict on the claim
    «the group retains more than the reference on these items»: supported / contradicted
    (Holm-significant for / against it), inconclusive, or untestable — both sets at the floor or
    ceiling of retention, left out of Holm's family as the experiment report does."""
    rows = []
    capabilities = sorted(set(results.table["capability"]))
    for group in (g for g in groups if g != reference):
        for capability in capabilities:
            rows.append({"group": group, "reference": reference, "capability": capability})
            rows[-1].update(_item_paired(results, group, reference, capability, comp))
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=DIFFERENCE_COLUMNS)
    testable = ~frame["untestable"]
    frame["p_holm"] = math.nan
    frame.loc[testable, "p_holm"] = holm(frame.loc[testable, "p"].tolist())
    frame["verdict"] = [
        "untestable" if u else verdict(d, p, ALPHA)
        for d, p, u in zip(frame["difference"], frame["p_holm"], frame["untestable"], strict=True)
    ]
    return frame[DIFFERENCE_COLUMNS]


def headlines(comparison: ABComparison) -> list[str]:
    """One sentence per supported or contradicted difference on a capability itself (its sub-scores,
    such as math's tiers, stay in the table), largest first, as a stakeholder reads it:
    "demo/math-only keeps 0.24 more math retention than demo/generic [+0.21, +0.28] — supported"."""
    d = comparison.differences
    decided = d[d["verdict"].isin(("supported", "contradicted")) & d["capability"].isin(CAPABILITIES)]
    out = []
    for r in decided.reindex(decided["difference"].abs().sort_values(ascending=False).index).itertuples():
        more = "more" if r.difference > 0 else "less"
        out.append(
            f"**{r.group}** keeps {abs(r.difference):.2f} {more} {r.capability} retention than **{r.reference}** "
            f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}] — {r.verdict}"
        )
    return out


def compare_sets(store: RunStore, groups: Sequence[str], compression: str, reference: str) -> ABComparison:
    """Two or more calibration sets (``set_groups``'s ``group`` values) under one compression setting,
    each against ``reference`` (one of them): retention per capability with its intervals, the paired
    differences with verdicts, and each set's runs, mix and token budget (as their reports record them;
    :func:`cola_core.app.ab_maps.set_maps` rebuilds them when not). Raises ColaError for fewer than two sets, a
    set given twice, a reference not among them, or sets that cannot be paired."""
    groups = list(groups)
    if len(set(groups)) != len(groups):
        twice = next(g for g in groups if groups.count(g) > 1)
        raise ColaError(f"'{twice}' is given twice: a set compared with itself says nothing")
    if len(groups) < 2:
        raise ColaError("pick at least two calibration sets to compare")
    if reference not in groups:
        raise ColaError(f"the reference '{reference}' must be one of the sets compared: {', '.join(groups)}")
    picked, dense_id = _collect(store, groups, compression)
    results = _results(store, picked, dense_id)
    summary = summarise(results).rename(columns={"calibration": "group"}).drop(columns=["compression"])
    order = {g: i for i, g in enumerate(groups)}
    summary = summary.sort_values(["capability", "group"], key=lambda s: s.map(order) if s.name == "group" else s)
    sets, run_ids, seeds = [], {}, {}
    for g in groups:
        mine = picked[picked["group"] == g]
        run_ids[g], seeds[g] = [int(i) for i in mine["id"]], [int(s) for s in mine["seed"]]
        budgets = [_budget(_json(r)) for r in mine["report"]]
        known = all(b[1] is not None for b in budgets)
        mix = pd.DataFrame([b[2] for b in budgets]).fillna(0.0).mean().to_dict() if budgets[0][2] else {}
        sets.append(
            {
                "group": g,
                "source": f"experiment {mine['experiment'].iloc[0]}" if mine["experiment"].iloc[0] else DASHBOARD,
                "seeds": seeds[g],
                "run_ids": run_ids[g],
                "n": budgets[0][0],
                "tokens": float(np.mean([b[1] for b in budgets])) if known else None,  # mean over seeds
                "mix": mix,
            }
        )
    return ABComparison(
        compression,
        reference,
        groups,
        summary.reset_index(drop=True),
        differences(results, groups, reference, compression),
        pd.DataFrame(sets),
        run_ids,
        seeds,
        dense_id,
    )


def _interval(lo: float, hi: float) -> str:
    return "n/a" if not (math.isfinite(lo) and math.isfinite(hi)) else f"[{lo:+.3f}, {hi:+.3f}]"


def verdict_table(comparison: ABComparison) -> pd.DataFrame:
    """The differences for people: one row per set and capability, the difference from the reference,
    the verdict, the 95% bootstrap interval over items, Holm's p and p, and what was paired."""
    d = comparison.differences
    return pd.DataFrame(
        {
            "set": d["group"],
            "capability": d["capability"],
            f"difference vs {comparison.reference}": d["difference"],
            "verdict": d["verdict"],
            "95% interval (items)": [_interval(a, b) for a, b in zip(d["ci_low"], d["ci_high"], strict=True)],
            "p (Holm)": d["p_holm"],
            "p": d["p"],
            "paired over": [f"{n} items, {s} seed(s) averaged" for n, s in zip(d["pairs"], d["seeds"], strict=True)],
            "note": d["note"],
        }
    )


def pairing_note(comparison: ABComparison) -> str:
    """Which test, in one paragraph: what is paired, what the verdict says and what it does not."""
    tested = int(comparison.differences["p_holm"].map(math.isfinite).sum())
    return (
        f"Difference = set − {comparison.reference} in retention. Test: each set's seeds averaged item by item; "
        "the difference's variance from a bootstrap over the held-out items (the same draws for both sets), on "
        f"Student's t with items − 1 degrees of freedom; Holm-adjusted over the {tested} comparisons shown "
        f"(α = {comparison.alpha}). It answers «do these calibration sets keep more than the reference on items "
        "like these, for this model»: **supported** / **contradicted** when Holm-significant for / against it, "
        "**inconclusive** otherwise, **untestable** when both sit at the floor or ceiling of retention or do not "
        "differ at all. Whether another draw of the calibration data would do the same is the "
        "experiment's question (`python -m cola_core experiment`: seeds resampled, one rule per claim)."
    )
