"""An experiment's claims, judged by one rule (issue #29).

A claim says set A keeps more retention than set B on an endpoint (a score, or :data:`MEAN`, the
mean over the capabilities) under one compression setting. Every claim is judged the same way:

1. the bootstrap of :func:`~cola_core.experiments.endpoints.endpoint_bootstrap` resamples the seeds
   both sets share and, within them, the evaluated items — whole item clusters where the config asks
   (``cluster_items``: facts by town, prose and code by source module, math by template) — with the
   same draws for both sets, so each replicate is one paired difference;
2. the variance is split into its components — seed to seed and item (cluster) to item, each from
   a bootstrap that resamples only that level, corrected by units / (units − 1) — and
   :func:`~cola_core.evaluation.significance.components_t` turns them into the standard error, the
   95% interval and the two-sided p-value (Student's t, Welch–Satterthwaite degrees of freedom) and
   the smallest difference detectable with 80% power;
3. Holm's adjustment runs within each claim's **family** (``"family"`` in the config, default
   ``"primary"``): a pre-registered primary family, and for every primary claim on the mean its
   per-capability differences as a secondary family of their own (:func:`with_secondaries`);
4. the verdict is that adjusted p and the sign: **supported** / **contradicted** at family-wise
   α = 0.05 within the claim's family, **inconclusive** otherwise, **untestable** where both sets sit
   at the floor (chance level for multiple choice) or the ceiling, or nothing varies — such a claim
   keeps its place in the family (p = 1), so the data cannot shrink the family.

The seeds-only paired t-interval is kept in the output (``ci_low``/``ci_high``, ``sd``) for the
dashboard's seed-paired view; no verdict reads it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cola_core.errors import ColaError
from cola_core.evaluation.retention import bootstrap_seeds_and_items
from cola_core.evaluation.significance import (
    ALPHA,
    POWER,
    component_variance,
    components_t,
    holm,
    paired_t,
    verdict,
)
from cola_core.evaluation.suite import CHANCE, Score
from cola_core.experiments.endpoints import MEAN, endpoint_bootstrap, item_units, per_seed_retention
from cola_core.experiments.results import ExperimentResults

BOOTSTRAP_ROUNDS = 2000
FLOOR, CEILING = 0.05, 0.99  # mean retention at or beyond which a comparison cannot separate sets
PRIMARY = "primary"
SECONDARY = "secondary to"  # a secondary family's name: "secondary to A vs B, setting"


def percentile_interval(x: np.ndarray) -> tuple[float, float]:
    """95% percentile interval of the defined replicates (retention.py: NaN where the dense score is 0)."""
    finite = x[np.isfinite(x)]
    if len(finite) == 0:
        return math.nan, math.nan
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return float(lo), float(hi)


def floor_of(capability: str, dense: Score) -> float:
    """The retention floor of a capability: :data:`FLOOR`, or chance accuracy over the dense score
    where the capability is a choice among a few answers (facts: 0.25 / dense accuracy)."""
    chance = CHANCE.get(capability.split("_")[0], 0.0)
    return max(FLOOR, chance / dense.score) if chance and dense.score > 0 else FLOOR


def separation_limit(means: Sequence[float], floor: float = FLOOR) -> str:
    """Why a comparison cannot separate two sets, or "": both at the floor (retention ≤ ``floor``,
    e.g. chance level, :func:`floor_of`) or both at the ceiling."""
    if means and max(means) <= floor:
        return (
            f"both sets at the floor (retention ≤ {floor:.2f}): the setting destroys the capability whatever the data"
        )
    if means and min(means) >= CEILING:
        return f"both sets at the ceiling (retention ≥ {CEILING}): the setting leaves no room to differ"
    return ""


def family_of(claim: Mapping) -> str:
    return str(claim.get("family", PRIMARY))


def with_secondaries(claims: Sequence[dict], capabilities: Sequence[str]) -> list[dict]:
    """The claims, each claim on :data:`MEAN` followed by its per-capability differences: a secondary
    family per primary (Holm within it), so a mean that hides a trade-off shows which capability
    paid for it."""
    out = []
    for claim in claims:
        out.append(claim)
        if claim["capability"] != MEAN:
            continue
        family = f"{SECONDARY} {claim['better']} vs {claim['worse']}, {claim['compression']}"
        out += [{**claim, "capability": cap, "family": family} for cap in capabilities]
    return out


def _judged(test, point: np.ndarray, floor: float) -> dict:
    """What every claim reports from its test: the difference, its standard error, degrees of freedom,
    interval and p, and whether it is untestable (both sets at the floor or ceiling, retention
    undefined, or nothing to test against) with the note saying why."""
    limit = separation_limit(list(point), floor)
    if not np.isfinite(point).all():
        limit = "retention undefined: the dense model scores 0 on these items"
    return {
        "difference": test.difference,
        "se": test.se,
        "df": test.df,
        "boot_low": test.ci_low,
        "boot_high": test.ci_high,
        "p": test.p,
        "untestable": bool(limit) or not math.isfinite(test.p),  # nothing to test: no verdict
        "note": "; ".join(x for x in (limit, test.note) if x),
    }


def _components(results: ExperimentResults, claim: dict, clusters) -> tuple[list[int], np.ndarray, dict]:
    """The seeds both sets share, each side's point there, and the difference's replicates with only
    the seeds resampled and with only the items (or item clusters) resampled."""
    comp, capability = claim["compression"], claim["capability"]
    seeds = sorted(set(results.seeds(claim["better"], comp)) & set(results.seeds(claim["worse"], comp)))
    if not seeds:
        return seeds, np.full(2, np.nan), {}
    sides = [claim["better"], claim["worse"]]  # NaN retention (dense accuracy 0) stays NaN, not dropped
    reps = {}
    for part in ("seeds", "items"):
        point, r = endpoint_bootstrap(results, sides, comp, capability, seeds, BOOTSTRAP_ROUNDS, clusters, part)
        reps[part] = r[:, 0] - r[:, 1]
    return seeds, point, reps


def judge_claim(
    results: ExperimentResults | Sequence[ExperimentResults],
    claim: dict,
    clusters: Mapping[str, Sequence[str]] | None = None,
) -> dict:
    """One claim ``{"better": A, "worse": B, "capability", "compression"}`` on the seeds both sets
    share: the difference A − B of mean retention, its standard error (``se``), 95% interval
    (``boot_low``/``boot_high``) and p by :func:`~cola_core.evaluation.significance.components_t`, and
    whether the claim is untestable. Verdicts need the claim's family (:func:`judge_claims`).

    The variance has two components, each from its own bootstrap and corrected for the units it
    resamples: seed to seed (seeds − 1 degrees of freedom) and item to item (item clusters − 1; for
    the mean, the fewest of any capability). Given several models' results (the same config on model
    variants), the components are model to model — the spread of the models' own differences, which
    carries each model's seed noise with it, over the models (models − 1) — and the items every model
    shares, drawn alike for all of them; the interval and p then speak for the population of models
    the variants stand for (Satterthwaite's degrees of freedom, at most models − 1 plus the items')."""
    many = [results] if isinstance(results, ExperimentResults) else list(results)
    parts = [_components(r, claim, clusters) for r in many]
    seeds = min(len(s) for s, _, _ in parts)
    out = {**claim, "family": family_of(claim), "seeds": seeds, "models": len(many)}
    if not seeds:
        nan = math.nan
        blank = dict.fromkeys(("difference", "se", "boot_low", "boot_high", "p", "ci_low", "ci_high", "sd"), nan)
        return {**out, **blank, "test": None, "untestable": True, "note": "the two sets share no seed"}
    capability = claim["capability"]
    units = item_units(many[0], capability, clusters)
    point = np.mean([p for _, p, _ in parts], axis=0)
    items = np.mean([r["items"] for _, _, r in parts], axis=0)  # the items all models share, drawn alike
    if len(many) == 1:
        between = component_variance(parts[0][2]["seeds"], seeds)
    else:
        d = np.array([p[0] - p[1] for _, p, _ in parts])
        between = (float(d.var(ddof=1)) / len(d), float(len(d) - 1))
    test = components_t(float(point[0] - point[1]), [between, component_variance(items, units)])
    sides, comp = [claim["better"], claim["worse"]], claim["compression"]
    if len(many) == 1:  # the seeds-only t-interval, for the dashboard's seed-paired view
        per_seed = per_seed_retention(many[0], sides, comp, capability, parts[0][0])
        t = paired_t((per_seed[claim["better"]] - per_seed[claim["worse"]]).to_numpy())
        described = {"ci_low": t.ci_low, "ci_high": t.ci_high, "sd": t.sd}
    else:
        described = dict.fromkeys(("ci_low", "ci_high", "sd"), math.nan)
    floors = [FLOOR if capability == MEAN else floor_of(capability, r.dense[capability]) for r in many]
    return {**out, **described, "test": test, **_judged(test, point, float(np.mean(floors)))}


def _pooled(arm: list[Score]) -> Score:
    """One score whose items are the seeds' items averaged (the set's mean over seeds, item by item)."""
    items = np.mean([np.asarray(s.items, dtype=np.float64) for s in arm], axis=0)
    return Score(arm[0].capability, arm[0].metric, math.nan, math.nan, math.nan, len(items), items.tolist())


def judge_on_items(
    results: ExperimentResults, claim: dict, clusters: Mapping[str, Sequence[str]] | None = None
) -> dict:
    """A claim asked of these calibration sets on items like the held-out ones, for this model
    (``"claims_over": "items"``; Compare's A/B): each set's seeds averaged item by item (the seeds are
    clusters of one set's observations), the difference of retention, and its variance from a
    bootstrap over the items — whole item clusters where ``clusters`` has them — corrected by units /
    (units − 1), on Student's t with units − 1 degrees of freedom (:func:`components_t`, so p and
    the interval agree). The calibration draws are held fixed: whether another draw of the sets would
    do the same is :func:`judge_claim`'s question."""
    better, worse, comp, capability = claim["better"], claim["worse"], claim["compression"], claim["capability"]
    dense = results.dense[capability]
    arms = [_pooled(results.arm(g, comp, capability, results.seeds(g, comp))) for g in (better, worse)]
    a, b = (np.asarray(s.items, dtype=np.float64) for s in arms)
    if not np.allclose(a[:, 1], b[:, 1]):
        raise ColaError(f"{better} and {worse} scored {capability} on different items")
    labels = clusters.get(capability) if clusters else None
    point, reps = bootstrap_seeds_and_items(dense, [[arms[0]], [arms[1]]], BOOTSTRAP_ROUNDS, clusters=labels)
    units = len(set(labels)) if labels is not None else len(a)
    test = components_t(float(point[0] - point[1]), [component_variance(reps[:, 0] - reps[:, 1], units)])
    seeds = max(len(results.seeds(g, comp)) for g in (better, worse))
    judged = _judged(test, point, floor_of(capability, dense))
    return {**claim, "family": family_of(claim), **judged, "pairs": units, "seeds": seeds}


def judge_claims(
    results: ExperimentResults | Sequence[ExperimentResults],
    claims: Sequence[dict],
    alpha: float = ALPHA,
    clusters: Mapping[str, Sequence[str]] | None = None,
    over: str = "seeds",
) -> pd.DataFrame:
    """Every claim judged with its family: Holm-adjusted p within the family (an untestable claim
    counts in it with p = 1 and gets no verdict), the verdict from it, and the smallest difference
    detectable with 80% power at Holm's most lenient threshold α (``mde_lenient``) and its strictest
    α/m (``mde_strict``), both from the claim's own standard error. Rows keep the claims' order; ``family`` names each claim's family.
    ``results``: one experiment's, or several models' (pooled: :func:`judge_claim`). ``over="items"``:
    each claim asked of these items instead (:func:`judge_on_items`; no power statement)."""
    if over == "items":
        judged = [{**judge_on_items(results, c, clusters), "test": None} for c in claims]
    else:
        judged = [judge_claim(results, c, clusters) for c in claims]
    if not judged:
        return pd.DataFrame(columns=["family", "difference", "p", "p_holm", "verdict", "mde_lenient", "mde_strict"])
    frame = pd.DataFrame(judged)
    frame["p_holm"] = math.nan
    frame["m"] = 0
    for _, rows in frame.groupby("family", sort=False):
        # an untestable claim keeps its place in the family with p = 1: whether a claim is testable is
        # read from the data (floor, ceiling), so dropping it would let the data shrink the family
        held = [1.0 if u else p for p, u in zip(rows["p"], rows["untestable"], strict=True)]
        adjusted = holm(held)
        frame.loc[rows.index, "p_holm"] = [
            math.nan if u else a for a, u in zip(adjusted, rows["untestable"], strict=True)
        ]
        frame.loc[rows.index, "m"] = len(rows)
    frame["verdict"] = [
        "untestable" if u else verdict(d, p, alpha)
        for d, p, u in zip(frame["difference"], frame["p_holm"], frame["untestable"], strict=True)
    ]
    frame["mde_lenient"] = [t.detectable(alpha, POWER) if t else math.nan for t in frame["test"]]
    frame["mde_strict"] = [
        t.detectable(alpha / max(m, 1), POWER) if t else math.nan
        for t, m in zip(frame["test"], frame["m"], strict=True)
    ]
    return frame.drop(columns=["test"])
