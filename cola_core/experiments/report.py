"""An experiment's report (``python -m cola_core experiment``), from the runs of the current config
only (results.py): the dense model's scores; mean retention over seeds with a hierarchical bootstrap
interval over seeds and items; each claim judged on seed-paired differences with Holm's correction
across the experiment's claims and a power statement; the proxy's rank correlation with measured
retention, with a permutation p-value and a bootstrap interval. The statistics live in
:mod:`cola_core.evaluation.significance` and :func:`cola_core.evaluation.retention.bootstrap_seeds_and_items`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cola_core.evaluation.retention import bootstrap_seeds_and_items
from cola_core.evaluation.significance import (
    ALPHA,
    BOOTSTRAP_MIN_POINTS,
    POWER,
    PairedTest,
    bootstrap_p,
    holm,
    min_detectable_effect,
    paired_t,
    spearman_bootstrap_ci,
    spearman_permutation,
    verdict,
)
from cola_core.evaluation.suite import CAPABILITIES, CHANCE, Score
from cola_core.experiments.config import ExperimentConfig
from cola_core.experiments.endpoints import MEAN, endpoint_bootstrap, per_seed_retention, sign_table
from cola_core.experiments.results import ExperimentResults

BOOTSTRAP_ROUNDS = 2000
_MODES = {
    "pack": "packed into n full windows of seqlen tokens; real tokens per set below",
    "truncate": "records truncated",
}
FLOOR, CEILING = 0.05, 0.99  # mean retention at or beyond which a comparison cannot separate sets


def percentile_interval(x: np.ndarray) -> tuple[float, float]:
    """95% percentile interval of the defined replicates (retention.py: NaN where the dense score is 0)."""
    finite = x[np.isfinite(x)]
    if len(finite) == 0:
        return math.nan, math.nan
    lo, hi = np.percentile(finite, [2.5, 97.5])
    return float(lo), float(hi)


def dense_baselines(results: ExperimentResults) -> pd.DataFrame:
    """The dense model's score per capability, with its 95% interval and n."""
    rows = [
        {"capability": k, "metric": s.metric, "score": s.score, "ci_low": s.ci_low, "ci_high": s.ci_high, "n": s.n}
        for k, s in results.dense.items()
    ]
    return pd.DataFrame(rows, columns=["capability", "metric", "score", "ci_low", "ci_high", "n"])


def summarise(results: ExperimentResults) -> pd.DataFrame:
    """Per compression × capability × calibration set: mean retention over seeds, its 95% interval
    from the hierarchical bootstrap (seeds, then items; ``ci_low``/``ci_high``) and the seeds-only
    t-interval (``t_low``/``t_high``, which ignores item sampling), and the mean coverage."""
    rows = []
    table = results.table
    for (comp, capability, calibration), g in table.groupby(["compression", "capability", "calibration"]):
        seeds = sorted(g["seed"])
        arm = results.arm(calibration, comp, capability, seeds)
        point, reps = bootstrap_seeds_and_items(results.dense[capability], [arm], BOOTSTRAP_ROUNDS)
        t = paired_t(g["retention"].to_numpy())
        lo, hi = percentile_interval(reps[:, 0])
        rows.append(
            {
                "compression": comp,
                "capability": capability,
                "calibration": calibration,
                "mean": float(point[0]),
                "ci_low": lo,
                "ci_high": hi,
                "t_low": t.ci_low,
                "t_high": t.ci_high,
                "seeds": len(seeds),
                "coverage": float(g["coverage"].mean()),
            }
        )
    return pd.DataFrame(rows)


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


def judge_claim(results: ExperimentResults, claim: dict, clusters: Mapping[str, Sequence[str]] | None = None) -> dict:
    """One claim ``{"better": set A, "worse": set B, "capability", "compression"}`` (``capability``:
    a score, or ``"mean"``, the mean retention over the capabilities: endpoints.py) on the seeds
    both sets share: the mean paired difference of retention (A − B) with its t-interval and
    two-sided paired t-test p-value, a hierarchical bootstrap interval (seeds, then items) and the
    seed-to-seed SD of the difference. Verdicts need every claim (:func:`judge_claims`)."""
    comp, capability = claim["compression"], claim["capability"]
    seeds = sorted(set(results.seeds(claim["better"], comp)) & set(results.seeds(claim["worse"], comp)))
    out = {**claim, "seeds": len(seeds)}
    if not seeds:
        t = paired_t([])
        return {
            **out,
            **_test_fields(t),
            "boot_low": math.nan,
            "boot_high": math.nan,
            "untestable": True,
            "note": t.note,
        }
    sides = [claim["better"], claim["worse"]]  # NaN retention (dense accuracy 0) stays NaN, not dropped
    point, reps = endpoint_bootstrap(results, sides, comp, capability, seeds, BOOTSTRAP_ROUNDS, clusters)
    per_seed = per_seed_retention(results, sides, comp, capability, seeds)
    t = paired_t((per_seed[claim["better"]] - per_seed[claim["worse"]]).to_numpy())
    diff = reps[:, 0] - reps[:, 1]
    lo, hi = percentile_interval(diff)
    floor = FLOOR if capability == MEAN else floor_of(capability, results.dense[capability])
    limit = separation_limit(list(point), floor)
    fields = _test_fields(t)
    note = t.note
    if t.sd == 0 and t.mean != 0:  # no seed-to-seed variation (few seeds, coarse scores): a t-test has
        fields["p"] = bootstrap_p(diff)  # nothing to divide by, so p comes from the seeds × items bootstrap
        note = f"{note}; p from the seeds × items bootstrap"
    if not np.isfinite(point).all():
        limit = "retention undefined: the dense model scores 0 on these items"
    note = "; ".join(x for x in (note, limit) if x)
    untestable = bool(limit) or not math.isfinite(fields["p"])  # nothing to test: no verdict, out of Holm
    return {**out, **fields, "boot_low": lo, "boot_high": hi, "untestable": untestable, "note": note}


def _test_fields(t: PairedTest) -> dict:
    return {"difference": t.mean, "ci_low": t.ci_low, "ci_high": t.ci_high, "sd": t.sd, "p": t.p}


def judge_claims(
    results: ExperimentResults,
    claims: Sequence[dict],
    alpha: float = ALPHA,
    clusters: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Every claim judged together: raw p, Holm-adjusted p across the testable claims (family-wise
    α), the verdict (supported / contradicted / inconclusive, or **untestable** when both sets sit at
    the floor or the ceiling, or share no seed — such a claim is left out of Holm's family) and the
    minimum detectable difference at 80% power — at Holm's most lenient threshold α (the last step)
    and at its strictest, α/m (the first step) — from the measured seed-to-seed SD and the seeds."""
    judged = [judge_claim(results, c, clusters) for c in claims]
    tested = [j for j in judged if not j["untestable"]]
    adjusted = iter(holm([j["p"] for j in tested]))
    m = sum(math.isfinite(j["p"]) for j in tested)
    rows = []
    for j in judged:
        p_holm = math.nan if j["untestable"] else next(adjusted)
        rows.append(
            {
                **j,
                "p_holm": p_holm,
                "verdict": "untestable"
                if j["untestable"]
                else verdict(j["difference"], p_holm, alpha, (j["boot_low"], j["boot_high"])),
                "mde_lenient": min_detectable_effect(j["sd"], j["seeds"], alpha, POWER),
                "mde_strict": min_detectable_effect(j["sd"], j["seeds"], alpha / max(m, 1), POWER),
            }
        )
    return pd.DataFrame(rows)


def proxy_correlation(results: ExperimentResults, seed: int = 0) -> pd.DataFrame:
    """Per compression × capability: Spearman's ρ across calibration sets between mean capability
    coverage (the curation proxy) and mean measured retention, with a permutation p-value (exact for
    ≤ 8 sets, else Monte Carlo), a bootstrap interval over sets, and p Holm-adjusted over the table.
    Only the capabilities themselves: their sub-scores (math tiers, next-token accuracy) share the
    capability's coverage, so they would add tests to the family without adding information."""
    rows = []
    for (comp, capability), g in results.table.groupby(["compression", "capability"]):
        if capability not in CAPABILITIES:
            continue
        means = g.groupby("calibration")[["coverage", "retention"]].mean().dropna()
        if len(means) < 3:
            continue
        rho, p, how = spearman_permutation(means["coverage"], means["retention"], seed=seed)
        lo, hi = spearman_bootstrap_ci(means["coverage"], means["retention"], seed=seed)
        rows.append(
            {
                "compression": comp,
                "capability": capability,
                "spearman": rho,
                "ci_low": lo,
                "ci_high": hi,
                "p": p,
                "sets": len(means),
                "p_method": how,
            }
        )
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame.insert(6, "p_holm", holm(frame["p"].tolist()))
    return frame


def _proxy_power(corr: pd.DataFrame) -> str:
    """What the table can show: with k sets the smallest exact permutation p is 2/k!, and Holm over m
    rows multiplies the smallest by m."""
    k, m = int(corr["sets"].max()), len(corr)
    if k > 8:
        return ""
    floor = min(1.0, m * 2 / math.factorial(k))
    verdict_ = (
        "so no row can be significant: the table describes"
        if floor > ALPHA
        else "so only near-perfect rankings can be significant"
    )
    return f"With {k} sets the smallest possible p is 2/{k}! and the smallest Holm-adjusted p over {m} rows is {floor:.3f}, {verdict_}."


def _num(x: float, spec: str = "+.3f") -> str:
    return "n/a" if x is None or not math.isfinite(x) else format(x, spec)


def _p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _interval(lo: float, hi: float, spec: str = "+.3f") -> str:
    return "n/a" if not (math.isfinite(lo) and math.isfinite(hi)) else f"[{_num(lo, spec)}, {_num(hi, spec)}]"


def _range(lo: float, hi: float) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "n/a"
    return f"{lo:.3f}" if f"{lo:.3f}" == f"{hi:.3f}" else f"{lo:.3f} – {hi:.3f}"


def _claims_section(claims: pd.DataFrame, seeds: int) -> list[str]:
    m = int((claims["p"].map(math.isfinite) & ~claims["untestable"]).sum())
    lines = [
        "## Claims",
        "",
        f"Retention difference (better − worse), paired by seed over {seeds} seeds. p: two-sided paired t-test; "
        f"p (Holm): adjusted over the {m} tested claim(s) (family-wise α = {ALPHA}). **supported** / **contradicted**: "
        f"Holm-significant in / against the claimed direction, with the seeds × items bootstrap interval on the same "
        f"side of 0 (the t-test holds the items fixed; the bootstrap does not); **inconclusive**: otherwise; "
        f"**untestable**: both "
        f"sets at the floor (≤ {FLOOR}, or chance level over the dense accuracy for facts) or the ceiling "
        f"(≥ {CEILING}) of retention, left out of the family. "
        f"Detectable: the smallest true difference found with {POWER:.0%} power given the measured seed-to-seed SD, "
        f"at Holm's most lenient threshold (α) – its strictest (α/{max(m, 1)}).",
        "",
        "| claim | capability | compression | difference | 95% t-interval (seeds) | 95% bootstrap (seeds × items) "
        "| p | p (Holm) | verdict | detectable (80% power) | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in claims.itertuples():
        lines.append(
            f"| {r.title} ({r.better} vs {r.worse}) | {r.capability} | {r.compression} | {_num(r.difference)} | "
            f"{_interval(r.ci_low, r.ci_high)} | {_interval(r.boot_low, r.boot_high)} | {_p(r.p)} | {_p(r.p_holm)} | "
            f"**{r.verdict}** | {_range(r.mde_lenient, r.mde_strict)} | {r.note} |"
        )
    finite = claims["mde_lenient"][claims["mde_lenient"].map(math.isfinite)]
    if not finite.empty:
        lines += [
            "",
            f"Power: with {seeds} seeds this experiment could detect, with {POWER:.0%} power, retention differences "
            f"of {_range(finite.min(), finite.max())} (median {finite.median():.3f}) at the most lenient "
            "threshold, and only larger ones at the stricter Holm steps; smaller true effects, such as the "
            "1–2 points the COLA paper reports on 7–8B models, may go undetected. The SDs are estimated from "
            "the same seeds, so these numbers are estimates too.",
        ]
    return lines


def _sign_section(results: ExperimentResults, claims: Sequence[dict]) -> list[str]:
    """One sign table per compared pair: which capabilities a set gains or gives up, per setting."""
    lines = []
    for better, worse in dict.fromkeys((c["better"], c["worse"]) for c in claims):
        signs = sign_table(results, better, worse)
        if not signs.empty:
            lines += [f"**{better} − {worse}**", "", to_markdown(signs), ""]
    if not lines:
        return []
    intro = (
        "Sign of the mean retention difference over the seeds both sets share, per setting and "
        "capability (no test: a trade-off at a glance; the claims above carry the tests)."
    )
    return ["## Trade-offs", "", intro, "", *lines]


def markdown_report(cfg: ExperimentConfig, results: ExperimentResults, command: str) -> str:
    """The report the docs carry: dense scores, claims, retention tables, the proxy's correlation."""
    shared = cfg.shared
    lines = [
        f"# Experiment `{cfg.name}`",
        "",
        cfg.description,
        "",
        f"Produced by `{command}`; model {cfg.model}, n = {shared.n} × {shared.processing.seqlen} tokens "
        f"({_MODES[shared.processing.mode]}) from a pool of {shared.pool_size} drawn afresh from the whole pool split by each seed, seeds "
        f"{list(cfg.seeds)}, up to {cfg.limit} held-out items per capability (none of them in any pool or "
        f"probe set); {len(results.scores)} compressed runs and the dense run of this config (runs made under "
        "other settings are not read).",
        "",
        f"Compute: {results.seconds / 60:.1f} min, the sum of the stored runs' own times (curation, compression, "
        f"evaluation). Wall time: {results.span / 60:.1f} min from the first run's start to the last run's finish "
        "(the experiment resumes, so that may span several sittings and the pauses between them).",
        "",
    ]
    if results.missing:
        lines += [f"**Incomplete**: {len(results.missing)} planned runs have no finished result.", ""]
    dense = dense_baselines(results)
    if not dense.empty:
        dense.insert(
            3, "95% CI", [_interval(a, b, ".3f") for a, b in zip(dense["ci_low"], dense["ci_high"], strict=True)]
        )
        dense = dense.drop(columns=["ci_low", "ci_high"])
        lines += ["## Dense model", "", to_markdown(dense, index=False), ""]
    if not results.budgets.empty:
        budgets = results.budgets.rename(columns={"tokens": "real tokens"})
        lines += [
            "## Calibration sets (mean over seeds)",
            "",
            "Real (non-padding) tokens each set gives the compressor, and its samples per corpus.",
            "",
            to_markdown(budgets),
            "",
        ]
    if cfg.claims:
        claims = judge_claims(results, cfg.claims, clusters=cfg.item_clusters())
        lines += [*_claims_section(claims, len(cfg.seeds)), ""]
        lines += _sign_section(results, cfg.claims)
    summary = summarise(results)
    if not summary.empty:
        lines += [
            "## Retention (mean over seeds, 95% hierarchical bootstrap over seeds and items)",
            "",
            "Retention = compressed ÷ dense score (dense ÷ compressed for perplexity, so higher is better).",
            "",
        ]
        for comp, g in summary.groupby("compression"):
            cells = [f"{r.mean:.3f} {_interval(r.ci_low, r.ci_high, '.3f')}" for r in g.itertuples()]
            pivot = g.assign(cell=cells).pivot(index="calibration", columns="capability", values="cell")
            lines += [f"### {comp}", "", to_markdown(pivot), ""]
    corr = proxy_correlation(results)
    if not corr.empty:
        methods = "; ".join(sorted(set(corr["p_method"])))
        rows = [
            f"| {r.compression} | {r.capability} | {_num(r.spearman)} | {_interval(r.ci_low, r.ci_high)} | {_p(r.p)} "
            f"| {_p(r.p_holm)} | {r.sets} |"
            for r in corr.itertuples()
        ]
        lines += [
            "## Does the proxy predict retention?",
            "",
            "Spearman's ρ across calibration sets between capability coverage (computed at curation time on the "
            "probes' own scale, so sets from different pools compare) and measured retention, means over seeds; "
            f"permutation p ({methods}), Holm-adjusted over this table; "
            f"95% bootstrap interval over sets (n/a below {BOOTSTRAP_MIN_POINTS} sets). {_proxy_power(corr)}",
            "",
            "| compression | capability | ρ | 95% bootstrap | p | p (Holm) | sets |",
            "|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    return "\n".join(lines)


def to_markdown(frame: pd.DataFrame, index: bool = True) -> str:
    """A GitHub table without the optional `tabulate` dependency."""
    frame = frame.reset_index() if index else frame
    cols = [str(c) for c in frame.columns]
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols), *rows])
