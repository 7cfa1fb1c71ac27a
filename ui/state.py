"""The one module that owns the dashboard's ``st.session_state`` keys and their defaults."""

from __future__ import annotations

from typing import Any

import streamlit as st

from cola_core.app.workspace import SpaceSettings
from cola_core.curation.activations import ActivationConfig
from cola_core.curation.pipeline import CurateConfig
from cola_core.curation.processing import ProcessingConfig
from cola_core.engine.config import EngineConfig
from cola_core.models.loading import DEFAULT_MODEL

# Every pipeline setting's default is its config dataclass's own (tests/test_defaults.py checks).
_C, _P, _A, _E = CurateConfig, ProcessingConfig, ActivationConfig, EngineConfig

DEFAULTS: dict[str, Any] = {
    "model_name": DEFAULT_MODEL,  # the picker's value
    "model": DEFAULT_MODEL,  # the model in use: the picker's, or the typed path / hub id once it loaded
    "model_loaded": False,  # Setup loaded the model in this session (the landing page's stepper reads it)
    "device": "auto",
    "engine": _E.kind,  # local | ray (activation extraction)
    "ray_address": "",  # blank: a local Ray instance
    "ray_workers": _E.workers,
    "corpora": list(_C.corpora),
    "custom_corpora": {},  # spec (stored upload, hf:…, self-generated file) → label shown
    "deployment": _C.deployment,
    "target": "math",
    "seqlen": _P.seqlen,
    "reasoning_format": _P.reasoning_format,
    "dedupe": _P.dedupe,
    "drop_worst": _P.drop_worst_perplexity,
    "score_ppl": SpaceSettings.score_perplexity,
    "alpha": _C.alpha,  # Stage 1: activation vs token similarity
    "mix_mode": "stage1",  # the pool's mix: stage1 (Stage 1 recommends) | equal | custom (pool_mix)
    "pool_mix": {},  # corpus → share, when mix_mode is custom
    "preset": "",  # "" or a key of cola_core.curation.presets.PRESETS
    "fields": "",  # Q&A columns of files and datasets; "" = texts as they are
    "preview_corpus": "math",
    "pool_size": _C.pool_size,
    "layers_text": "",
    "pooling": _A.pooling,
    "space_ready": False,
    "strategy": "tradeoff",  # on purpose: the dashboard opens on the λ slider; CLI/library use the paper's cola
    "n": _C.n,
    "lam": _C.lam,
    "seed": _C.seed,
    "include": [],
    "exclude": [],
    "colour_by": "corpus",
    "layout": "PCA (instant)",
    "show_probes": True,  # the held-out capability probes drawn on the space page's map
    "demo_landed": None,  # None: this session never started the demo; False: started, not yet shown on Compare
    # Compare's A/B of calibration sets (cola_core/app/ab.py)
    "ab_compression": "",  # the compression setting the sets are compared under
    "ab_chosen_for": "",  # the setting the current choice of sets was made for ("" before the first)
    "ab_sets": [],  # set_groups' group values
    "ab_reference": "",  # one of ab_sets
    "ab_maps": True,  # draw each set's map (rebuilds experiment sets from the activation cache)
    "ab_map_seed": 0,  # the seed whose calibration set each map shows
}


def init() -> None:
    """Defaults for missing keys; re-assigning the present ones keeps widget-bound values (e.g. Stage 2
    settings on Setup) alive when the page that draws the widget is not shown."""
    for key, value in DEFAULTS.items():
        st.session_state[key] = st.session_state.get(key, value)


def get(key: str) -> Any:
    st.session_state.setdefault(key, DEFAULTS[key])
    return st.session_state[key]


def engine() -> EngineConfig:
    """The engine chosen on Setup (activation extraction runs there)."""
    if get("engine") != "ray":
        return EngineConfig()
    return EngineConfig(kind="ray", address=get("ray_address").strip() or None, workers=int(get("ray_workers")))


def space_settings() -> SpaceSettings:
    """The space the current session asks for: its corpora, Stage 1 mix, Stage 2 and activation settings."""
    layers = tuple(int(x) for x in get("layers_text").split(",") if x.strip()) or None
    targeted = get("deployment") == "targeted"
    mix_mode = get("mix_mode")
    custom = tuple((c, float(w)) for c, w in get("pool_mix").items() if c in get("corpora"))
    return SpaceSettings(
        model=get("model"),
        corpora=tuple(get("corpora")),
        pool_size=int(get("pool_size")),
        layers=layers,
        pooling=get("pooling"),
        seqlen=int(get("seqlen")),
        device=get("device"),
        reasoning_format=get("reasoning_format"),
        dedupe=bool(get("dedupe")),
        drop_worst_perplexity=float(get("drop_worst")),
        score_perplexity=bool(get("score_ppl")),
        stage1=mix_mode != "equal",
        deployment=get("deployment"),
        target=get("target") if targeted else None,
        alpha=float(get("alpha")),
        mix=custom if mix_mode == "custom" else (),
        fields=get("fields").strip() or None,
    )


def apply_preset(max_positions: int | None) -> None:
    """Widget callback: put the chosen preset's values into the session (sequence length capped by the
    model's context); the user can still change each one afterwards."""
    from cola_core.curation.presets import cap_seqlen, preset

    name = get("preset")
    if not name:
        return
    values = preset(name)
    st.session_state.update(
        seqlen=cap_seqlen(values["seqlen"], max_positions),
        n=values["n"],
        strategy=values["strategy"],
        alpha=values["alpha"],
        layers_text="",
    )
