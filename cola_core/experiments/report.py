"""An experiment's report (``python -m cola_core experiment``), from the runs of the current config
only (results.py): the dense model's scores; mean retention over seeds with a hierarchical bootstrap
interval over seeds and items; each claim judged by the one rule of :mod:`cola_core.experiments.claims`
(seeds × item-cluster bootstrap, Holm within each family, power from the same resampling) with a sign
table per compared pair; the proxy's rank correlation with measured retention, with a permutation
p-value and a bootstrap interval. The statistics live in :mod:`cola_core.evaluation.significance` and
:func:`cola_core.evaluation.retention.bootstrap_seeds_and_items`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from cola_core.evaluation.retention import bootstrap_seeds_and_items
from cola_core.evaluation.significance import (
    ALPHA,
    BOOTSTRAP_MIN_POINTS,
    POWER,
    holm,
    paired_t,
    spearman_bootstrap_ci,
    spearman_permutation,
)
from cola_core.evaluation.suite import CAPABILITIES
from cola_core.experiments.claims import (
    BOOTSTRAP_ROUNDS,
    CEILING,
    FLOOR,
    PRIMARY,
    SECONDARY,
    judge_claims,
    percentile_interval,
    with_secondaries,
)
from cola_core.experiments.config import ExperimentConfig
from cola_core.experiments.endpoints import sign_table
from cola_core.experiments.results import ExperimentResults

_MODES = {
    "pack": "packed into n full windows of seqlen tokens; real tokens per set below",
    "truncate": "records truncated",
}


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


def judged_claims(cfg: ExperimentConfig, results: ExperimentResults | Sequence[ExperimentResults]) -> pd.DataFrame:
    """The config's claims and, for each claim on the mean, its per-capability secondaries, judged
    (on several models' results: pooled over the models, :func:`~cola_core.experiments.claims.judge_claim`)."""
    claims = with_secondaries(cfg.claims, [c for c in CAPABILITIES if c in cfg.capabilities])
    return judge_claims(results, claims, clusters=cfg.item_clusters(), over=cfg.claims_over)


def _claims_section(
    claims: pd.DataFrame, seeds: int, clustered: bool, models: int = 1, over: str = "seeds"
) -> list[str]:
    units = "item clusters" if clustered else "items"
    top = (
        f"a model-to-model part (the spread of the {models} models' own differences, each over the seeds both sets "
        f"share) and an item-to-item part (the evaluated {units}, drawn alike for every model)"
        if models > 1
        else f"a seed-to-seed part (the seeds both sets share) and an item-to-item part (the evaluated {units})"
    )
    over_ = f"{models} models × {seeds} seeds" if models > 1 else f"{seeds} seeds"
    rule = (
        f"Retention difference (better − worse) over {over_}, judged by one rule: its variance is the sum of "
        f"{top}, each from a bootstrap that resamples that level alone (the same draws for both sets) and is "
        "corrected by units ÷ (units − 1); the difference over its standard error on Student's t with "
        "Welch–Satterthwaite degrees of freedom gives the 95% interval and the two-sided p"
    )
    if over == "items":
        rule = (
            f"Retention difference (better − worse) on these held-out items, each set's {seeds} seeds averaged item "
            "by item; the difference's variance from a bootstrap over the items (the same draws for both sets), on "
            "Student's t, gives the 95% interval and p. This asks whether these calibration sets differ on items "
            "like these for this model, not whether another draw of the calibration data would (that is the "
            "experiments' seeds-resampled rule)"
        )
    lines = [
        "## Claims",
        "",
        f"{rule}; p (Holm) is adjusted within the claim's family "
        f"(family-wise α = {ALPHA}). **supported** / **contradicted**: Holm-significant in / against the claimed "
        f"direction; **inconclusive**: otherwise; **untestable**: both sets at the floor (≤ {FLOOR}, or chance "
        f"level over the dense accuracy for facts) or the ceiling (≥ {CEILING}) of retention, kept in the "
        f"family with p = 1 (whether a claim can be tested is read from the data). Detectable: the smallest true difference found with {POWER:.0%} power from the same standard "
        "error, at Holm's most lenient threshold (α) – its strictest (α/m). Each primary claim on the mean "
        "retention is followed by its per-capability secondaries (a family of their own).",
    ]
    header = [
        "| claim | capability | compression | difference | 95% interval | p | p (Holm) | verdict "
        "| detectable (80% power) | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    secondary = claims["family"].str.startswith(SECONDARY)
    for family, rows in claims[~secondary].groupby("family", sort=False):
        m = int(rows["m"].iloc[0])
        kind = "Primary family" if family == PRIMARY else f"Family *{family}*"
        lines += ["", f"**{kind}** (Holm over its {m} claim{'s' if m != 1 else ''})", "", *header]
        for r in rows.itertuples():
            lines.append(
                f"| {r.title} ({r.better} vs {r.worse}) | {r.capability} | {r.compression} | {_num(r.difference)} | "
                f"{_interval(r.boot_low, r.boot_high)} | {_p(r.p)} | {_p(r.p_holm)} | **{r.verdict}** | "
                f"{_range(r.mde_lenient, r.mde_strict)} | {r.note} |"
            )
    if secondary.any():
        lines += ["", *_secondary_table(claims[secondary])]
    finite = claims["mde_lenient"][claims["mde_lenient"].map(math.isfinite)]
    if not finite.empty:
        lines += [
            "",
            f"Power: with {over_} this experiment could detect, with {POWER:.0%} power, retention differences "
            f"of {_range(finite.min(), finite.max())} (median {finite.median():.3f}) at the most lenient "
            "threshold, and only larger ones at the stricter Holm steps; smaller true effects, such as the "
            "1–2 points the COLA paper reports on 7–8B models, may go undetected. The standard errors are "
            "estimated from the same seeds, so these numbers are estimates too.",
        ]
    return lines


def _secondary_table(rows: pd.DataFrame) -> list[str]:
    """Each primary's per-capability differences on one line: difference, interval and verdict per
    capability, Holm-adjusted within the line (its own family)."""
    caps = list(dict.fromkeys(rows["capability"]))
    out = [
        "**Secondary families**: each primary claim's per-capability differences, Holm-adjusted within the "
        "row (its own family).",
        "",
        f"| comparison | compression | {' | '.join(caps)} |",
        "|---|---|" + "---|" * len(caps),
    ]
    for (better, worse, comp), g in rows.groupby(["better", "worse", "compression"], sort=False):
        by_cap = g.set_index("capability")
        cells = [
            f"{_num(r.difference)} {_interval(r.boot_low, r.boot_high)} **{r.verdict}**"
            + (f" ({r.note.split(';')[0].split(':')[0]})" if r.verdict == "untestable" else "")
            for r in (by_cap.loc[c] for c in caps)
        ]
        out.append(f"| {better} vs {worse} | {comp} | {' | '.join(cells)} |")
    return out


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


def markdown_report(
    cfg: ExperimentConfig, results: ExperimentResults, command: str, claims: pd.DataFrame | None = None
) -> str:
    """The report the docs carry: dense scores, claims, retention tables, the proxy's correlation.
    ``claims``: :func:`judged_claims` already computed (the CLI prints them too), else judged here."""
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
        claims = judged_claims(cfg, results) if claims is None else claims
        lines += [*_claims_section(claims, len(cfg.seeds), cfg.cluster_items, over=cfg.claims_over), ""]
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


def models_report(
    cfg: ExperimentConfig,
    results: Sequence[ExperimentResults],
    command: str,
    pooled: pd.DataFrame | None = None,
    per_model: Sequence[pd.DataFrame] | None = None,
) -> str:
    """A config run on model variants (``models``): the claims pooled over the models (model-to-model
    spread plus the shared items, :func:`~cola_core.experiments.claims.judge_claim`), then each model's
    own report.
    ``pooled`` / ``per_model``: the claims already judged (the CLI prints them too), else judged here."""
    parts = cfg.per_model()
    seeds = len(cfg.seeds)
    seconds = sum(r.seconds for r in results)
    lines = [
        f"# Experiment `{cfg.name}` on {len(parts)} models",
        "",
        cfg.description,
        "",
        f"Produced by `{command}`; models {', '.join(cfg.models)} (each run as the experiment `{cfg.name}@model`); "
        f"{sum(len(r.scores) for r in results)} compressed runs and one dense run per model. Compute: "
        f"{seconds / 60:.1f} min, the sum of the stored runs' own times.",
        "",
    ]
    if cfg.claims:
        pooled = judged_claims(cfg, results) if pooled is None else pooled
        section = _claims_section(pooled, seeds, cfg.cluster_items, models=len(parts))
        lines += ["## Claims pooled over the models", *section[1:], ""]
    mine = per_model or [None] * len(parts)
    for part, result, claims in zip(parts, results, mine, strict=True):
        own = markdown_report(part, result, command, claims).split("\n")[1:]  # its title becomes a section
        lines += [f"## Model {part.model}", *("#" + x if x.startswith("#") else x for x in own), ""]
    return "\n".join(lines)


def to_markdown(frame: pd.DataFrame, index: bool = True) -> str:
    """A GitHub table without the optional `tabulate` dependency."""
    frame = frame.reset_index() if index else frame
    cols = [str(c) for c in frame.columns]
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols), *rows])
