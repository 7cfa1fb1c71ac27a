"""Setup: the model, the candidate corpora (built-in or uploaded), Stage 1 (which corpora match the
capabilities to keep) and Stage 2 settings (length, reasoning format, quality)."""

import pandas as pd
import plotly.express as px
import streamlit as st
import torch

from cola_core.app.workspace import PROBES
from cola_core.corpora import list_corpora, load_records
from cola_core.corpora.selfgen import SelfGenConfig, cached_self_corpus
from cola_core.corpora.uploads import UPLOAD_SUFFIXES, store_upload
from cola_core.curation.correspondence import recommend_mix
from cola_core.curation.pipeline import CurateConfig, score_corpora
from cola_core.curation.presets import PRESETS
from cola_core.engine.config import ray_available
from cola_core.errors import ColaError
from cola_core.models.loading import context_length, list_models, load_model_cached
from ui import flow, state

state.init()
st.title("Setup")

models = list_models()
names = [m.name for m in models]
m1, m2 = st.columns([3, 1])
m1.selectbox("Model", names, key="model_name", help="Built-in models and models found in the local Hugging Face cache")
devices = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
m2.selectbox(
    "Device", devices, key="device", help="auto: CUDA when present, else CPU; used for extraction and compression"
)
e1, e2, e3 = st.columns([1, 2, 1])
ray_ok = ray_available()
e1.radio(
    "Engine",
    ["local", "ray"] if ray_ok else ["local"],
    key="engine",
    horizontal=True,
    help="where activations are extracted; ray: a Ray Data actor pool, one model replica per GPU or CPU worker",
)
if state.get("engine") == "ray":
    e2.text_input(
        "Ray address", key="ray_address", placeholder="blank: a local Ray instance; or auto / ray://host:10001"
    )
    e3.number_input("Workers", 1, 512, key="ray_workers")
elif not ray_ok:
    e2.caption("The Ray engine needs `pip install -r requirements-ray.txt`.")
st.caption("Or type a local model directory / hub id:")
custom = st.text_input("Model path or hub id", value="", placeholder="e.g. /models/my-llama or Qwen/Qwen2.5-0.5B")
model_name = custom.strip() or st.session_state["model_name"]

loaded = None
try:
    loaded = load_model_cached(model_name, state.get("device"))
    st.session_state.update(model=model_name, model_loaded=True)
    n_params = sum(p.numel() for p in loaded.model.parameters())
    st.success(
        f"Loaded **{model_name}** — {n_params:,} parameters on {loaded.device} ({loaded.dtype}), fingerprint `{loaded.fingerprint}`"
    )
except ColaError as exc:
    st.session_state["model_loaded"] = False
    st.error(f"{exc} — pick a built-in model above, or fix the path / hub id.")

infos = list_corpora()
st.subheader("Candidate corpora")
st.dataframe(pd.DataFrame([c.to_dict() for c in infos]), hide_index=True, width="stretch")
custom_corpora: dict[str, str] = dict(state.get("custom_corpora"))
fields = state.get("fields").strip() or None  # its widget is drawn below the tabs
u, h, g = st.tabs(["Upload a file", "Hugging Face dataset", "Self-generated (Ji et al.)"])
files = u.file_uploader(
    "Add your own corpus",
    type=[s.lstrip(".") for s in UPLOAD_SUFFIXES],
    accept_multiple_files=True,
    help="One text per paragraph (.txt) or per row with a 'text' field (.jsonl, .csv, .parquet)",
)
for f in files or []:
    try:
        custom_corpora.setdefault(str(store_upload(f.name, f.getvalue(), fields=fields)), f.name)
    except ColaError as exc:
        u.error(str(exc))
spec = h.text_input("Dataset", placeholder="hf:NAME[:CONFIG[:SPLIT]], e.g. hf:wikitext:wikitext-2-raw-v1:train")
if h.button("Add dataset", key="add_hf") and spec.strip():
    try:
        spec = spec.strip() if spec.strip().startswith("hf:") else f"hf:{spec.strip()}"
        load_records(spec, limit=3, fields=fields)  # reachable, and has the text field or the mapped columns
        custom_corpora[spec] = spec
    except ColaError as exc:
        h.error(str(exc))
g1, g2, g3 = g.columns(3)
gen_n = g1.number_input("Samples", 10, 5000, SelfGenConfig.n, step=10)
prefix_options = [c.name for c in infos] + list(custom_corpora)
gen_corpus = g2.selectbox(
    "Prefix corpus",
    prefix_options,
    index=prefix_options.index(SelfGenConfig.prefix_corpus),
    format_func=lambda c: custom_corpora.get(c, c),
    help=f"Each prompt is the first {SelfGenConfig.prefix_tokens} tokens of a document of this corpus",
)
gen_prefix = g3.text_input("Seed prefix", "", help="Overrides the prefix corpus: every text starts from this prompt")
if g.button("Generate from the model", key="self_generate") and loaded is not None:
    try:
        prefixes = (gen_prefix,) if gen_prefix else ()
        with st.spinner(f"Sampling {gen_n} texts from {model_name} …"):
            path = cached_self_corpus(loaded, SelfGenConfig(n=int(gen_n), prefix_corpus=gen_corpus, prefixes=prefixes))
        custom_corpora[str(path)] = f"self-generated ({gen_n})"
    except ColaError as exc:
        g.error(str(exc))
st.session_state["custom_corpora"] = custom_corpora
st.text_input(
    "Q&A columns of files and datasets (optional)",
    key="fields",
    placeholder="question=question,answer=answer[,rationale=rationale]",
    help="Maps a file's or dataset's columns to Question / Reasoning / Answer (GSM8K's '#### N' answers are parsed), "
    "so Stage 2's explicit reasoning format works on your own Q&A data. Blank: use the text column as it is.",
)
uploads = custom_corpora  # labels for every custom spec
options = [c.name for c in infos] + list(uploads)
st.multiselect("Corpora to curate from", options, key="corpora", format_func=lambda c: uploads.get(c, c))

st.subheader("Preview")
corpus = st.selectbox("Corpus", options, key="preview_corpus", format_func=lambda c: uploads.get(c, c))
split = st.radio("Split", ["pool", "probe", "heldout", "train"], horizontal=True, disabled=corpus in uploads)
try:
    records = load_records(corpus, "pool" if corpus in uploads else split, limit=5)
    st.dataframe(pd.DataFrame([{"id": r.id, "text": r.text} for r in records]), hide_index=True, width="stretch")
except ColaError as exc:
    st.error(str(exc))

st.subheader("Stage 1: which corpora match the capabilities to keep")
c1, c2, c3 = st.columns(3)
deployment = c1.radio("Deployment", ["general", "targeted"], horizontal=True, key="deployment")
target = c2.selectbox("Target capability", PROBES, disabled=deployment == "general", key="target")
alpha = c3.slider("α: activation ↔ token similarity", 0.0, 1.0, key="alpha", step=0.05)
if st.button("Score the corpora", key="score_stage1") and loaded is not None:
    try:
        with st.spinner("Embedding samples of each corpus and each capability's probes …"):
            st.session_state["stage1"] = score_corpora(
                loaded,
                state.get("corpora"),
                PROBES,
                state.space_settings().curation,  # the settings the space will be built with
                alpha,
                per_corpus=CurateConfig.stage1_samples,
                engine=state.engine(),
            )
    except ColaError as exc:
        st.error(str(exc))
table = st.session_state.get("stage1")
if table is None:
    st.caption(
        "Press **Score the corpora** to see how each candidate corpus corresponds to each capability (COLA Stage 1)."
    )
else:
    heat = table.pivot(index="corpus", columns="capability", values="score").rename(index=lambda c: uploads.get(c, c))
    left, right = st.columns([3, 2])
    left.plotly_chart(px.imshow(heat, text_auto=".2f", color_continuous_scale="Blues", aspect="auto"))
    try:
        mix = recommend_mix(table, deployment, target if deployment == "targeted" else None)
        right.dataframe(mix.rename(index=lambda c: uploads.get(c, c)).to_frame("recommended share").round(3))
        right.caption(
            "Shares of the calibration set per corpus, as Stage 1 recommends them; the pool is drawn in this mix "
            "when the space is built (choose below)."
        )
    except ColaError as exc:
        right.error(str(exc))

MIX_MODES = {"stage1": "Stage 1's recommended mix", "equal": "Equal shares (no Stage 1)", "custom": "My own shares"}
st.radio("The pool's mix", list(MIX_MODES), format_func=MIX_MODES.get, horizontal=True, key="mix_mode")
if state.get("mix_mode") == "custom":
    chosen = list(state.get("corpora"))
    start = {c: float(state.get("pool_mix").get(c, 1.0 / max(len(chosen), 1))) for c in chosen}
    if table is not None and not state.get("pool_mix"):
        recommended = recommend_mix(table, deployment, target if deployment == "targeted" else None)
        start = {c: float(recommended.get(c, 0.0)) for c in chosen}
    edited = st.data_editor(
        pd.DataFrame({"corpus": chosen, "share": [start[c] for c in chosen]}),
        disabled=["corpus"],
        hide_index=True,
        key="pool_mix_editor",
    )
    st.session_state["pool_mix"] = dict(zip(edited["corpus"], edited["share"].astype(float), strict=True))

st.subheader("Stage 2: compositional properties")
st.selectbox(
    "Preset",
    ["", *PRESETS],
    key="preset",
    format_func=lambda p: p or "(none: the settings below)",
    on_change=state.apply_preset,
    args=(context_length(loaded.model) if loaded is not None else None,),
    help="paper: He et al.'s 128 samples of 2,048 tokens (capped by the model's context), all layers, 64-d, "
    "k-means nearest to centroids; paper-awq: 512 tokens. See docs/method.md.",
)
s1, s2, s3, s4, s5 = st.columns(5)
s1.number_input("Sequence length (tokens)", 8, 8192, key="seqlen")
s2.selectbox(
    "Reasoning format",
    ["keep", "explicit", "plain"],
    key="reasoning_format",
    help="explicit: worked steps kept visible; plain: answers only",
)
s3.checkbox("Remove (near-)duplicates", key="dedupe")
s4.slider("Drop the worst perplexity fraction", 0.0, 0.5, key="drop_worst_perplexity", step=0.05)
s5.checkbox(
    "Score perplexity",
    key="score_perplexity",
    help="One extra forward pass over the pool; colours the map by perplexity",
)
st.caption("Applied when the space is built on the next page.")
flow.link("pages/space.py", "Next: build the activation space →")
