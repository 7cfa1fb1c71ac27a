"""The one module that owns the dashboard's ``st.session_state`` keys and their defaults."""

from __future__ import annotations

from typing import Any

import streamlit as st

DEFAULTS: dict[str, Any] = {
    "model_name": "cola-tiny",
    "device": "auto",
    "corpora": ["prose", "code", "math", "facts"],
    "preview_corpus": "math",
}


def init() -> None:
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)


def get(key: str) -> Any:
    init()
    return st.session_state[key]
