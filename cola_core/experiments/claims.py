"""An experiment's claims, judged by one rule (issue #29).

A claim says set A keeps more retention than set B on an endpoint (a score, or :data:`MEAN`, the
mean over the capabilities) under one compression setting. Every claim is judged the same way:

1. the bootstrap of :func:`~cola_core.experiments.endpoints.endpoint_bootstrap` resamples the seeds
   both sets share and, within them, the evaluated items — whole item clusters where the config asks
   (``cluster_items``: facts by town, prose and code by source module, math by template) — with the
   same draws for both sets, so each replicate is one paired difference;
2. :func:`~cola_core.evaluation.significance.bootstrap_t` turns the replicates into the standard error,
   the 95% interval, the two-sided p-value (Student's t on seeds − 1 degrees of freedom) and the
   smallest difference detectable with 80% power;
3. Holm's adjustment runs within each claim's **family** (``"family"`` in the config, default
   ``"primary"``): a pre-registered primary family, and for every primary claim on the mean its
   per-capability differences as a secondary family of their own (:func:`with_secondaries`);
4. the verdict is that adjusted p and the sign: **supported** / **contradicted** at family-wise
   α = 0.05, **inconclusive** otherwise, **untestable** where both sets sit at the floor (chance level
   for multiple choice) or the ceiling, or nothing varies — left out of the family.

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
from cola_core.evaluation.significance import ALPHA, POWER, bootstrap_t, holm, paired_t, verdict
from cola_core.evaluation.suite import CHANCE, Score
from cola_core.experiments.endpoints import MEAN, endpoint_bootstrap, per_seed_retention
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


def _endpoint(results: ExperimentResults, claim: dict, clusters) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The seeds both sets share, and each side's point and paired bootstrap replicates there."""
    comp = claim["compression"]
    seeds = sorted(set(results.seeds(claim["better"], comp)) & set(results.seeds(claim["worse"], comp)))
    if not seeds:
        return seeds, np.full(2, np.nan), np.full((1, 2), np.nan)
    sides = [claim["better"], claim["worse"]]  # NaN retention (dense accuracy 0) stays NaN, not dropped
    point, reps = endpoint_bootstrap(results, sides, comp, claim["capability"], seeds, BOOTSTRAP_ROUNDS, clusters)
    return seeds, point, reps


def judge_claim(
    results: ExperimentResults | Sequence[ExperimentResults],
    claim: dict,
    clusters: Mapping[str, Sequence[str]] | None = None,
) -> dict:
    """One claim ``{"better": A, "worse": B, "capability", "compression"}`` on the seeds both sets
    share: the difference A − B of mean retention, its bootstrap standard error (``se``), interval
    (``boot_low``/``boot_high``) and p (:func:`~cola_core.evaluation.significance.bootstrap_t`), and
    whether the claim is untestable. Verdicts need the claim's family (:func:`judge_claims`).

    Given several models' results (the same config run on model variants), the models are the top
    level of the bootstrap: each round draws the models with replacement and averages their own
    round's replicates (seeds and items resampled within each model), so the interval and p speak
    for the population of models the variants stand for, on models − 1 degrees of freedom."""
    many = [results] if isinstance(results, ExperimentResults) else list(results)
    ends = [_endpoint(r, claim, clusters) for r in many]
    seeds = min(len(s) for s, _, _ in ends)
    out = {**claim, "family": family_of(claim), "seeds": seeds, "models": len(many)}
    if not seeds:
        nan = math.nan
        blank = dict.fromkeys(("difference", "se", "boot_low", "boot_high", "p", "ci_low", "ci_high", "sd"), nan)
        return {**out, **blank, "test": None, "untestable": True, "note": "the two sets share no seed"}
    if len(many) == 1:
        _, point, reps = ends[0]
        units = seeds
    else:
        rng = np.random.default_rng(0)
        per_model = np.stack([r for _, _, r in ends])  # models × rounds × sides
        draws = rng.integers(0, len(many), size=(per_model.shape[1], len(many)))
        reps = per_model[draws, np.arange(per_model.shape[1])[:, None]].mean(axis=1)
        point, units = np.mean([p for _, p, _ in ends], axis=0), len(many)
    test = bootstrap_t(float(point[0] - point[1]), reps[:, 0] - reps[:, 1], units)
    sides, comp, capability = [claim["better"], claim["worse"]], claim["compression"], claim["capability"]
    if len(many) == 1:  # the seeds-only t-interval, for the dashboard's seed-paired view
        per_seed = per_seed_retention(many[0], sides, comp, capability, ends[0][0])
        t = paired_t((per_seed[claim["better"]] - per_seed[claim["worse"]]).to_numpy())
        described = {"ci_low": t.ci_low, "ci_high": t.ci_high, "sd": t.sd}
    else:
        described = dict.fromkeys(("ci_low", "ci_high", "sd"), math.nan)
    floors = [FLOOR if capability == MEAN else floor_of(capability, r.dense[capability]) for r in many]
    limit = separation_limit(list(point), float(np.mean(floors)))
    if not np.isfinite(point).all():
        limit = "retention undefined: the dense model scores 0 on these items"
    note = "; ".join(x for x in (limit, test.note) if x)
    return {
        **out,
        "difference": test.difference,
        "se": test.se,
        "boot_low": test.ci_low,
        "boot_high": test.ci_high,
        "p": test.p,
        **described,
        "test": test,
        "untestable": bool(limit) or not math.isfinite(test.p),  # nothing to test: no verdict, out of Holm
        "note": note,
    }


def _pooled(arm: list[Score]) -> Score:
    """One score whose items are the seeds' items averaged (the set's mean over seeds, item by item)."""
    items = np.mean([np.asarray(s.items, dtype=np.float64) for s in arm], axis=0)
    return Score(arm[0].capability, arm[0].metric, math.nan, math.nan, math.nan, len(items), items.tolist())


def judge_on_items(results: ExperimentResults, claim: dict) -> dict:
    """A claim asked of these held-out items, for this model (``"claims_over": "items"``; Compare's
    A/B): each set's seeds averaged item by item (the seeds are clusters of one set's observations),
    the difference of retention with a bootstrap interval over the items (the same draws for both
    sets), and p from a paired t-test on the per-item differences of the summed quantity (correct
    answers, or negative log-likelihood with its sign flipped). It says nothing about another draw of
    the calibration sets: that is :func:`judge_claim`'s question."""
    better, worse, comp, capability = claim["better"], claim["worse"], claim["compression"], claim["capability"]
    dense = results.dense[capability]
    arms = [_pooled(results.arm(g, comp, capability, results.seeds(g, comp))) for g in (better, worse)]
    a, b = (np.asarray(s.items, dtype=np.float64) for s in arms)
    if not np.allclose(a[:, 1], b[:, 1]):
        raise ColaError(f"{better} and {worse} scored {capability} on different items")
    point, reps = bootstrap_seeds_and_items(dense, [[arms[0]], [arms[1]]], BOOTSTRAP_ROUNDS)
    lo, hi = percentile_interval(reps[:, 0] - reps[:, 1])
    t = paired_t((-1.0 if dense.metric == "perplexity" else 1.0) * (a[:, 0] - b[:, 0]))
    limit = separation_limit(list(point), floor_of(capability, dense))
    if not np.isfinite(point).all():
        limit = "retention undefined: the dense model scores 0 on these items"
    seeds = max(len(results.seeds(g, comp)) for g in (better, worse))
    return {
        **claim,
        "family": family_of(claim),
        "difference": float(point[0] - point[1]),
        "boot_low": float(lo),
        "boot_high": float(hi),
        "p": t.p,
        "pairs": t.n,
        "seeds": seeds,
        "untestable": bool(limit) or not math.isfinite(t.p),
        "note": "; ".join(x for x in (limit, t.note.replace("seed", "item")) if x),
    }


def judge_claims(
    results: ExperimentResults | Sequence[ExperimentResults],
    claims: Sequence[dict],
    alpha: float = ALPHA,
    clusters: Mapping[str, Sequence[str]] | None = None,
    over: str = "seeds",
) -> pd.DataFrame:
    """Every claim judged with its family: Holm-adjusted p within the family's testable claims, the
    verdict from it, and the smallest difference detectable with 80% power at Holm's most lenient
    threshold α (``mde_lenient``) and its strictest α/m (``mde_strict``), both from the same
    bootstrap standard error. Rows keep the claims' order; ``family`` names each claim's family.
    ``results``: one experiment's, or several models' (pooled: :func:`judge_claim`). ``over="items"``:
    each claim asked of these items instead (:func:`judge_on_items`; no power statement)."""
    if over == "items":
        judged = [{**judge_on_items(results, c), "test": None} for c in claims]
    else:
        judged = [judge_claim(results, c, clusters) for c in claims]
    if not judged:
        return pd.DataFrame(columns=["family", "difference", "p", "p_holm", "verdict", "mde_lenient", "mde_strict"])
    frame = pd.DataFrame(judged)
    frame["p_holm"] = math.nan
    frame["m"] = 0
    for _, rows in frame.groupby("family", sort=False):
        tested = rows.index[~rows["untestable"]]
        frame.loc[tested, "p_holm"] = holm(frame.loc[tested, "p"].tolist())
        frame.loc[rows.index, "m"] = len(tested)
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
