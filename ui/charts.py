"""Plotly figures for the dashboard (drawing only; the data come from cola_core)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go

from cola_core.app.palette import PALETTE, colours_of
from cola_core.curation.map2d import Density

# Held-out capability probes: a shape each (pool samples are dots), in their corpus's hue.
PROBE_SHAPES = ["diamond", "cross", "triangle-up", "square", "x", "star"]
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
    excluded: set[int] | None = None,
) -> go.Figure:
    """WebGL scatter, one trace per colour value (a corpus always in its own hue); customdata carries
    the global sample id, since point indices count within a trace. Chosen samples are drawn large and
    ringed; when a selection exists, the others are greyed (never hidden). ``density`` (all points,
    when only some are drawn) is shaded underneath; ``probes`` (capability → 2-D positions on this
    map) are drawn on top in their corpus's hue; ``excluded`` samples are crossed out. The legend names
    what the rings and crosses mean."""
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
    hues = colours_of(colour_arr[shown].tolist())
    for value in sorted(set(colour_arr[shown].tolist())):
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
                    "color": hues[value],
                    "size": np.where(is_chosen, 10, 5),
                    "opacity": opacity,
                    "line": {"width": np.where(is_chosen, 1.5, 0), "color": "black"},
                },
            )
        )
    if excluded:
        out = np.asarray(sorted(excluded), dtype=int)
        fig.add_trace(
            go.Scattergl(
                x=xy[out, 0],
                y=xy[out, 1],
                mode="markers",
                name="excluded by you (×)",
                hoverinfo="skip",
                marker={"symbol": "x-thin", "size": 9, "line": {"width": 2, "color": "#111827"}},
            )
        )
    if chosen:  # a legend entry for the rings (the traces above are per colour value)
        fig.add_trace(
            go.Scattergl(
                x=[None],
                y=[None],
                mode="markers",
                name="chosen (large, ringed)",
                marker={"color": "white", "size": 10, "line": {"width": 1.5, "color": "black"}},
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
    """One capability's held-out probe points, in the next shape no probe trace of ``fig`` uses yet and
    in their corpus's hue. They carry no customdata, so a lasso over them selects no pool sample."""
    k = sum(t.name.startswith(PROBE_PREFIX) for t in fig.data if t.name)
    symbol, colour = PROBE_SHAPES[k % len(PROBE_SHAPES)], colours_of([capability])[capability]
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


def retention_by_set(table, reference: str) -> go.Figure:
    """Mean retention per capability, one bar per calibration set with its 95% interval (the
    hierarchical bootstrap over seeds and items); the reference set drawn first and named as such."""
    fig = go.Figure()
    groups = list(dict.fromkeys([reference, *table["group"]]))
    for k, group in enumerate(groups):
        g = table[table["group"] == group]
        fig.add_trace(
            go.Bar(
                x=g["capability"],
                y=g["mean"],
                name=f"{group} (reference)" if group == reference else group,
                marker={"color": PALETTE[k % len(PALETTE)]},
                error_y={"type": "data", "array": g["ci_high"] - g["mean"], "arrayminus": g["mean"] - g["ci_low"]},
                hovertemplate="%{x}: %{y:.3f}<extra>" + group + "</extra>",
            )
        )
    fig.add_hline(y=1.0, line_dash="dot", annotation_text="dense", annotation_position="top left")
    fig.update_layout(
        barmode="group",
        height=380,
        yaxis_title="retention (compressed ÷ dense)",
        legend={"orientation": "h", "y": 1.12, "title": ""},
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


VERDICT_COLOURS = {
    "supported": "#16a34a",
    "contradicted": "#dc2626",
    "inconclusive": "#6b7280",
    "untestable": "#ca8a04",
}


def differences_forest(diff, reference: str) -> go.Figure:
    """Each set's difference from the reference per capability with its 95% interval over the held-out
    items (the A/B test's own, :func:`cola_core.experiments.claims.judge_on_items`), coloured by
    verdict, against a line at 0."""
    fig = go.Figure()
    rows = diff.iloc[::-1]
    low, high = rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float)
    labels = [f"{r.capability} · {r.group}" for r in rows.itertuples()]
    for verdict, colour in VERDICT_COLOURS.items():
        mask = (rows["verdict"] == verdict).to_numpy()
        if not mask.any():
            continue
        d = rows["difference"].to_numpy(float)[mask]
        fig.add_trace(
            go.Scatter(
                x=d,
                y=np.asarray(labels)[mask],
                mode="markers",
                name=verdict,
                marker={"color": colour, "size": 10},
                error_x={"type": "data", "array": high[mask] - d, "arrayminus": d - low[mask], "color": colour},
                hovertemplate="%{y}: %{x:+.3f}<extra>" + verdict + "</extra>",
            )
        )
    fig.add_vline(x=0, line_dash="dot")
    fig.update_layout(
        height=max(220, 34 * len(rows) + 90),
        xaxis_title=f"retention difference vs {reference} (95% interval over the held-out items)",
        yaxis={"type": "category", "categoryorder": "array", "categoryarray": labels},
        legend={"orientation": "h", "y": 1.08, "title": ""},
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


def calibration_set_map(
    xy: np.ndarray,
    corpus: list[str],
    chosen: list[int],
    probes: Mapping[str, np.ndarray],
    covered: Mapping[str, np.ndarray],
    title: str,
    ranges: tuple[tuple[float, float], tuple[float, float]] | None = None,
    corpus_order: list[str] | None = None,
) -> go.Figure:
    """One calibration set on the comparison's shared map: its pool in grey, its samples coloured by
    corpus, and each capability's held-out probes in their own shape and their corpus's hue — filled
    where the set covers the probe, hollow where it misses it. ``ranges`` gives every map of a
    comparison the same axes; a corpus has the same hue on every map (:func:`colours_of`)."""
    fig = go.Figure()
    fig.add_trace(
        go.Scattergl(
            x=xy[:, 0],
            y=xy[:, 1],
            mode="markers",
            name="pool",
            marker={"color": "#d1d5db", "size": 4},
            hoverinfo="skip",
        )
    )
    corpora = np.asarray(corpus)
    picked = np.asarray(chosen, dtype=int)
    order = corpus_order or sorted(set(corpora.tolist()))
    hues = colours_of([*order, *probes])
    for name in sorted(set(corpora[picked].tolist()), key=order.index):
        idx = picked[corpora[picked] == name]
        fig.add_trace(
            go.Scatter(
                x=xy[idx, 0],
                y=xy[idx, 1],
                mode="markers",
                name=f"chosen: {name}",
                marker={"color": hues[name], "size": 12, "line": {"width": 1.5, "color": "black"}},
                hovertemplate=f"chosen {name} sample<extra></extra>",
            )
        )
    for k, (capability, points) in enumerate(probes.items()):
        symbol, colour = PROBE_SHAPES[k % len(PROBE_SHAPES)], hues[capability]
        hit = np.asarray(covered.get(capability, np.zeros(len(points), bool)))
        for mask, word, shape in ((hit, "covered", symbol), (~hit, "missed", f"{symbol}-open")):
            fig.add_trace(
                go.Scatter(
                    x=points[mask, 0],
                    y=points[mask, 1],
                    mode="markers",
                    name=f"{capability} probes {word}: {int(mask.sum())}/{len(hit)}",
                    legendgroup=capability,
                    marker={"symbol": shape, "color": colour, "size": 6, "opacity": 0.6},
                    hovertemplate=f"held-out {capability} probe, {word}<extra></extra>",
                )
            )
    axes = [{"visible": False} | ({"range": list(r)} if r else {}) for r in (ranges or (None, None))]
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        height=430,
        margin={"l": 5, "r": 5, "t": 40, "b": 5},
        legend={"orientation": "h", "y": -0.02, "yanchor": "top", "font": {"size": 11}},
        xaxis=axes[0],
        yaxis=axes[1],
    )
    return fig
