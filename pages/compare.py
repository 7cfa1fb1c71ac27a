"""Compare: calibration sets side by side (retention, paired differences with verdicts, mix, token
budget and maps with the capability probes), a downloadable HTML report, and dense vs each compressed
model — capability scores with intervals, retention, per-layer error, the same prompts answered side
by side, the run history, and the proxy against retention."""

from __future__ import annotations

import json

import plotly.express as px
import streamlit as st

from cola_core.app.ab import (
    compare_sets,
    default_choice,
    dense_run,
    headlines,
    pairing_note,
    set_groups,
    verdict_table,
)
from cola_core.app.ab_maps import budget_table, set_maps, shared_ranges
from cola_core.app.compare import (
    answers_side_by_side,
    awq_groups,
    expert_tokens,
    finished_runs,
    layer_errors,
    proxy_vs_retention,
    retention_table,
    run_label,
    setting_name,
)
from cola_core.app.jobs import dense_scores, job_queue
from cola_core.app.workspace import prepare_space
from cola_core.errors import ColaError
from cola_core.evaluation.suite import DEFAULT_LIMIT, SHOWCASE_PROMPTS
from cola_core.experiments.config import compression_name
from ui import charts, flow, state

state.init()
st.title("Compare")
store = job_queue().store
settings = state.built_space()
model = settings.model if settings else state.get("model")
done = finished_runs(store, model)

if done.empty:
    st.info(f"No finished compression runs of **{model}** yet: launch one on **Compress**; it appears here when done.")
    flow.link("pages/compress.py", "Go to Compress →")
    st.stop()


def report_download(experiment: str | None, run_ids: list[int]) -> None:
    """One download: the HTML report of these sets' runs (cola_core.html_report), this view's twin —
    the same sentences, tests, retention, maps and per-layer errors; built when the button is clicked."""

    def build() -> str:
        from cola_core.html_report.document import build_report

        try:
            return build_report(store, run_ids=run_ids)
        except ColaError as exc:  # the file then says why, instead of an empty download
            return f"<!doctype html><title>COLA report</title><p>The report could not be built: {exc}</p>"

    st.download_button(
        "Download report",
        build,
        file_name="compared-sets-report.html",
        mime="text/html",
        help="This view as one HTML file that opens offline: the verdicts, the sets side by side, their maps",
    )
    if experiment:
        st.caption(
            f"The whole experiment's report (every set, claim and verdict by the experiment's rule): "
            f"`python -m cola_core report --experiment {experiment} --out {experiment}.html`."
        )


def ab_section() -> list[int]:
    """Two or more calibration sets under one compression setting, each against a reference set; returns
    each chosen set's run at its first seed (the runs the dense section then preselects)."""
    st.subheader("Calibration sets side by side")
    groups = set_groups(store, model)
    counts = groups.groupby("compression")["group"].nunique().sort_values(ascending=False)
    if counts.empty or counts.iloc[0] < 2:
        st.caption(
            "Comparing calibration sets needs two of them compressed the same way: launch baselines on "
            "**Compress**, or run an experiment (`python -m cola_core experiment --config smoke`)."
        )
        return []
    st.caption(
        "A set is the runs that share one calibration set across seeds: an experiment's named set, or dashboard "
        "runs with the same label. Each set is compared with the reference on the same held-out items."
    )
    left, middle, right = st.columns([1.4, 3, 1.2])
    if state.get("ab_compression") not in counts.index:
        st.session_state["ab_compression"] = counts.index[0]
    compression = left.selectbox(
        "Compression setting", list(counts.index), key="ab_compression", format_func=compression_name
    )
    options = groups[groups["compression"] == compression]
    if state.get("ab_chosen_for") != compression:  # a new setting: preselect its newest experiment's sets
        st.session_state["ab_sets"], st.session_state["ab_reference"] = default_choice(groups, compression)
        st.session_state["ab_chosen_for"] = compression
    st.session_state["ab_sets"] = [g for g in state.get("ab_sets") if g in set(options["group"])]
    seeds_of = dict(zip(options["group"], options["seeds"], strict=True))
    chosen = middle.multiselect(
        "Calibration sets (two or more)",
        list(options["group"]),
        key="ab_sets",
        format_func=lambda g: f"{g} ({len(seeds_of[g])} seed{'s' if len(seeds_of[g]) > 1 else ''})",
    )
    if state.get("ab_reference") not in chosen:
        st.session_state["ab_reference"] = chosen[0] if chosen else ""
    reference = right.selectbox("Reference (compared against)", chosen or [""], key="ab_reference")
    if len(chosen) < 2:
        st.info("Pick two or more calibration sets to compare them.")
        return []
    limits = options[options["group"].isin(chosen)]["limit"].dropna().unique()
    try:
        with st.spinner("Comparing the sets (the dense model is scored once per number of items) …"):
            for limit in limits:  # dashboard runs are measured against a dense run of the same items
                dense_scores(model, int(limit))
            comparison = compare_sets(store, chosen, compression, reference)
    except ColaError as exc:
        st.error(str(exc))
        return []

    said = headlines(comparison)
    if said:
        st.markdown("\n".join(f"- {line}" for line in said))
    else:
        st.markdown("No set differs from the reference on any capability after Holm's correction (table below).")
    st.markdown("**Does a set retain more than the reference?**")
    st.plotly_chart(charts.differences_forest(comparison.differences, reference), key="ab_forest")
    st.dataframe(
        verdict_table(comparison),
        hide_index=True,
        width="stretch",
        column_config={
            f"difference vs {reference}": st.column_config.NumberColumn(format="%+.3f"),
            "p": st.column_config.NumberColumn(format="%.3f"),
            "p (Holm)": st.column_config.NumberColumn(format="%.3f"),
        },
    )
    st.caption(pairing_note(comparison))

    st.markdown("**Retention per capability** (mean over seeds, 95% bootstrap over seeds and items)")
    st.plotly_chart(charts.retention_by_set(comparison.retention, reference), key="ab_retention")
    with st.expander("Retention table"):
        st.dataframe(comparison.retention.round(4), hide_index=True, width="stretch")

    experiments = {s.removeprefix("experiment ") for s in comparison.sets["source"] if s.startswith("experiment ")}
    run_ids = [i for g in chosen for i in comparison.run_ids[g]]
    report_download(experiments.pop() if len(experiments) == 1 else None, run_ids)
    sets_section(comparison, chosen)
    return [comparison.run_ids[g][0] for g in chosen if comparison.run_ids[g]]


@st.fragment
def sets_section(comparison, chosen: list[str]) -> None:
    """What each set holds and, on request, its map: a fragment, so switching the maps on or off (their
    rebuild takes seconds to minutes) reruns this part only, not the verdicts above it."""
    st.markdown("**What each set holds: samples, real tokens, corpus mix**")
    toggle_col, seed_col = st.columns([1, 1])
    show_maps = toggle_col.toggle(
        "Draw each set's map",
        key="ab_maps",
        help="Rebuilds each set from its pool (activations come from the disk cache) to place it on one shared map",
    )
    maps = {}
    if show_maps:
        all_seeds = sorted({s for g in chosen for s in comparison.seeds[g]})
        if state.get("ab_map_seed") not in all_seeds:
            st.session_state["ab_map_seed"] = all_seeds[0]
        seed = (
            seed_col.selectbox("Seed shown on the maps", all_seeds, key="ab_map_seed") if len(all_seeds) > 1 else None
        )
        dashboard_sets = (comparison.sets["source"] == "dashboard").any()
        space = prepare_space(settings) if settings and dashboard_sets else None  # prepared on the space page
        with st.spinner("Rebuilding the sets on their pools …"):
            maps = set_maps(
                store,
                comparison,
                seed,
                space,
                float(state.get("lam")),
                tuple(state.get("include")),
                tuple(state.get("exclude")),
            )
    budget = budget_table(comparison, maps)
    shares = [c for c in budget.columns if c not in ("group", "n", "tokens", "from")]
    st.dataframe(
        budget.rename(columns={"group": "set", "tokens": "real tokens", "from": "read from"}),
        hide_index=True,
        width="stretch",
        column_config={
            c: st.column_config.ProgressColumn(c, format="percent", min_value=0, max_value=1) for c in shares
        },
    )
    if maps:
        st.caption(
            "Every set on the same plane (PCA of all the compared pools together): its pool in grey, its samples by "
            "corpus, and each capability's held-out probes — **filled** where the set covers the probe (one of its "
            f"samples is among the probe's {next((m.k for m in maps.values() if m.placed), 0)} nearest neighbours "
            "in all the compared pools and probes together), **hollow** where it misses it."
        )
        ranges = shared_ranges(maps)
        corpora = sorted({c for m in maps.values() for c in m.corpus})  # one colour per corpus on every map
        for start in range(0, len(chosen), 3):
            for col, group in zip(st.columns(3), chosen[start : start + 3], strict=False):
                m = maps[group]
                if not m.placed:
                    col.markdown(f"**{group}** · seed {m.seed}")
                    col.info(f"No map: {m.reason}.")
                    continue
                title = f"{group} · seed {m.seed}"
                col.plotly_chart(
                    charts.calibration_set_map(m.xy, m.corpus, m.chosen, m.probes, m.covered, title, ranges, corpora),
                    key=f"ab_map_{group}",
                )


compared = ab_section()

st.subheader("Each run against the dense model")
labels = {int(r["id"]): run_label(r) for _, r in done.iterrows()}
newest = max(labels, default=None)  # your latest run joins the sets above (at their first seed)
preselected = list(dict.fromkeys([*(i for i in compared if i in labels), newest])) if compared else list(labels)[-4:]
picked = st.multiselect("Runs", list(labels), default=preselected, format_func=labels.get)
runs = done[done["id"].isin(picked)]
if runs.empty:
    st.stop()
try:
    with st.spinner("Scoring the dense model on the same items (once) …"):
        dense_of = {  # an experiment's runs against its own dense run (the same held-out items)
            int(r["id"]): dense_run(store, int(r["id"]))
            if r["experiment"]
            else dense_scores(model, json.loads(r["settings"]).get("limit", DEFAULT_LIMIT))
            for _, r in runs.iterrows()
        }
except ColaError as exc:
    st.error(f"{exc}.")
    st.stop()
table = retention_table(store, runs, dense_of)

st.subheader("Retention (compressed ÷ dense, higher is better)")
fig = px.bar(
    table,
    x="capability",
    y="retention",
    color="run",
    barmode="group",
    error_y=table["ret_high"] - table["retention"],
    error_y_minus=table["retention"] - table["ret_low"],
)
fig.add_hline(y=1.0, line_dash="dot")
fig.update_layout(height=400, legend_title_text="")
st.plotly_chart(fig)
for metric, part in table.groupby("metric", sort=False):  # one table per unit: perplexity apart from accuracy
    named = {"dense": f"dense {metric}", "compressed": f"compressed {metric}"}
    st.markdown(f"**Scores: {metric}**")
    st.dataframe(
        part.drop(columns=["run_id", "metric"]).rename(columns=named).round(4), hide_index=True, width="stretch"
    )

left, right = st.columns(2)
errors = layer_errors(runs)  # dashboard and experiment runs both keep each linear's relative error
left.subheader("Per-layer reconstruction error")
if errors.empty:
    left.caption("These runs' reports carry no per-layer error.")
else:
    fig = px.line(
        errors,
        x="layer",
        y="mean_error",
        color="run",
        markers=True,
        log_y=True,
        labels={"mean_error": "mean ‖WX − ŴX‖² / ‖WX‖²"},
    )
    fig.update_layout(height=400, legend={"orientation": "h", "y": -0.3, "title": ""})
    left.plotly_chart(fig)
right.subheader("Curation proxy vs measured retention")
points, corr = proxy_vs_retention(runs, table)
if points.empty:
    right.caption("Runs launched from the dashboard record their capability coverage; these have none.")
else:
    fig = px.scatter(points, x="coverage", y="retention", color="capability", hover_name="run")
    fig.update_layout(height=360)
    right.plotly_chart(fig)
    right.caption(
        "Spearman ρ over runs per capability (needs ≥ 3 runs): "
        + ", ".join(
            f"{r.capability} {'n/a' if r.runs < 3 else f'{r.spearman:+.2f}'} ({r.runs} runs)" for r in corr.itertuples()
        )
    )

awq = awq_groups(runs)
if not awq.empty:
    st.subheader("AWQ: scales per group of linears")
    st.caption(
        "α: the exponent of the per-channel scales mean|x|^α (Lin et al., MLSys 2024); errors are each group's "
        "output error on the calibration tokens with plain rounding vs AWQ's scales."
    )
    st.dataframe(awq.round(5), hide_index=True, width="stretch")

experts = expert_tokens(runs)
if not experts.empty:
    st.subheader("Mixture of experts: calibration tokens per expert")
    below = experts[experts["took every token"]]
    st.caption(
        f"Every expert was compressed. Routed: the real calibration tokens the router sent each expert; "
        f"an expert below the floor (its widest input) took its statistics from every token instead — "
        f"{len(below)} of {len(experts)} here."
    )
    for run_name, part in experts.groupby("run", sort=False):  # layers × experts, one map per run
        number = part["expert"].str.rsplit(".", n=1).str[-1].astype(int).rename("expert number")
        grid = part.pivot_table(index="layer", columns=number, values="routed tokens", aggfunc="sum")
        fig = px.imshow(grid, aspect="auto", labels={"color": "routed tokens"}, title=run_name)
        fig.update_layout(height=min(max(320, 120 + 18 * len(grid)), 900))  # readable for 2 layers or 60
        fig.update_yaxes(dtick=1 if len(grid) <= 24 else None)  # whole layer numbers
        st.plotly_chart(fig)
    with st.expander("Every expert's tokens"):
        st.dataframe(experts, hide_index=True, width="stretch")

st.subheader("Same prompts, side by side")
default_prompts = "\n".join(SHOWCASE_PROMPTS)
prompts_text = st.text_area("One prompt per line", default_prompts, height=110)
if st.button("Answer with every model"):
    prompts = [p for p in prompts_text.splitlines() if p.strip()]
    saved = {labels[int(r["id"])]: json.loads(r["report"]).get("out") for _, r in runs.iterrows()}
    missing = [label for label, out in saved.items() if not out]
    if missing:  # experiment runs keep their scores and answers, not their weights
        st.caption(f"Not on disk (experiment runs keep scores, not weights): {', '.join(missing)}.")
    refs = {"dense": model} | {label: out for label, out in saved.items() if out}
    try:
        with st.spinner("Generating …"):
            st.table(answers_side_by_side(refs, prompts))
    except ColaError as exc:
        st.error(f"{exc} (a run's saved model may have been deleted from cache/runs/)")

with st.expander("Run history (every run in the store, newest first)"):
    history = store.runs()
    history.insert(2, "setting", [setting_name(json.loads(x or "{}")) for x in history["settings"]])
    columns = ["id", "model", "setting", "experiment", "calibration", "seed", "status", "error"]
    st.dataframe(history[columns].iloc[::-1], hide_index=True, width="stretch")
