"""The one module that owns the dashboard's ``st.session_state`` keys and their defaults."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import streamlit as st

from cola_core.app.workspace import SpaceSettings
from cola_core.curation.pipeline import CurateConfig
from cola_core.engine.config import EngineConfig
from cola_core.models.loading import DEFAULT_MODEL
from cola_core.paths import cache_root
from cola_core.settings import flat_defaults, selection_settings
from cola_core.storage.atomic import atomic_write_text

_E = EngineConfig

# Every curation setting is a session key named like its field, holding the config's default until
# a widget with that key changes it: a new setting with a widget needs no line here. Where the page
# shows a setting in another form, the form has its own key (WIDGET_FORMS) and space_settings()
# turns it back into the setting.
WIDGET_FORMS = {"layers": "layers_text", "stage1": "mix_mode", "mix": "pool_mix"}
CURATION = {k: v for k, v in flat_defaults(CurateConfig).items() if k not in WIDGET_FORMS}
DASHBOARD_CHOICES = {  # where the dashboard's starting value differs from the library's, on purpose
    "strategy": "tradeoff",  # the dashboard opens on the λ slider; CLI/library use the paper's cola
    "target": "math",  # preselected for a targeted deployment (unused while general)
    "fields": "",  # a text box: "" = texts as they are
}

DEFAULTS: dict[str, Any] = {
    **CURATION,
    **DASHBOARD_CHOICES,
    "model_name": DEFAULT_MODEL,  # the picker's value
    "model": DEFAULT_MODEL,  # the model in use: the picker's, or the typed path / hub id once it loaded
    "model_loaded": False,  # Setup loaded the model in this session (the landing page's stepper reads it)
    "device": "auto",
    "engine": _E.kind,  # local | ray (activation extraction)
    "ray_address": "",  # blank: a local Ray instance
    "ray_workers": _E.workers,
    "corpora": list(CURATION["corpora"]),  # a multiselect holds a list
    "custom_corpora": {},  # spec (stored upload, hf:…, self-generated file) → label shown
    "score_perplexity": SpaceSettings.score_perplexity,
    "mix_mode": "stage1",  # the pool's mix: stage1 (Stage 1 recommends) | equal | custom (pool_mix)
    "pool_mix": {},  # corpus → share, when mix_mode is custom
    "preset": "",  # "" or a key of cola_core.curation.presets.PRESETS
    "preview_corpus": "math",
    "layers_text": "",
    "space_ready": False,
    "include": [],
    "exclude": [],
    "colour_by": "corpus",
    "layout": "PCA (instant)",
    "show_probes": True,  # the held-out capability probes drawn on the space page's map
    "launched": [],  # run ids this session queued (Compress) or ran (the demo): the stepper reads them
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
    settings on Setup) alive when the page that draws the widget is not shown. Then the session's
    state is restored from, or saved to, the server (:func:`_persist`)."""
    for key, value in DEFAULTS.items():
        st.session_state[key] = st.session_state.get(key, value)
    _persist()


# State that survives a reload and travels with a link (issue #30), as Nomic Atlas keeps a view in its
# URL: the URL holds ?session=<id>; the server keeps the session's settings under cache/sessions/<id>.json
# (the model, corpora, every curation setting, λ, n, the strategy, lasso edits, Compare's choice of sets).
SESSION_PARAM = "session"
_SESSION_ID = re.compile(r"[0-9a-f]{32}")
PERSISTED = tuple(k for k, v in DEFAULTS.items() if isinstance(v, str | int | float | bool | list | tuple | dict))


def _session_file(session: str) -> Path:
    return cache_root() / "sessions" / f"{session}.json"


def _persist() -> None:
    """The first run of a browser session with ``?session=<id>`` restores what that id saved; every
    later run saves what changed. A new session gets a fresh id in its URL; a malformed id is replaced
    (it names a file)."""
    session = st.session_state.get("_session") or st.query_params.get(SESSION_PARAM, "")
    if not _SESSION_ID.fullmatch(session):
        session = uuid.uuid4().hex
    if st.query_params.get(SESSION_PARAM) != session:
        st.query_params[SESSION_PARAM] = session  # put back after a page switch drops it
    path = _session_file(session)
    if st.session_state.get("_session") != session:  # this browser session's first run
        st.session_state["_session"] = session
        try:
            saved = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, json.JSONDecodeError):
            saved = {}  # an unreadable save restores nothing; the next change rewrites it
        for key, value in saved.items():
            if key in PERSISTED:
                st.session_state[key] = tuple(value) if isinstance(DEFAULTS[key], tuple) else value
        st.session_state["_saved"] = {k: st.session_state[k] for k in PERSISTED}
        return
    now = {k: st.session_state[k] for k in PERSISTED}
    if now != st.session_state.get("_saved"):
        atomic_write_text(path, json.dumps(now, default=list))
        st.session_state["_saved"] = now


def get(key: str) -> Any:
    st.session_state.setdefault(key, DEFAULTS[key])
    return st.session_state[key]


def engine() -> EngineConfig:
    """The engine chosen on Setup (activation extraction runs there)."""
    if get("engine") != "ray":
        return EngineConfig()
    return EngineConfig(kind="ray", address=get("ray_address").strip() or None, workers=int(get("ray_workers")))


def space_settings() -> SpaceSettings:
    """The space the current session asks for: every curation setting in the session (Stage 1 mix,
    Stage 2, activations), Stage 3's left out, and the widget forms turned back into settings."""
    curation = {k: get(k) for k in CURATION if k not in selection_settings(CurateConfig)}
    mix_mode = get("mix_mode")
    custom = tuple((c, float(w)) for c, w in get("pool_mix").items() if c in get("corpora"))
    curation |= {
        "layers": tuple(int(x) for x in get("layers_text").split(",") if x.strip()) or None,
        "stage1": mix_mode != "equal",
        "mix": custom if mix_mode == "custom" else (),
        "target": get("target") if get("deployment") == "targeted" else None,
        "fields": (get("fields") or "").strip() or None,
    }
    return SpaceSettings.of(get("model"), get("device"), score_perplexity=bool(get("score_perplexity")), **curation)


def built_space() -> SpaceSettings | None:
    """The space this session built, or None: after a reload the space page has not run yet, so the
    settings are those the restored session asks for (the space itself comes from the caches)."""
    settings = st.session_state.get("space_settings")
    if settings is None and get("space_ready"):
        settings = st.session_state["space_settings"] = space_settings()
    return settings


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
