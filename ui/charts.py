"""Plotly figures for the dashboard (drawing only; the data come from cola_core)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go

from cola_core.curation.map2d import Density

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d"]
# Held-out capability probes: a shape and a dark colour each, so they read apart from the pool's dots.
PROBE_MARKERS = [
    ("diamond", "#111827"),
    ("cross", "#b45309"),
    ("triangle-up", "#be123c"),
    ("square", "#0f766e"),
    ("x", "#4c1d95"),
    ("star", "#1e3a8a"),
]
PROBE_PREFIX = "held-out probe: "  # the probe traces' names start with it


def capped_indices(groups: list[str], cap: int, seed: int = 0) -> np.ndarray:
    """At most ``cap`` points per group, so a big corpus cannot drown a small one."""
    rng = np.random.default_rng(seed)
    keep = []
    arr = np.asarray(groups)
    for g in sorted(set(groups)):
        idx = np.flatnonzero(arr == g)
        keep.append(idx if len(idx) <= cap else np.sort(rng.choice(idx, cap, replace=False)))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=int)


def space_map(
    xy: np.ndarray,
    colour: list[str],
    hover: list[str],
    shown: np.ndarray,
    chosen: set[int],
    title: str,
    density: Density | None = None,
    probes: Mapping[str, np.ndarray] | None = None,
) -> go.Figure:
    """WebGL scatter, one trace per colour value; customdata carries the global sample id, since
    point indices count within a trace. Chosen samples are drawn large and ringed; when a selection
    exists, the others are greyed (never hidden). ``density`` (all points, when only some are drawn)
    is shaded underneath; ``probes`` (capability → 2-D positions on this map) are drawn on top."""
    fig = go.Figure()
    if density is not None:
        fig.add_trace(
            go.Heatmap(
                x=density.x,
                y=density.y,
                z=np.log1p(density.counts),
                colorscale="Greys",
                showscale=False,
                zsmooth="best",
                opacity=0.5,
                name="density",
                hoverinfo="skip",
            )
        )
    colour_arr, hover_arr = np.asarray(colour), np.asarray(hover)
    for k, value in enumerate(sorted(set(colour_arr[shown].tolist()))):
        idx = shown[colour_arr[shown] == value]
        is_chosen = np.array([i in chosen for i in idx])
        opacity = np.where(is_chosen, 1.0, 0.25 if chosen else 0.7)
        fig.add_trace(
            go.Scattergl(
                x=xy[idx, 0],
                y=xy[idx, 1],
                mode="markers",
                name=str(value),
                customdata=idx,
                text=hover_arr[idx],
                hovertemplate="%{text}<extra>#%{customdata}</extra>",
                marker={
                    "color": PALETTE[k % len(PALETTE)],
                    "size": np.where(is_chosen, 10, 5),
                    "opacity": opacity,
                    "line": {"width": np.where(is_chosen, 1.5, 0), "color": "black"},
                },
            )
        )
    for capability, xy_probe in (probes or {}).items():
        add_probe_trace(fig, capability, xy_probe)
    fig.update_layout(
        title=title,
        height=560,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        dragmode="lasso",
        legend={"itemsizing": "constant"},
        xaxis={"visible": False},
        yaxis={"visible": False},
    )
    return fig


def add_probe_trace(fig: go.Figure, capability: str, xy: np.ndarray) -> None:
    """One capability's held-out probe points, in the next shape and colour no probe trace of ``fig``
    uses yet. They carry no customdata, so a lasso over them selects no pool sample."""
    k = sum(t.name.startswith(PROBE_PREFIX) for t in fig.data if t.name)
    symbol, colour = PROBE_MARKERS[k % len(PROBE_MARKERS)]
    fig.add_trace(
        go.Scattergl(
            x=xy[:, 0],
            y=xy[:, 1],
            mode="markers",
            name=f"{PROBE_PREFIX}{capability}",
            legendgroup="probes",
            hovertemplate=f"held-out {capability} probe<extra></extra>",
            marker={
                "symbol": symbol,
                "color": colour,
                "size": 8,
                "opacity": 0.85,
                "line": {"width": 1, "color": "white"},
            },
        )
    )


def quantile_bands(values: list[float], name: str, bands: int = 4) -> list[str]:
    """Categorical labels of quartile bands (e.g. 'perplexity 12–30'), for colouring a scatter."""
    arr = np.asarray(values, dtype=float)
    edges = np.quantile(arr, np.linspace(0, 1, bands + 1))
    which = np.clip(np.searchsorted(edges, arr, side="right") - 1, 0, bands - 1)
    return [f"{name} {edges[b]:.3g}–{edges[b + 1]:.3g}" for b in which]


def selected_ids(event) -> list[int]:
    """Global sample ids of the points a box/lasso selection hit (from customdata)."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return []
    return sorted({int(p["customdata"]) for p in points if "customdata" in p})
