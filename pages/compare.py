"""Compare: dense vs each compressed model — capability scores with intervals, retention, per-layer
error, the same prompts answered side by side, the run history, and the proxy against retention."""

from __future__ import annotations

import json

import plotly.express as px
import streamlit as st

from cola_core.app.compare import (
    answers_side_by_side,
    awq_groups,
    finished_runs,
    layer_errors,
    proxy_vs_retention,
    retention_table,
    run_label,
)
from cola_core.app.jobs import dense_scores, job_queue
from cola_core.errors import ColaError
from ui import flow, state

state.init()
st.title("Compare")
store = job_queue().store
settings = st.session_state.get("space_settings")
model = settings.model if settings else state.get("model")
done = finished_runs(store, model)

st.subheader("Run history")
history = store.runs()
st.dataframe(
    history[["id", "model", "calibration", "seed", "status", "error"]].iloc[::-1], hide_index=True, width="stretch"
)
if done.empty:
    st.info(f"No finished compression runs of **{model}** yet: launch one on **Compress**; it appears here when done.")
    flow.link("pages/compress.py", "Go to Compress →", ":material/compress:")
    st.stop()

labels = {int(r["id"]): run_label(r) for _, r in done.iterrows()}
picked = st.multiselect("Runs", list(labels), default=list(labels)[-4:], format_func=labels.get)
runs = done[done["id"].isin(picked)]
if runs.empty:
    st.stop()
with st.spinner("Scoring the dense model on the same items (once) …"):
    dense_of = {
        int(r["id"]): dense_scores(model, json.loads(r["settings"]).get("limit", 100)) for _, r in runs.iterrows()
    }
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
st.dataframe(table.drop(columns=["run_id"]).round(4), hide_index=True, width="stretch")

left, right = st.columns(2)
errors = layer_errors(runs)
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

st.subheader("Same prompts, side by side")
default_prompts = "Question: What is 3 plus 4?\nThe town of Lemal lies in\ndef add(a, b):\nThe history of the"
prompts_text = st.text_area("One prompt per line", default_prompts, height=110)
if st.button("Answer with every model"):
    prompts = [p for p in prompts_text.splitlines() if p.strip()]
    refs = {"dense": model} | {labels[int(r["id"])]: json.loads(r["report"]).get("out", "") for _, r in runs.iterrows()}
    try:
        with st.spinner("Generating …"):
            st.table(answers_side_by_side(refs, prompts))
    except ColaError as exc:
        st.error(f"{exc} (a run's saved model may have been deleted from cache/runs/)")
