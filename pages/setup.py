"""Setup: choose the model and the candidate corpora, preview samples."""

import pandas as pd
import streamlit as st

from cola_core.corpora import list_corpora, load_records
from cola_core.errors import ColaError
from cola_core.models import list_models, load_model_cached
from pages import state

state.init()
st.title("Setup")

models = list_models()
names = [m.name for m in models]
st.selectbox("Model", names, key="model_name", help="Built-in models and models found in the local Hugging Face cache")
st.caption("Or type a local model directory / hub id:")
custom = st.text_input("Model path or hub id", value="", placeholder="e.g. /models/my-llama or Qwen/Qwen2.5-0.5B")
model_name = custom.strip() or st.session_state["model_name"]

try:
    loaded = load_model_cached(model_name)
    n_params = sum(p.numel() for p in loaded.model.parameters())
    st.success(
        f"Loaded **{model_name}** — {n_params:,} parameters on {loaded.device} ({loaded.dtype}), fingerprint `{loaded.fingerprint}`"
    )
except ColaError as exc:
    st.error(str(exc))

infos = list_corpora()
st.subheader("Candidate corpora")
st.dataframe(pd.DataFrame([c.to_dict() for c in infos]), hide_index=True, width="stretch")
st.multiselect("Corpora to curate from", [c.name for c in infos], key="corpora")

st.subheader("Preview")
corpus = st.selectbox("Corpus", [c.name for c in infos], key="preview_corpus")
split = st.radio("Split", ["pool", "heldout", "train"], horizontal=True)
try:
    records = load_records(corpus, split, limit=5)
    st.dataframe(pd.DataFrame([{"id": r.id, "text": r.text} for r in records]), hide_index=True, width="stretch")
except ColaError as exc:
    st.error(str(exc))
