"""The one module that owns the dashboard's ``st.session_state`` keys and their defaults."""

from __future__ import annotations

from typing import Any

import streamlit as st

from cola_core.engine.config import EngineConfig

DEFAULTS: dict[str, Any] = {
    "model_name": "cola-tiny",  # the picker's value
    "model": "cola-tiny",  # the model in use: the picker's, or the typed path / hub id once it loaded
    "device": "auto",
    "engine": "local",  # local | ray (activation extraction)
    "ray_address": "",  # blank: a local Ray instance
    "ray_workers": 2,
    "corpora": ["prose", "code", "math", "facts"],
    "custom_corpora": {},  # spec (stored upload, hf:…, self-generated file) → label shown
    "deployment": "general",
    "target": "math",
    "seqlen": 128,
    "reasoning_format": "keep",
    "dedupe": True,
    "drop_worst": 0.0,
    "score_ppl": True,
    "preview_corpus": "math",
    "pool_size": 1000,
    "layers_text": "",
    "pooling": "mean",
    "space_ready": False,
    "strategy": "tradeoff",
    "n": 64,
    "lam": 0.5,
    "seed": 0,
    "include": [],
    "exclude": [],
    "colour_by": "corpus",
    "layout": "PCA (instant)",
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
