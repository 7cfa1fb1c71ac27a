"""Plotly figures for the dashboard (drawing only; the data come from cola_core)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from cola_core.curation.map2d import Density

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d"]


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
) -> go.Figure:
    """WebGL scatter, one trace per colour value; customdata carries the global sample id, since
    point indices count within a trace. Chosen samples are drawn large and ringed; when a selection
    exists, the others are greyed (never hidden). ``density`` (all points, when only some are drawn)
    is shaded underneath."""
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
