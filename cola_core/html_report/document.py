"""A shareable report: one self-contained HTML file of an experiment (or of chosen runs) from the run
store — the model and settings, the verdicts on the claims, retention with intervals, the three COLA
stages' trail and the map of each calibration set, per-layer errors and answers where the models are
still on disk. Charts are inline SVG (svg_charts.py); nothing is fetched, so the file works offline.

The statistics are the experiment report's own (:mod:`cola_core.experiments.report`) and, for runs
picked by id, the A/B comparison of the Compare page (:mod:`cola_core.app.ab`); nothing here computes
an interval or a verdict of its own. What the store does not hold is said, never drawn."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path

import pandas as pd

from cola_core.app.compare import run_label
from cola_core.errors import ColaError
from cola_core.evaluation.runstore import RunStore
from cola_core.evaluation.suite import SHOWCASE_TOKENS
from cola_core.experiments.claims import PRIMARY, SECONDARY
from cola_core.experiments.config import ExperimentConfig, compression_label, list_builtin, load_config
from cola_core.experiments.plan import Plan, plan_runs
from cola_core.experiments.report import dense_baselines, judged_claims, proxy_correlation, summarise
from cola_core.experiments.results import ExperimentResults, load_results
from cola_core.html_report import parts as H
from cola_core.html_report.runs import runs_sections
from cola_core.html_report.trail import experiment_trails, model_on_disk
from cola_core.storage.atomic import atomic_write_text, check_output


def _experiment_config(store: RunStore, name: str) -> ExperimentConfig:
    """The config an experiment name stands for: a built-in name or a JSON file (as ``experiment``)."""
    try:
        return load_config(name)
    except ColaError as exc:
        runs = store.runs()
        known = sorted(set(runs["experiment"].dropna()))
        if name in known:
            raise ColaError(
                f"experiment '{name}' has runs in {store.path} but no built-in config of that name: "
                "give its JSON file (--experiment path/to/config.json)"
            ) from None
        if "not valid JSON" in str(exc):
            raise
        where = f"the store has {', '.join(known)}" if known else f"the store {store.path} holds no experiment"
        raise ColaError(f"unknown experiment '{name}': {where}; built-ins: {', '.join(list_builtin())}") from None


def _plan(store: RunStore, cfg: ExperimentConfig) -> tuple[Plan, str]:
    """The experiment's plan, and a sentence on the model: its weights are fingerprinted when on disk,
    else the plan uses the fingerprint the stored runs recorded (the report needs no weights)."""
    if model_on_disk(cfg.model):
        return plan_runs(cfg), f"{cfg.model} (on disk)"
    runs = store.runs(cfg.name)
    fps = runs.loc[(runs["status"] == "done") & runs["model_fingerprint"].notna(), "model_fingerprint"]
    if fps.empty:
        raise ColaError(f"no finished runs of experiment '{cfg.name}' in {store.path}")
    return plan_runs(cfg, model_fp=str(fps.iloc[-1])), f"{cfg.model} (no longer on disk: weights as the runs recorded)"


def _overview(cfg: ExperimentConfig, results: ExperimentResults, plan: Plan, store: RunStore, model_note: str) -> str:
    shared = cfg.shared
    settings = [
        ("model", model_note),
        ("calibration sets", ", ".join(s.name for s in cfg.calibration_sets)),
        ("samples per set (n)", f"{shared.n} × {shared.processing.seqlen} tokens, from a pool of {shared.pool_size}"),
        ("length mode", shared.processing.mode),
        ("compression", "; ".join(H.compression_text(c) for c in cfg.compression)),
        ("seeds", ", ".join(map(str, cfg.seeds))),
        ("evaluation", f"{', '.join(cfg.capabilities)}; {cfg.limit} held-out items per capability"),
        ("runs", f"{len(results.scores)} of {len(plan.runs)} planned compressed runs finished, and the dense run"),
        ("run store", str(store.path)),
    ]
    rows = [[escape(k), escape(str(v))] for k, v in settings]
    body = f"<p>{escape(cfg.description)}</p>" if cfg.description else ""
    if results.missing:
        body += f'<p class="warn">Incomplete: {len(results.missing)} planned runs have no finished result.</p>'
    return H.section("Model and settings", body + H.table(["setting", "value"], rows), "settings")


def _claims(claims: pd.DataFrame, cfg: ExperimentConfig) -> str:
    short, seeds = H.compression_names(cfg), len(cfg.seeds)
    if claims.empty:
        return H.section("Verdicts", "<p>This experiment states no claims.</p>", "verdicts")
    secondary = claims["family"].str.startswith(SECONDARY)
    claims, secondaries = claims[~secondary], claims[secondary]
    rows, chart = [], []
    for r in claims.itertuples():
        label = f"{r.title}: {r.better} vs {r.worse}"
        rows.append(
            [
                escape(label),
                escape(r.capability),
                escape(short.get(r.compression, r.compression)),
                escape("primary" if r.family == PRIMARY else r.family),
                H.num(r.difference, "+.3f"),
                H.interval(r.boot_low, r.boot_high, "+.3f"),
                H.p_value(r.p),
                H.p_value(r.p_holm),
                H.verdict(r.verdict),
                escape(r.note or ""),
            ]
        )
        chart.append(
            H.IntervalRow(
                f"{label} · {r.capability} · {short.get(r.compression, r.compression)}",
                r.difference,
                r.boot_low,
                r.boot_high,
                H.verdict_colour(r.verdict),
            )
        )
    text = (
        f"<p>Each claim: the retention of the <em>better</em> set minus the <em>worse</em> one over {seeds} seeds, "
        "judged by one rule: the difference's variance is the sum of a seed-to-seed and an item-to-item part, each "
        "from a bootstrap that resamples only the seeds or only the items (whole item clusters where the experiment "
        "asks), corrected by units ÷ (units − 1); the difference over its standard error on Student's t "
        "(Welch–Satterthwaite degrees of freedom) gives the 95% interval and p; p is Holm-adjusted within the "
        "claim's family (α = 0.05). <b>supported</b> / <b>contradicted</b>: significant in / against the claimed "
        "direction; <b>inconclusive</b>: not significant after Holm; <b>untestable</b>: both sets at the floor or "
        "the ceiling of retention, where no difference can show (kept in the family with p = 1). A claim on the "
        "mean retention is followed by its per-capability secondaries, a family of their own.</p>"
    )
    if cfg.claims_over == "items":
        text = (
            "<p>Each claim: the retention of the <em>better</em> set minus the <em>worse</em> one on these held-out "
            f"items, each set's {seeds} seeds averaged item by item; the difference's variance from a bootstrap over "
            "the items (whole item clusters where the experiment asks), on Student's t, gives the 95% interval and "
            "p, Holm-adjusted within the claim's family (α = 0.05). It asks whether these calibration sets differ "
            "on items like these for this model, not whether another draw of the calibration data would: that is "
            "the experiments' question, with the seeds resampled.</p>"
        )
    svg = H.interval_chart(
        chart, title="Retention difference (better − worse), 95% interval", x_label="difference", reference=0.0
    )
    head = ["claim", "capability", "compression", "family", "difference", "95% interval", "p", "p (Holm)"]
    body = text + H.figure(svg) + H.table([*head, "verdict", "note"], rows)
    return H.section("Verdicts", body + _secondaries(secondaries, short), "verdicts")


def _secondaries(rows: pd.DataFrame, short: dict[str, str]) -> str:
    """Each primary's per-capability differences on one row (Holm within the row)."""
    if rows.empty:
        return ""
    caps = list(dict.fromkeys(rows["capability"]))
    lines = []
    for (better, worse, comp), g in rows.groupby(["better", "worse", "compression"], sort=False):
        cells = [
            f"{H.num(r.difference, '+.3f')} {H.interval(r.boot_low, r.boot_high, '+.3f')} {H.verdict(r.verdict)}"
            for r in (g.set_index("capability").loc[c] for c in caps)
        ]
        lines.append([escape(f"{better} vs {worse}"), escape(short.get(comp, comp)), *cells])
    intro = "<p>Secondary families: each primary claim's per-capability differences, Holm within the row.</p>"
    return intro + H.table(["comparison", "compression", *caps], lines)


def _retention(summary: pd.DataFrame, cfg: ExperimentConfig) -> str:
    if summary.empty:
        return H.section("Retention", "<p>No finished compressed runs.</p>", "retention")
    parts = [
        "<p>Retention = compressed ÷ dense score (dense ÷ compressed for perplexity: higher is better); "
        "mean over seeds with a 95% hierarchical bootstrap interval over seeds and held-out items.</p>"
    ]
    sets = [s.name for s in cfg.calibration_sets]
    short = H.compression_names(cfg)
    order = {label: i for i, label in enumerate(short)}
    for comp, g in sorted(summary.groupby("compression"), key=lambda x: order.get(x[0], len(order))):
        chart = [
            H.IntervalRow(
                f"{r.capability} · {r.calibration}", r.mean, r.ci_low, r.ci_high, H.colour(sets, r.calibration)
            )
            for r in g.sort_values(["capability", "calibration"]).itertuples()
            if r.capability in cfg.capabilities
        ]
        parts.append(
            H.figure(
                H.interval_chart(
                    chart, title=f"Retention · {short.get(comp, comp)}", x_label="retention", reference=1.0
                )
            )
        )
        caps = list(dict.fromkeys(g["capability"]))
        rows = []
        for cal, cg in g.groupby("calibration", sort=False):
            cells = {r.capability: f"{r.mean:.3f} {H.interval(r.ci_low, r.ci_high)}" for r in cg.itertuples()}
            rows.append([escape(cal), *(cells.get(c, "–") for c in caps)])
        parts.append(f"<h3>{escape(short.get(comp, comp))}</h3>" + H.table(["calibration set", *caps], rows))
    return H.section("Retention", "".join(parts), "retention")


def _dense(dense: pd.DataFrame) -> str:
    rows = [
        [escape(r.capability), escape(r.metric), f"{r.score:.4g}", H.interval(r.ci_low, r.ci_high, ".4g"), str(r.n)]
        for r in dense.itertuples()
    ]
    return H.section("Dense model", H.table(["capability", "metric", "score", "95% CI", "items"], rows), "dense")


def _proxy(corr: pd.DataFrame, cfg: ExperimentConfig) -> str:
    short = H.compression_names(cfg)
    if corr.empty:
        body = "<p>Fewer than three calibration sets per comparison: no rank correlation to report.</p>"
    else:
        rows = [
            [
                escape(short.get(r.compression, r.compression)),
                escape(r.capability),
                H.num(r.spearman, "+.3f"),
                H.interval(r.ci_low, r.ci_high),
                H.p_value(r.p),
                H.p_value(r.p_holm),
                str(r.sets),
            ]
            for r in corr.itertuples()
        ]
        body = (
            "<p>Spearman's ρ across calibration sets between the curation proxy (capability coverage) and "
            "measured retention; permutation p, Holm-adjusted.</p>"
            + H.table(["compression", "capability", "ρ", "95% bootstrap", "p", "p (Holm)", "sets"], rows)
        )
    return H.section("Does the proxy predict retention?", body, "proxy")


def _stored_fingerprints(plan: Plan, store: RunStore) -> dict[str, tuple[int, int, str]]:
    """Per calibration set: (seed, run id, token fingerprint) of its first finished run."""
    runs = store.runs(keys=plan.keys)
    done = runs[runs["status"] == "done"].set_index("key")
    found: dict[str, tuple[int, int, str]] = {}
    for run in sorted(plan.runs, key=lambda r: r.seed or 0):
        if run.calibration not in found and run.key in done.index:
            row = done.loc[run.key]
            fp = row["calibration_fingerprint"] if isinstance(row["calibration_fingerprint"], str) else ""
            found[run.calibration] = (int(run.seed or 0), int(row["id"]), fp)
    return found


def _experiment_layers(plan: Plan, store: RunStore) -> str:
    runs = store.runs(keys=plan.keys)
    runs = runs[(runs["status"] == "done") & (runs["calibration"] != "dense")]
    with_errors = runs[runs["report"].map(H.has_layer_errors)]
    if with_errors.empty:
        return H.section(
            "Per-layer errors",
            "<p>Not stored: an experiment run keeps each layer's time, not its reconstruction error "
            "(‖WX − ŴX‖² / ‖WX‖²). Compress from the dashboard or with <code>compress</code> to see them.</p>",
            "layers",
        )
    labels = {  # one line per set × setting, averaged over its seeds
        run_label(row): f"{row['calibration']} · {compression_label(json.loads(row['settings'] or '{}'))}"
        for _, row in with_errors.iterrows()
    }
    return H.layer_errors_section(with_errors, labels)


def _experiment_answers(plan: Plan, store: RunStore, cfg: ExperimentConfig) -> str:
    """The answers every experiment run stored (its compressed weights are not kept): per compression
    setting, the dense model's and each set's at the first seed, side by side."""
    runs = store.runs(keys=plan.keys)
    done = runs[runs["status"] == "done"].set_index("key")
    stored = {key: json.loads(done.loc[key, "report"] or "{}").get("answers") for key in done.index}
    dense = stored.get(plan.dense.key)
    if not dense:
        return H.section(
            "Same prompts, each model",
            "<p>Not stored: these runs were made before experiment runs kept their answers; run the "
            "experiment again under a new name to see them.</p>",
            "answers",
        )
    seed = min(cfg.seeds)
    body = (
        f"<p>Greedy answers ({SHOWCASE_TOKENS} new tokens at most) that each run stored when it finished: the "
        f"dense model and each calibration set's compressed model at seed {seed}.</p>"
    )
    for label in dict.fromkeys(r.compression for r in plan.runs):
        columns = {"dense": dense}
        for run in plan.runs:
            if run.compression == label and run.seed == seed and stored.get(run.key):
                columns[run.calibration] = stored[run.key]
        rows = [[escape(p), *(escape(a.get(p, "")) for a in columns.values())] for p in dense]
        body += f"<h3>{escape(label)}</h3>" + H.table(["prompt", *columns], rows)
    return H.section("Same prompts, each model", body, "answers")


def _experiment_report(store: RunStore, name: str, log: Callable[[str], None]) -> tuple[str, list[str]]:
    cfg = _experiment_config(store, name)
    if cfg.models:  # one report per model; the pooled claims are the markdown report's (experiment --report)
        parts = ", ".join(f"{cfg.name}@{m}" for m in cfg.models)
        raise ColaError(f"experiment '{cfg.name}' runs on {len(cfg.models)} models: report one of {parts}")
    plan, model_note = _plan(store, cfg)
    results = load_results(plan, store)
    if not results.scores:
        raise ColaError(
            f"no finished runs of experiment '{cfg.name}' under its current config in {store.path}: "
            f"run `python -m cola_core experiment --config {name}` first"
        )
    claims = judged_claims(cfg, results) if cfg.claims else pd.DataFrame()
    trails = experiment_trails(cfg, _stored_fingerprints(plan, store), log=log)
    budgets = getattr(results, "budgets", None)
    sections = [
        _overview(cfg, results, plan, store, model_note),
        _claims(claims, cfg),
        _retention(summarise(results), cfg),
        _dense(dense_baselines(results)),
        H.trail_section(cfg, trails, budgets),
        H.map_section(trails),
        _proxy(proxy_correlation(results), cfg),
        _experiment_layers(plan, store),
        _experiment_answers(plan, store, cfg),
    ]
    return f"Experiment {cfg.name}", sections


def build_report(
    store: RunStore,
    *,
    experiment: str | None = None,
    run_ids: Sequence[int] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> str:
    """The HTML text of the report of one experiment (a built-in name or a config file, as the
    ``experiment`` command takes) or of the given run ids. Raises ColaError (one line) for an
    unknown experiment or run id, or when nothing is finished."""
    if (experiment is None) == (run_ids is None):
        raise ColaError("report on an experiment or on run ids: give exactly one")
    if experiment is not None:
        title, sections = _experiment_report(store, experiment, log)
    else:
        title, sections = runs_sections(store, list(run_ids or ()))
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return H.page(title, sections, f"COLA Studio report · built {stamp} from {store.path}")


def check_out(path: str | Path) -> None:
    """Fail early, before any work, when ``path`` cannot become a file: a folder, or under a file."""
    check_output(path, "report")


def write_report(path: str | Path, html: str) -> Path:
    """Write the report atomically (a reader never sees half a file); one clear error if it cannot."""
    path = Path(path)
    check_out(path)
    try:
        return atomic_write_text(path, html)
    except OSError as exc:
        raise ColaError(f"cannot write the report to {path}: {exc.strerror or exc}") from None
