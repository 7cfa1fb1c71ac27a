"""Compress & compare: launch compression with the current calibration set, watch it, compare scores."""

from __future__ import annotations

import json

import pandas as pd
import plotly.express as px
import streamlit as st

from cola_core.compress import METHODS, CompressConfig
from cola_core.corpora import Record
from cola_core.errors import ColaError
from cola_core.evaluation import retention
from cola_core.jobs import dense_scores, job_queue
from pages import state

state.init()
st.title("Compress & compare")
jsonl = st.session_state.get("calibration_jsonl")
if not jsonl:
    st.info(
        "Build a space and choose a selection on **Activation space & selection** first: its calibration set is compressed here."
    )
    st.stop()
records = [Record(**json.loads(line)) for line in jsonl.splitlines()]
model = state.get("model_name")
st.caption(
    f"Model **{model}** · current calibration set: {len(records)} samples ({state.get('strategy')}, seed {state.get('seed')})"
)

with st.form("compress"):
    c1, c2, c3, c4 = st.columns(4)
    method = c1.selectbox("Method", METHODS, index=METHODS.index("wanda"))
    sparsity = c2.slider("Sparsity (pruning)", 0.0, 0.9, 0.5, 0.05)
    bits = c3.slider("Bits (quantization)", 2, 8, 4)
    group = c4.selectbox("Group size", [32, 64, 128, -1], index=0)
    c5, c6, c7 = st.columns([1, 1, 2])
    pattern = c5.selectbox("Pattern (pruning)", ["unstructured", "2:4", "4:8"])
    owl = c6.checkbox("OWL layer-wise sparsity", help="Yin et al. 2024: layers with more outliers pruned less")
    limit = c7.slider("Held-out items per capability", 20, 300, 100, 10)
    launch = st.form_submit_button("Launch", type="primary")
if launch:
    try:
        cfg = CompressConfig(method=method, sparsity=sparsity, bits=bits, group_size=group, owl=owl,
                             pattern=None if pattern == "unstructured" else pattern)  # fmt: skip
        cfg.validate()
        name = f"{state.get('strategy')} n={len(records)} seed={state.get('seed')}"
        job_queue().submit(model, name, records, cfg, limit=limit)
        st.toast(f"Queued {method} with {name}")
    except ColaError as exc:
        st.error(str(exc))


@st.fragment(run_every=1.0)
def jobs_panel() -> None:
    jobs = job_queue().snapshot()
    if not jobs:
        st.caption(
            "No jobs yet in this server process. Launch one above; it runs in the background and survives page switches."
        )
        return
    st.dataframe(pd.DataFrame(jobs), hide_index=True, width="stretch")
    running = [j for j in jobs if j["status"] in ("queued", "running")]
    for j in running:
        if st.button(f"Cancel run {j['run_id']}", key=f"cancel-{j['run_id']}"):
            job_queue().cancel(j["run_id"])


st.subheader("Jobs")
jobs_panel()

st.subheader("Dense vs compressed")
store = job_queue().store
runs = store.runs()
done = runs[(runs["status"] == "done") & (runs["calibration"] != "dense") & (runs["model"] == model)]
if done.empty:
    st.caption("Finished runs appear here with their capability scores next to the dense model's.")
    st.stop()
limit_of = {int(r["id"]): json.loads(r["settings"]).get("limit", 100) for _, r in done.iterrows()}
rows = []
for run_id, lim in limit_of.items():
    dense = store.score_items(dense_scores(model, lim))
    comp = store.score_items(run_id)
    label = f"#{run_id} {json.loads(done.set_index('id').loc[run_id, 'settings'])['method']} · {done.set_index('id').loc[run_id, 'calibration']}"
    for cap, s in comp.items():
        value, lo, hi = retention(dense[cap], s)
        rows.append({"run": label, "capability": cap, "dense": dense[cap].score, "compressed": s.score,
                     "CI": f"[{s.ci_low:.3f}, {s.ci_high:.3f}]", "retention": value, "ret_low": lo, "ret_high": hi})  # fmt: skip
table = pd.DataFrame(rows)
fig = px.bar(table, x="capability", y="retention", color="run", barmode="group",
             error_y=table["ret_high"] - table["retention"], error_y_minus=table["retention"] - table["ret_low"])  # fmt: skip
fig.add_hline(y=1.0, line_dash="dot")
fig.update_layout(height=420, yaxis_title="retention (compressed ÷ dense; higher is better)")
st.plotly_chart(fig)
st.dataframe(table.drop(columns=["ret_low", "ret_high"]), hide_index=True, width="stretch")
