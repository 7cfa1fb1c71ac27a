"""Activation space: build the space, look at the map, tune the selection, edit it by lasso, export."""

from __future__ import annotations

import io
import json

import pandas as pd
import streamlit as st
from safetensors.torch import save as save_tensors

from cola_core.app.workspace import mix_table, prepare_space, probe_positions, probes_of, stage_trail
from cola_core.calibration.files import hf_dataset_zip, tokenize_calibration
from cola_core.corpora import Record, list_corpora
from cola_core.curation.map2d import MapConfig, density_grid, umap_2d, warm_up_state
from cola_core.curation.pipeline import measure, run_selection
from cola_core.curation.selection import BASELINE, REGISTRY, Selection, selection_strategy, strategies_for
from cola_core.curation.space import cluster_table
from cola_core.errors import ColaError
from cola_core.models.loading import load_model_cached
from ui import charts, flow, state

state.init()
st.title("Activation space")

with st.form("space"):
    c1, c2, c3, c4 = st.columns(4)
    uploads = state.get("custom_corpora")
    corpora = c1.multiselect(
        "Corpora",
        [c.name for c in list_corpora()] + list(uploads),
        default=state.get("corpora"),
        format_func=lambda c: uploads.get(c, c),
    )
    pool = c2.number_input("Pool size", 50, 20_000, state.get("pool_size"), step=50)
    layers_text = c3.text_input("Layers (blank = all, negative from the end)", state.get("layers_text"))
    pooling = c4.selectbox("Pooling", ["mean", "last"])
    build = st.form_submit_button("Build space", type="primary")

if build:
    st.session_state.update(
        corpora=corpora, pool_size=int(pool), layers_text=layers_text, pooling=pooling, space_ready=True
    )
if not st.session_state.get("space_ready"):
    st.info(
        "Choose corpora and press **Build space**: the model's activations of the pool are extracted (cached on disk), "
        "projected to 64 dimensions and clustered."
    )
    st.stop()

try:
    settings = state.space_settings()
    engine = state.engine()
    where = "here" if engine.kind == "local" else f"on Ray ({engine.workers} workers)"
    bar = st.progress(0.0, text=f"extracting activations {where} …")
    starting = f"starting {engine.workers} Ray workers, each loading the model" if engine.kind == "ray" else ""

    def show(done: int, total: int) -> None:
        text = f"extracting activations {where}: {done}/{total}"
        bar.progress(done / total, text=f"{text} ({starting} …)" if starting and not done else text)

    space = prepare_space(settings, progress=show, engine=engine)
    bar.empty()
except (ColaError, ValueError) as exc:
    st.error(
        f"Could not build the space: {exc} — change the corpora or pool size above (or the settings on Setup) and press **Build space** again."
    )
    st.stop()

st.session_state["space_settings"] = settings


@st.cache_data(max_entries=4, show_spinner=False)
def _dataset_zip(jsonl_text: str) -> bytes:
    return hf_dataset_zip([Record(**json.loads(line)) for line in jsonl_text.splitlines()])


records = space.records
st.caption(
    f"{len(records)} samples · {space.embedded.space.shape[1]}-d projected space · "
    f"{len(space.clusters.centers)} map clusters (for colouring and the cluster table; Stage 3's k-means uses k = n) · "
    f"model {settings.model} · engine: {(space.engine or engine).describe()}"
)

for (stage, line), col in zip(stage_trail(space).items(), st.columns(2), strict=True):
    col.markdown(f"**{stage}**  \n{line}")
st.markdown("**Stage 3 · which samples**: pick a strategy; the map shows the pool and the chosen samples.")

s1, s2, s3, s4 = st.columns([2, 1, 2, 1])
STRATEGY_HELP = "\n".join(f"- **{s.name}**: {s.description}" for s in REGISTRY.values())
offered = strategies_for(space.embedded.experts is not None)  # cola-experts for mixture-of-experts models
if st.session_state.get("strategy") not in offered:
    st.session_state["strategy"] = "cola"  # a MoE-only strategy kept from another model's space
strategy = s1.radio("Strategy", offered, horizontal=True, key="strategy", help=STRATEGY_HELP)
knobs = selection_strategy(strategy).knobs
s1.caption(selection_strategy(strategy).description)
n = s2.number_input("n", 1, len(records), min(state.get("n"), len(records)), key="n")
lam = s3.slider("λ: diversity ← → representativeness", 0.0, 1.0, key="lam", disabled="lam" not in knobs)
seed = s4.number_input("Seed", 0, 10_000, key="seed")

include, exclude = state.get("include"), state.get("exclude")
try:
    picked_config = settings.selection(int(n), strategy, lam, int(seed))
    forced, excluded = selection_strategy(strategy).edits(include, exclude)  # as Compress's sets apply them
    chosen_sel: Selection = run_selection(space.embedded, picked_config, forced, excluded, space.index)
    random_config = settings.selection(int(n), BASELINE, seed=int(seed))
    # fixed by the space, n and the seed: the user's edits move the selection, never the yardstick (issue #30)
    baseline = run_selection(space.embedded, random_config)
except ColaError as exc:
    st.error(str(exc))
    st.stop()
chosen = set(chosen_sel.indices.tolist())
try:
    with st.spinner("Embedding the held-out capability probes (once per space) …"):
        probes = probes_of(space)
except ColaError as exc:
    st.warning(f"No capability probes, so no capability coverage: {exc}")
    probes = {}

m_sel = measure(space.embedded, chosen_sel, probes, seed=int(seed))
m_base = measure(space.embedded, baseline, probes, seed=int(seed))
shown = [
    ("Representativeness", m_sel.representativeness, m_base.representativeness),
    ("Diversity (mean dist.)", m_sel.diversity_mean, m_base.diversity_mean),
    ("Diversity (min dist.)", m_sel.diversity_min, m_base.diversity_min),
    ("Cluster coverage", m_sel.cluster_coverage, m_base.cluster_coverage),
    ("Tokens", m_sel.tokens, m_base.tokens),
]
if m_sel.expert_coverage is not None:  # a mixture-of-experts model: experts the selection routes enough tokens to
    shown.insert(4, ("Expert coverage", m_sel.expert_coverage, m_base.expert_coverage))
cols = st.columns(len(shown))
for col, (label, a, b) in zip(
    cols,
    shown,
    strict=True,
):
    col.metric(
        label,
        f"{a:.3f}" if isinstance(a, float) else f"{a:,}",
        delta=f"{a - b:+.3f} vs random" if isinstance(a, float) else None,
    )
PROBE_HELP = "Held-out split of the built-in corpus of that name; the prose probes stand for the capability lm"
if probes:
    st.markdown(
        "**Capability coverage** — how close each held-out capability probe lies to its nearest chosen sample "
        "(mean cosine; the proxy Compare checks against measured retention):"
    )
    for col, (capability, value) in zip(st.columns(len(probes)), m_sel.capability_coverage.items(), strict=True):
        base = m_base.capability_coverage[capability]
        col.metric(f"{capability} probes", f"{value:.3f}", delta=f"{value - base:+.3f} vs random", help=PROBE_HELP)

left, right = st.columns([3, 1])
has_ppl = all("perplexity" in r.meta for r in records)
colour_by = right.radio(
    "Colour by", ["corpus", "cluster", "selection", "length"] + (["perplexity"] if has_ppl else []), key="colour_by"
)
layout = right.radio("Layout", ["PCA (instant)", "UMAP"], key="layout")
show_probes = right.toggle(
    "Held-out capability probes",
    key="show_probes",
    disabled=not probes,
    help="Each capability's probe points, placed on the same map as the pool",
)
cap = right.number_input("Max points drawn per corpus", 100, 20_000, 3000, step=100)
lengths = [r.meta.get("n_tokens", 0) for r in records]
colour = {
    "corpus": lambda: [r.corpus for r in records],
    "cluster": lambda: [f"cluster {c}" for c in space.clusters.labels],
    "selection": lambda: ["chosen" if i in chosen else "pool" for i in range(len(records))],
    "length": lambda: [f"{(t // 32) * 32}–{(t // 32) * 32 + 31} tokens" for t in lengths],
    "perplexity": lambda: charts.quantile_bands([r.meta["perplexity"] for r in records], "perplexity"),
}[colour_by]()
shown = charts.capped_indices([r.corpus for r in records], int(cap))
if len(shown) < len(records):
    right.caption(
        f"Drawing {len(shown)} of {len(records)} points (at most {cap} per corpus) over the shaded density of all."
    )
hover = [f"[{r.corpus}] {r.text[:120]}".replace("\n", " ") for r in records]
title = f"{strategy} · n={n}" + (f" · λ={lam:.2f}" if "lam" in knobs else "")
slot = left.empty()


def density_of(points):
    return density_grid(points) if len(shown) < len(records) else None


def probes_on(umap_xy=None):  # None: the PCA preview's plane
    return probe_positions(space, probes, umap_xy) if show_probes and probes else None


xy = space.preview
if layout == "UMAP":
    slot.plotly_chart(
        charts.space_map(
            xy,
            colour,
            hover,
            shown,
            chosen,
            f"PCA preview while UMAP computes · {title}",
            density_of(xy),
            probes_on(),
            excluded=set(exclude),
        ),
        key="map_preview",
    )
    waiting = {"compiling": " (numba is still compiling UMAP in the background, started when the app opened)"}
    with st.spinner(f"UMAP layout{waiting.get(warm_up_state(), '')}; cached on disk afterwards …"):
        xy = umap_2d(
            space.embedded.space,
            MapConfig(seed=settings.curation.seed),
            space_key=space.embedded.fingerprint + str(settings),
        )
fig = charts.space_map(
    xy,
    colour,
    hover,
    shown,
    chosen,
    title,
    density_of(xy),
    probes_on(xy if layout == "UMAP" else None),
    excluded=set(exclude),
)
event = slot.plotly_chart(fig, on_select="rerun", selection_mode=("points", "box", "lasso"), key="map")

picked = charts.selected_ids(event)
st.subheader(f"Lasso/box selection: {len(picked)} samples")
if picked:
    st.dataframe(
        pd.DataFrame(
            [
                {"id": i, "corpus": records[i].corpus, "chosen": i in chosen, "text": records[i].text[:200]}
                for i in picked
            ]
        ),
        hide_index=True,
        width="stretch",
        key="picked_table",
    )
    b1, b2, b3 = st.columns(3)
    if b1.button("Force into the calibration set"):
        st.session_state["include"] = sorted(set(include) | set(picked[: int(n)]) - set(exclude))
        st.rerun()
    if b2.button("Exclude from the calibration set"):
        st.session_state["exclude"] = sorted(set(exclude) | set(picked) - set(include))
        st.rerun()
else:
    st.caption("Draw a lasso or box on the map to list samples here and include or exclude them.")
if include or exclude:
    st.caption(f"Manual edits: {len(include)} forced in, {len(exclude)} excluded.")
    if st.button("Clear manual edits"):
        st.session_state.update(include=[], exclude=[])
        st.rerun()

st.subheader("Mix")
st.caption(
    "Samples per corpus: the pool Stage 3 drew from (after Stage 2), the selection, and the random baseline "
    "(n random samples of the whole pool at this seed: your inclusions and exclusions never move it)."
)
st.dataframe(
    mix_table(space, m_sel.mix, m_base.mix),
    column_config={c: st.column_config.NumberColumn(format="percent") for c in ("pool share", "selection share")},
    width="content",
)
short = chosen_sel.params.get("shortfall")
if short:
    given = ", ".join(f"{c} {k}" for c, k in short.items())
    st.caption(f"Quota not met for {given} (too few samples left): given to the other corpora by their shares.")

st.subheader("Clusters")
st.dataframe(
    cluster_table([r.text for r in records], [r.corpus for r in records], space.embedded.space, space.clusters),
    hide_index=True,
    width="stretch",
)

chosen_records = [records[i] for i in chosen_sel.indices]
jsonl = "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in chosen_records)
st.session_state["calibration_jsonl"] = jsonl
d1, d2, d3 = st.columns(3)
d1.download_button("Download calibration set (.jsonl)", jsonl, file_name="calib.jsonl", mime="application/jsonl")
d3.download_button(
    "Download as a datasets folder (.zip)",
    _dataset_zip(jsonl),
    file_name="calibration.zip",
    help="datasets.load_from_disk('calibration') after unzipping",
)

buf = io.BytesIO()
buf.write(
    save_tensors(
        tokenize_calibration(
            chosen_records,
            load_model_cached(settings.model, settings.device).tokenizer,
            settings.curation.processing.seqlen,
        )
    )
)
d2.download_button("Download token tensor (.safetensors)", buf.getvalue(), file_name="calib.safetensors")
flow.link("pages/compress.py", "Next: compress the model with this calibration set →")
