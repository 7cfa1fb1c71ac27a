"""Charts as inline SVG text for the self-contained HTML report (html_report.py): no JavaScript, no
fonts and no images from anywhere, so the file reads the same opened from disk with no network.

Three shapes: an interval chart (a point and its 95% interval per row, against a reference line),
a line chart (per-layer reconstruction error) and a scatter (the 2-D map of a pool and its
selection). Each returns one ``<svg>`` element with a fixed pixel size and a ``viewBox``, so it has
a real box even before the page is laid out."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from cola_core.app.palette import colours_of

PALETTE = ("#1f6fb4", "#e0702b", "#2c9c55", "#c23b3b", "#7d5cb8", "#8c6239", "#d05fa8", "#6f7782")
CHAR_WIDTH = 7.0  # px per character of 12 px system-ui text, generously (labels are right-aligned)
FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"'


@dataclass(frozen=True)
class IntervalRow:
    """One row of an interval chart: a label, a point and its interval (NaN: not available)."""

    label: str
    value: float
    low: float
    high: float
    colour: str = PALETTE[0]


def _finite(*xs: float) -> bool:
    return all(x is not None and math.isfinite(x) for x in xs)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [lo, hi]."""
    if not _finite(lo, hi) or hi <= lo:
        return [lo] if _finite(lo) else []
    raw = (hi - lo) / max(count - 1, 1)
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if raw <= m * step)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(x: float) -> str:
    return f"{x:g}" if abs(x) >= 0.01 or x == 0 else f"{x:.1e}"


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" {FONT} font-size="12">'
    )
    return "\n".join([head, f"<title>{escape(title)}</title>", *body, "</svg>"])


def _axis_x(ticks: Sequence[float], x_of, top: float, bottom: float, label: str, mid: float) -> list[str]:
    out = []
    for t in ticks:
        x = x_of(t)
        out.append(f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" stroke="#e3e6ea"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 14:.1f}" text-anchor="middle" fill="#444">{_fmt(t)}</text>')
    out.append(f'<text x="{mid:.1f}" y="{bottom + 30:.1f}" text-anchor="middle" fill="#222">{escape(label)}</text>')
    return out


def interval_chart(rows: Sequence[IntervalRow], *, title: str, x_label: str, reference: float | None = None) -> str:
    """Horizontal point-and-whisker chart, one row each; a dashed line at ``reference`` (1 for
    retention, 0 for a difference). Rows with no finite value are drawn as "n/a"."""
    plot_w, row_h, top = 420, 24, 28
    label_width = min(460, max(120, int(max((len(r.label) for r in rows), default=0) * CHAR_WIDTH) + 20))
    width, height = label_width + plot_w + 30, top + row_h * max(len(rows), 1) + 44
    values = [v for r in rows for v in (r.value, r.low, r.high) if _finite(v)]
    values += [reference] if reference is not None else []
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (hi - lo) * 0.06 or 0.05
    lo, hi = lo - pad, hi + pad

    def x_of(v: float) -> float:
        return label_width + (v - lo) / (hi - lo) * plot_w

    bottom = top + row_h * max(len(rows), 1)
    body = [f'<text x="4" y="16" font-weight="600" fill="#222">{escape(title)}</text>']
    body += _axis_x(nice_ticks(lo, hi), x_of, top, bottom, x_label, label_width + plot_w / 2)
    if reference is not None:
        x = x_of(reference)
        body.append(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{bottom:.1f}" stroke="#555" stroke-dasharray="4 3"/>'
        )
    for i, r in enumerate(rows):
        y = top + row_h * i + row_h / 2
        body.append(
            f'<text x="{label_width - 8}" y="{y + 4:.1f}" text-anchor="end" fill="#222">{escape(r.label)}</text>'
        )
        if _finite(r.low, r.high):
            body.append(
                f'<line x1="{x_of(r.low):.1f}" y1="{y:.1f}" x2="{x_of(r.high):.1f}" y2="{y:.1f}" '
                f'stroke="{r.colour}" stroke-width="2"/>'
            )
        if _finite(r.value):
            body.append(f'<circle cx="{x_of(r.value):.1f}" cy="{y:.1f}" r="4.5" fill="{r.colour}"/>')
        else:
            body.append(f'<text x="{label_width + 4}" y="{y + 4:.1f}" fill="#888">n/a</text>')
    return _svg(width, height, body, title)


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str, x_label: str, y_label: str) -> str:
    """One polyline with markers per series (label → [(x, y)]), a legend below."""
    plot_w, plot_h, left, top = 520, 220, 64, 28
    names = list(series)
    legend_rows = math.ceil(len(names) / 2)
    width, height = left + plot_w + 30, top + plot_h + 46 + 18 * legend_rows
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts if _finite(y)]
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    y_lo, y_hi = 0.0, (max(ys) * 1.08 if ys and max(ys) > 0 else 1.0)
    x_hi = x_hi if x_hi > x_lo else x_lo + 1

    def x_of(v: float) -> float:
        return left + (v - x_lo) / (x_hi - x_lo) * plot_w

    def y_of(v: float) -> float:
        return top + plot_h - (v - y_lo) / (y_hi - y_lo) * plot_h

    bottom = top + plot_h
    body = [f'<text x="4" y="16" font-weight="600" fill="#222">{escape(title)}</text>']
    body += _axis_x(nice_ticks(x_lo, x_hi, min(6, int(x_hi - x_lo) + 1)), x_of, top, bottom, x_label, left + plot_w / 2)
    for t in nice_ticks(y_lo, y_hi):
        y = y_of(t)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e3e6ea"/>')
        body.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#444">{_fmt(t)}</text>')
    body.append(
        f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" fill="#222" '
        f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">{escape(y_label)}</text>'
    )
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        pts = [(x_of(x), y_of(y)) for x, y in series[name] if _finite(y)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        body += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in pts]
        lx, ly = left + (i % 2) * (plot_w / 2), bottom + 46 + 18 * (i // 2)
        body.append(f'<rect x="{lx:.1f}" y="{ly - 9:.1f}" width="12" height="4" fill="{colour}"/>')
        body.append(f'<text x="{lx + 18:.1f}" y="{ly - 3:.1f}" fill="#222">{escape(name)}</text>')
    return _svg(width, height, body, title)


def scatter_map(
    xy: Sequence[tuple[float, float]],
    groups: Sequence[str],
    selected: Sequence[bool],
    *,
    title: str,
    size: int = 300,
    probes: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    covered: Mapping[str, Sequence[bool]] | None = None,
) -> str:
    """The 2-D map: every pool sample as a small faint dot coloured by its corpus (the dashboard's
    hues, :mod:`cola_core.app.palette`), the selected ones as larger dots with a dark ring, and each
    capability's held-out probes as diamonds in their corpus's hue — filled where the set covers the
    probe, hollow where it misses it; a legend below."""
    pad, top = 12, 26
    probes = {k: list(v) for k, v in (probes or {}).items()}
    names = sorted(set(groups))
    colour = colours_of([*names, *probes])
    width, height = size + 2 * pad, top + size + pad + 18 * (len(names) + len(probes) + 1)
    every = [*xy, *(p for points in probes.values() for p in points)]
    xs, ys = [p[0] for p in every], [p[1] for p in every]
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    y_lo, y_hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
    span = max(x_hi - x_lo, y_hi - y_lo) or 1.0

    inner, margin = size * 0.92, size * 0.04  # points stay inside the frame, rings included

    def at(x: float, y: float) -> tuple[float, float]:
        cx = pad + margin + ((x - x_lo) + (span - (x_hi - x_lo)) / 2) / span * inner
        cy = top + margin + inner - ((y - y_lo) + (span - (y_hi - y_lo)) / 2) / span * inner
        return cx, cy

    def diamond(cx: float, cy: float, fill: str, stroke: str, r: float = 3.6) -> str:
        points = f"{cx:.1f},{cy - r:.1f} {cx + r:.1f},{cy:.1f} {cx:.1f},{cy + r:.1f} {cx - r:.1f},{cy:.1f}"
        return f'<polygon points="{points}" fill="{fill}" stroke="{stroke}" stroke-width="1.1"/>'

    body = [
        f'<text x="4" y="16" font-weight="600" fill="#222">{escape(title)}</text>',
        f'<rect x="{pad}" y="{top}" width="{size}" height="{size}" fill="#fafbfc" stroke="#d0d4d9"/>',
    ]
    order = sorted(range(len(xy)), key=lambda i: selected[i])  # the selection is drawn on top
    for i in order:
        cx, cy = at(*xy[i])
        if selected[i]:
            body.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4.2" fill="{colour[groups[i]]}" stroke="#111" stroke-width="1.2"/>'
            )
        else:
            body.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.2" fill="{colour[groups[i]]}" fill-opacity="0.35"/>')
    hits = {k: list((covered or {}).get(k, [False] * len(v))) for k, v in probes.items()}
    for capability, points in probes.items():
        for (x, y), hit in zip(points, hits[capability], strict=True):
            body.append(diamond(*at(x, y), colour[capability] if hit else "#fff", colour[capability]))
    y = top + size + pad + 12
    for g in names:
        body.append(f'<circle cx="{pad + 6}" cy="{y - 4}" r="4" fill="{colour[g]}"/>')
        body.append(f'<text x="{pad + 16}" y="{y}" fill="#222">{escape(g)}</text>')
        y += 18
    for capability in probes:
        body.append(diamond(pad + 6, y - 4, colour[capability], colour[capability]))
        n_hit = sum(map(bool, hits[capability]))
        text = f"{capability} probes: {n_hit} of {len(hits[capability])} covered (filled), the rest hollow"
        body.append(f'<text x="{pad + 16}" y="{y}" fill="#222">{escape(text)}</text>')
        y += 18
    body.append(f'<circle cx="{pad + 6}" cy="{y - 4}" r="4.2" fill="#fff" stroke="#111" stroke-width="1.2"/>')
    body.append(f'<text x="{pad + 16}" y="{y}" fill="#222">selected ({sum(map(bool, selected))} of {len(xy)})</text>')
    return _svg(width, height, body, title)
