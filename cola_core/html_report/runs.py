"""The HTML report of runs picked by id (``report --runs 1,2,3``): each run's settings and retention
with intervals, the A/B comparison of the calibration sets they belong to (:mod:`cola_core.app.ab`,
the Compare page's statistics), what each run stored of its calibration set, per-layer errors, and
the same prompts answered by the dense model and each compressed model still on disk."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import pandas as pd

from cola_core.app import ab
from cola_core.app.compare import answers_side_by_side, run_label
from cola_core.errors import ColaError
from cola_core.evaluation.retention import retention_rows
from cola_core.evaluation.runstore import RunStore
from cola_core.evaluation.suite import SHOWCASE_PROMPTS, SHOWCASE_TOKENS
from cola_core.experiments.config import compression_name
from cola_core.html_report import parts as H
from cola_core.html_report.svg_charts import scatter_map

MAX_ANSWERED = 3  # compressed models loaded to answer prompts: a few seconds each on cola-tiny


def _settings(row: pd.Series) -> dict:
    return json.loads(row["settings"] or "{}")


def _report(row: pd.Series) -> dict:
    return json.loads(row["report"] or "{}") if isinstance(row["report"], str) else {}


def _plain(value: object) -> str:
    """A stored value for people: ``{'math': 0.8246}`` → ``math 0.82``."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items())
    return str(value)


def _seed(row: pd.Series) -> str:
    seed = _settings(row).get("seed", row["seed"])
    return "–" if seed is None or pd.isna(seed) else str(int(seed))


def _dense_for(runs: pd.DataFrame, row: pd.Series, store: RunStore) -> int | None:
    """The dense evaluation a run is measured against: its experiment's, or for a dashboard run the
    dense run of the same model and number of held-out items; the newest scored on the same items."""
    dense = runs[(runs["calibration"] == "dense") & (runs["status"] == "done") & (runs["model"] == row["model"])]
    if isinstance(row["experiment"], str):
        dense = dense[dense["experiment"] == row["experiment"]]
    else:
        limit = _settings(row).get("limit")
        dense = dense[
            dense["experiment"].isna() & (dense["settings"].map(lambda s: json.loads(s).get("limit")) == limit)
        ]
    mine = {k: len(s.items) for k, s in store.score_items(int(row["id"])).items()}
    for dense_id in reversed(dense["id"].tolist()):
        if {k: len(s.items) for k, s in store.score_items(int(dense_id)).items() if k in mine} == mine:
            return int(dense_id)
    return None


def _pick(store: RunStore, run_ids: list[int]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(all runs, the finished compressed runs asked for, notes on the ones left out)."""
    runs = store.runs()
    unknown = [i for i in run_ids if i not in set(runs["id"])]
    if not run_ids:
        raise ColaError("give run ids, e.g. --runs 1,2,3 (see `python -m cola_core runs`)")
    if unknown:
        raise ColaError(
            f"unknown run id(s) {', '.join(map(str, unknown))} in {store.path}: see `python -m cola_core runs`"
        )
    asked = runs.set_index("id").loc[run_ids].reset_index()
    ok = (asked["status"] == "done") & (asked["calibration"] != "dense")
    notes = [
        f"run #{r.id} left out: " + ("a dense evaluation (the baseline)" if r.calibration == "dense" else r.status)
        for r in asked[~ok].itertuples()
    ]
    if not ok.any():
        raise ColaError(
            f"none of runs {', '.join(map(str, run_ids))} is a finished compressed run ({'; '.join(notes)})"
        )
    return runs, asked[ok].drop_duplicates("id"), notes


def _overview(picked: pd.DataFrame, notes: list[str], store: RunStore) -> str:
    rows = []
    for _, r in picked.iterrows():
        settings = _settings(r)
        comp = ab.run_compression(settings, r["experiment"] if isinstance(r["experiment"], str) else None)
        rows.append(
            [
                f"#{r['id']}",
                escape(r["model"]),
                escape(str(r["experiment"] or "dashboard")),
                escape(r["calibration"]),
                escape(comp),
                escape(_seed(r)),
                escape(str(settings.get("strategy", "–"))),
            ]
        )
    body = H.table(["run", "model", "experiment", "calibration set", "compression", "seed", "strategy"], rows)
    body += f"<p>Run store: <code>{escape(str(store.path))}</code></p>"
    body += "".join(f'<p class="warn">{escape(n)}</p>' for n in notes)
    return H.section("Model and settings", body, "settings")


def _retention(store: RunStore, runs: pd.DataFrame, picked: pd.DataFrame) -> str:
    rows, chart = [], []
    for i, (_, r) in enumerate(picked.iterrows()):
        dense_id = _dense_for(runs, r, store)
        if dense_id is None:
            rows.append([escape(run_label(r)), "–", "no dense run on the same items", "", "", ""])
            continue
        for x in retention_rows(store, int(r["id"]), dense_id):
            rows.append(
                [
                    escape(run_label(r)),
                    escape(x["capability"]),
                    f"{x['dense']:.4g}",
                    f"{x['compressed']:.4g} {H.interval(x['ci_low'], x['ci_high'], '.4g')}",
                    f"{x['retention']:.3f} {H.interval(x['ret_low'], x['ret_high'])}",
                    f"#{dense_id}",
                ]
            )
            if "_" not in x["capability"]:
                colour = H.PALETTE[i % len(H.PALETTE)]
                label = f"{x['capability']} · {run_label(r)}"
                chart.append(H.IntervalRow(label, x["retention"], x["ret_low"], x["ret_high"], colour))
    text = (
        "<p>Each run against the dense model on the same held-out items: retention = compressed ÷ dense "
        "(dense ÷ compressed for perplexity), 95% paired bootstrap over items.</p>"
    )
    svg = H.interval_chart(
        sorted(chart, key=lambda c: c.label), title="Retention per run", x_label="retention", reference=1.0
    )
    head = ["run", "capability", "dense", "compressed [95% CI]", "retention [95% CI]", "dense run"]
    return H.section("Retention", text + H.figure(svg) + H.table(head, rows), "retention")


def _comparisons(store: RunStore, picked: pd.DataFrame) -> tuple[list[ab.ABComparison], list[str]]:
    """The sets the runs belong to, compared under each compression setting that two or more share
    (the reference: a set named random, else the first); and a line for each comparison refused."""
    found, refused = [], []
    ids = set(picked["id"])
    for model in sorted(set(picked["model"])):
        groups = ab.set_groups(store, model)
        mine = groups[groups["run_ids"].map(lambda r: bool(ids & set(r)))]
        for comp, g in mine.groupby("compression"):
            names = list(g["group"])
            if len(names) < 2:
                continue
            try:
                found.append(ab.compare_sets(store, names, comp, ab.default_reference(names)))
            except ColaError as exc:
                refused.append(f"{comp}: {exc}")
    return found, refused


def _bold(markdown: str) -> str:
    """``**x**`` → ``<b>x</b>`` in an escaped line (the headlines mark set names in bold)."""
    parts = escape(markdown).split("**")
    return "".join(f"<b>{x}</b>" if i % 2 else x for i, x in enumerate(parts))


def _summary(comparisons: list[ab.ABComparison], picked: pd.DataFrame) -> str:
    """The verdicts in one sentence each, as Compare's first screen says them."""
    lines = [
        f"<li>{escape(compression_name(c.compression))}: {_bold(line)}</li>"
        for c in comparisons
        for line in ab.headlines(c)
    ]
    if lines:
        body = f"<ul>{''.join(lines)}</ul>"
    elif comparisons:
        body = "<p>No set differs from its reference after Holm's correction (the A/B tables below).</p>"
    else:
        body = (
            f"<p>{len(picked)} run(s) of one calibration set per setting: retention against the dense model below.</p>"
        )
    return H.section("Summary", body, "summary")


def _ab(comparisons: list[ab.ABComparison], refused: list[str]) -> str:
    parts = [f'<p class="warn">{escape(line)}</p>' for line in refused]
    for c in comparisons:
        rows = [
            [
                escape(d.group),
                escape(d.capability),
                H.num(d.difference, "+.3f"),
                H.interval(d.ci_low, d.ci_high, "+.3f"),
                H.p_value(d.p_holm),
                H.verdict(d.verdict),
                escape(f"{d.pairs} items, {d.seeds} seed(s) averaged"),
                escape(d.note or ""),
            ]
            for d in c.differences.itertuples()
        ]
        head = ["set", "capability", f"− {c.reference}", "95% interval", "p (Holm)", "verdict", "paired over", "note"]
        lines = "".join(f"<li>{_bold(line)}</li>" for line in ab.headlines(c))
        summary = f"<ul>{lines}</ul>" if lines else "<p>No difference is significant after Holm.</p>"
        parts.append(f"<h3>{escape(compression_name(c.compression))}</h3>" + summary + H.table(head, rows))
    if not comparisons:
        parts.append("<p>The runs belong to one calibration set per compression setting: nothing to compare.</p>")
        return H.section("A/B", "".join(parts), "ab")
    text = (
        "<p>Every finished seed of the sets these runs belong to, each set against the reference, paired over the "
        "held-out items (each set's seeds averaged item by item); the verdict judges «the set retains more than "
        "the reference on these items» (Holm-adjusted across the rows of a table).</p>"
    )
    return H.section("A/B", text + "".join(parts), "ab")


def _maps(store: RunStore, comparisons: list[ab.ABComparison]) -> str:
    """Each compared set rebuilt and placed on its comparison's shared PCA map (:mod:`cola_core.app.ab_maps`)
    when its tokens match the run's; otherwise why not."""
    from cola_core.app.ab_maps import set_maps

    figures, missing = [], []
    for c in comparisons[:1]:  # the sets are the same under every compression: one map each is enough
        try:
            maps = set_maps(store, c)
        except Exception as exc:  # the report still builds; say what failed
            missing.append(f"{c.compression}: {type(exc).__name__}: {exc}")
            continue
        for group, m in maps.items():
            if m.reason or not len(m.xy):
                missing.append(f"{group}: {m.reason or 'nothing to draw'}")
                continue
            chosen = set(m.chosen)
            selected = [i in chosen for i in range(len(m.xy))]
            xy = [(float(x), float(y)) for x, y in m.xy]
            probes = {k: [(float(a), float(b)) for a, b in v] for k, v in m.probes.items()}
            covered = {k: [bool(x) for x in v] for k, v in m.covered.items()}
            title = f"{group} · seed {m.seed} (PCA)"
            figures.append(H.figure(scatter_map(xy, m.corpus, selected, title=title, probes=probes, covered=covered)))
    text = (
        "<p>Each set's pool on one PCA plane shared by the compared sets, in the dashboard's corpus hues; the "
        "selected samples are ringed; each capability's held-out probes are diamonds, filled where the set covers "
        "them (one of its samples among the probe's nearest neighbours), hollow where it misses them.</p>"
    )
    body = (text + f'<div class="maps">{"".join(figures)}</div>') if figures else ""
    if not comparisons:
        missing.append("not stored: a run keeps its calibration set's fingerprint, not the map")
    if missing:
        body += "<p>No map for:</p><ul>" + "".join(f"<li>{escape(x)}</li>" for x in missing) + "</ul>"
    return H.section("The map", body, "map")


def _trail(picked: pd.DataFrame) -> str:
    rows = []
    for _, r in picked.iterrows():
        settings, report = _settings(r), _report(r)
        cal = report.get("calibration") if isinstance(report.get("calibration"), dict) else {}
        stored = {
            "samples": cal.get("n"),
            "tokens per sample": cal.get("seqlen"),
            "real tokens": report.get("tokens"),
            "mix": report.get("mix"),
            "strategy": settings.get("strategy"),
            "probe coverage": settings.get("proxy") or report.get("proxy"),
            "fingerprint": r["calibration_fingerprint"],
        }
        text = "; ".join(f"{k} {_plain(v)}" for k, v in stored.items() if v not in (None, {}, ""))
        rows.append([escape(run_label(r)), escape(text or "nothing")])
    text = (
        "<p>A run stores its calibration set's fingerprint and what is listed here; Stage 1's mix and Stage 2's "
        "changes live with the calibration set (its <code>.settings.json</code>), and the map with the session "
        "that built it: neither is stored with the run, so neither is shown.</p>"
    )
    return H.section("The COLA stages, as stored", text + H.table(["run", "stored"], rows), "trail")


def _answers(picked: pd.DataFrame) -> str:
    on_disk = [
        (r, _report(r)["out"])
        for _, r in picked.iterrows()
        if (Path(_report(r).get("out", "")) / "config.json").is_file()
    ]
    gone = [run_label(r) for _, r in picked.iterrows() if all(r["id"] != o[0]["id"] for o in on_disk)]
    body = ""
    if on_disk:
        models = {f"dense {on_disk[0][0]['model']}": on_disk[0][0]["model"]}
        models |= {run_label(r): out for r, out in on_disk[:MAX_ANSWERED] if r["model"] == on_disk[0][0]["model"]}
        try:
            frame = answers_side_by_side(models, SHOWCASE_PROMPTS, max_new_tokens=SHOWCASE_TOKENS)
            rows = [[escape(str(v)) for v in row] for row in frame.itertuples(index=False)]
            body += f"<p>Greedy answers, {SHOWCASE_TOKENS} new tokens at most.</p>" + H.table(list(frame.columns), rows)
        except Exception as exc:  # the report still builds; say what failed
            body += f'<p class="warn">Could not answer prompts: {escape(type(exc).__name__)}: {escape(str(exc))}</p>'
    if gone:
        body += f"<p>Not on disk (no saved model to answer with): {escape(', '.join(gone))}.</p>"
    return H.section("Same prompts, each model", body, "answers")


def runs_sections(store: RunStore, run_ids: list[int]) -> tuple[str, list[str]]:
    """The title and sections of the report of the given run ids; ColaError for unknown ids or none finished."""
    runs, picked, notes = _pick(store, run_ids)
    comparisons, refused = _comparisons(store, picked)
    runs["experiment"] = runs["experiment"].where(runs["experiment"].notna(), None)
    with_errors = picked[picked["report"].map(H.has_layer_errors)]
    layers = (
        H.layer_errors_section(with_errors)
        if not with_errors.empty
        else H.section("Per-layer errors", "<p>Not stored with these runs.</p>", "layers")
    )
    sections = [  # the dashboard's order: the verdicts in words, their evidence, then the runs themselves
        _summary(comparisons, picked),
        _ab(comparisons, refused),
        _retention(store, runs, picked),
        _maps(store, comparisons),
        layers,
        _answers(picked),
        _trail(picked),
        _overview(picked, notes, store),
    ]
    return f"Runs {', '.join(f'#{i}' for i in picked['id'])}", sections
