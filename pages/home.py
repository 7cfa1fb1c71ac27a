"""Start: what COLA does in three stages (He et al., NeurIPS 2025), where this session stands in the
flow Setup → Space → Compress → Compare, and what to click next."""

from __future__ import annotations

import streamlit as st

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
# Run the demo (issue #21): the one-click preset comparison (COLA vs random vs domain-matched, a few seeds)
# belongs here, beside the next-step button, once cola_core can run that preset; no button until it can.
