"""The one module that owns the dashboard's ``st.session_state`` keys and their defaults."""

from __future__ import annotations

from typing import Any

import streamlit as st

DEFAULTS: dict[str, Any] = {
    "model_name": "cola-tiny",
    "device": "auto",
    "corpora": ["prose", "code", "math", "facts"],
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
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)


def get(key: str) -> Any:
    init()
    return st.session_state[key]
