"""Compress: launch compression with the current calibration set (and baselines, several seeds), watch
the background jobs, cancel them."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cola_core.app.jobs import job_queue
from cola_core.app.workspace import calibration_sets, prepare_space
from cola_core.compress import METHODS, QUANTIZATION, CompressConfig
from cola_core.curation.selection import strategies_for
from cola_core.errors import ColaError
from cola_core.evaluation.suite import DEFAULT_LIMIT
from cola_core.models.loading import pick_device
from ui import flow, state

state.init()
_Q = CompressConfig  # the widgets' defaults are the config's own
GROUP_SIZES = [32, 64, 128, -1]
st.title("Compress")


def jobs_panel(polling: bool) -> None:
    jobs = job_queue().snapshot()
    if polling and not any(j["status"] in ("queued", "running") for j in jobs):
        st.rerun()  # all finished: a full rerun draws the panel once more, without polling
    if not jobs:
        st.caption(
            "No jobs yet in this server process. Launch one above; it runs in the background and survives page switches."
        )
        return
    st.dataframe(pd.DataFrame(jobs), hide_index=True, width="stretch")
    for j in jobs:
        if j["status"] in ("queued", "running") and st.button(f"Cancel run {j['run_id']}", key=f"cancel-{j['run_id']}"):
            job_queue().cancel(j["run_id"])
    if any(j["status"] == "done" for j in jobs):
        st.page_link("pages/compare.py", label="Compare finished runs →")


def show_jobs() -> None:
    """The jobs of this server process: always shown, with or without a space open (a reload keeps them)."""
    st.subheader("Jobs")
    active = any(j["status"] in ("queued", "running") for j in job_queue().snapshot())
    st.fragment(jobs_panel, run_every=1.0 if active else None)(active)  # poll only while something runs


settings = state.built_space()
if settings is None:
    st.info(
        "Build a space and choose a selection on **Activation space & selection** first: its calibration set is compressed here."
    )
    flow.link("pages/space.py", "Go to Activation space & selection →")
    show_jobs()
    st.stop()
space = prepare_space(settings)  # already prepared on the space page: instant
strategy, n, lam, seed = state.get("strategy"), int(state.get("n")), float(state.get("lam")), int(state.get("seed"))
st.caption(
    f"Model **{settings.model}** · current selection: {strategy}, n={n}, λ={lam:g}, seed {seed} · "
    f"jobs run on **{pick_device(settings.device)}**, one at a time"
)

m1, m2 = st.columns(2)  # outside the form: they decide which settings below apply
method = m1.selectbox("Method", METHODS, index=METHODS.index(_Q.method))
pruning = CompressConfig(method=method).is_pruning
then = m2.selectbox(
    "Then quantize (after pruning)",
    ["no", *QUANTIZATION],
    disabled=not pruning,
    help="Prune, then quantize each layer with the bits and group size below, keeping the pruned weights at zero",
)
quantizing = not pruning or then != "no"
with st.form("compress"):
    c2, c3, c4 = st.columns(3)
    sparsity = c2.slider("Sparsity (pruning)", 0.0, 0.9, _Q.sparsity, 0.05, disabled=not pruning)
    bits = c3.slider("Bits (quantization)", 2, 8, _Q.bits, disabled=not quantizing)
    group = c4.selectbox("Group size", GROUP_SIZES, index=GROUP_SIZES.index(_Q.group_size), disabled=not quantizing)
    c5, c7, c8 = st.columns(3)
    pattern = c5.selectbox("Pattern (pruning)", ["unstructured", "2:4", "4:8"], disabled=not pruning)
    grid = c7.radio("Grid (quantization)", ["asymmetric", "symmetric"], horizontal=True, disabled=not quantizing)
    owl = c8.checkbox(
        "OWL layer-wise sparsity", help="Yin et al. 2024: layers with more outliers pruned less", disabled=not pruning
    )
    limit = st.slider("Held-out items per capability", 20, 300, DEFAULT_LIMIT, 10)
    b1, b2 = st.columns(2)
    baselines = b1.multiselect(
        "Also launch baselines",
        [s for s in strategies_for(space.embedded.experts is not None) if s != strategy],
        default=[],
        help="Calibration sets drawn from the same pool with another strategy",
    )
    seeds_text = b2.text_input("Seeds", str(seed), help="Comma-separated, e.g. 0,1,2: one run per strategy and seed")
    launch = st.form_submit_button("Launch", type="primary")
if launch:
    try:
        seeds = tuple(int(x) for x in seeds_text.split(",") if x.strip()) or (seed,)
        cfg = CompressConfig(
            method=method,
            sparsity=sparsity,
            bits=bits,
            group_size=group,
            symmetric=grid == "symmetric",
            quantize=then if pruning and then != "no" else None,
            owl=owl,
            device=settings.device,
            pattern=None if pattern == "unstructured" else pattern,
        )
        cfg.validate()
        sets = calibration_sets(
            space, (strategy, *baselines), seeds, n, lam, tuple(state.get("include")), tuple(state.get("exclude"))
        )
        for cs in sets:
            run_id = job_queue().submit(
                settings.model,
                cs.name,
                cs.records,
                cfg,
                seqlen=settings.curation.processing.seqlen,
                limit=limit,
                extra={"strategy": cs.strategy, "seed": cs.seed, "proxy": cs.proxy},
            )
            st.session_state["launched"] = [*state.get("launched"), run_id]  # this session's (the stepper)
        st.toast(f"Queued {len(sets)} {method} run(s)")
    except ValueError:
        st.error(f"Seeds must be comma-separated integers, got '{seeds_text}'")
    except ColaError as exc:
        st.error(str(exc))


show_jobs()
