"""The one module that owns the dashboard's ``st.session_state`` keys and their defaults."""

from __future__ import annotations

from typing import Any

import streamlit as st

from cola_core.app.workspace import SpaceSettings
from cola_core.curation.pipeline import CurateConfig
from cola_core.engine.config import EngineConfig
from cola_core.models.loading import DEFAULT_MODEL
from cola_core.settings import flat_defaults, selection_settings

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
