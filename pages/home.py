"""Start: what COLA does in three stages (He et al., NeurIPS 2025), where this session stands in the
flow Setup → Space → Compress → Compare, and what to click next."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cola_core.app.demo_job import demo_runner, readable
from cola_core.app.jobs import job_queue
from cola_core.experiments.demo import describe
from ui import flow, state
from ui.diagram import stages_svg

state.init()
st.title("COLA Studio")
st.markdown(
    "Compressing a model (pruning, quantization) calibrates it on a few hundred samples, and **which samples** "
    "decides which capabilities survive. COLA (He et al., NeurIPS 2025) chooses them in three stages; this studio "
    "shows each stage on your model, then compresses and measures **which calibration data keeps which capability**."
)
st.markdown(f'<div style="max-width: 1000px">{stages_svg()}</div>', unsafe_allow_html=True)

one, two, three = st.columns(3)
one.markdown(
    "**Stage 1 · which data.** Score each candidate corpus by its domain correspondence to the capabilities to "
    "keep (held-out probes of language, code, math and facts; activation and token similarity) and draw the pool "
    "in the recommended mix. *On Setup.*"
)
two.markdown(
    "**Stage 2 · how it is shaped.** Set the compositional properties: sequence length, reasoning format "
    "(worked steps kept or plain answers) and quality (duplicates, the worst perplexity). *On Setup; applied when "
    "the space is built.*"
)
three.markdown(
    "**Stage 3 · which samples.** Run the model over the pool, pool every layer's activations, random-project "
    "them, cluster with k-means (k = n) and keep the sample nearest each centroid: representative and diverse in "
    "the model's own activation space. *On Activation space & selection.*"
)

st.subheader("Where you are")
steps = flow.session_steps()
flow.draw_stepper(steps)
upcoming = flow.next_step(steps)
if st.button(f"{upcoming.action} →", type="primary", key="next_step"):
    st.switch_page(upcoming.page)

st.subheader("Or see the point in a few minutes")
st.markdown(
    f"**The demo** {describe(demo_runner(job_queue().store).config)}, and says for each claim whether these sets "
    "differ on those items — **supported**, **contradicted** or **inconclusive** — leading with the robust finding "
    "(the calibration domain decides which capability survives). Same as `python -m cola_core demo`; finished runs "
    "are reused; about a minute on 2 idle cores."
)
runner = demo_runner(job_queue().store)


@st.fragment(run_every=1.0)
def demo_progress() -> None:
    """Polls the running demo; once it stops, the whole page runs again (and lands on Compare)."""
    now = runner.snapshot()
    if now.status != "running":
        st.rerun()
    label = f"{now.runs_done} of {now.runs_total} runs" if now.runs_total else "planning"
    left = now.remaining()
    eta = f" · about {left / 60:.0f} min left" if left and left >= 90 else f" · about {left:.0f} s left" if left else ""
    st.progress(now.fraction, text=f"Running the demo: {label}{eta} · {readable(now.last)[:120]}")


shown = runner.snapshot()
if shown.status != "running" and st.button("Run the demo", key="run_demo"):
    runner.start()
    st.session_state["demo_landed"] = False
    shown = runner.snapshot()
if shown.status == "running":
    demo_progress()
elif shown.status == "done" and state.get("demo_landed") is False:  # this session started it: land once
    st.session_state["demo_landed"] = True
    st.session_state["ab_chosen_for"] = None  # Compare then preselects the newest experiment's sets: the demo's
    st.switch_page("pages/compare.py")
elif shown.status == "failed":
    st.error(f"The demo stopped: {shown.error}. Finished runs are kept; run it again to resume.")
elif shown.status == "done" and shown.result is not None:
    result = shown.result
    st.success(f"The demo finished: {result.runs} compressed runs. Compare shows its verdicts and offers its report.")
    columns = ["claim", "capability", "compression", "difference", "ci_low", "ci_high", "verdict"]
    st.dataframe(pd.DataFrame(result.verdicts, columns=columns), hide_index=True)
    flow.link("pages/compare.py", "See the comparison on Compare →")
