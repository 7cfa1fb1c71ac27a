"""The landing page's diagram of COLA's three stages (He et al., NeurIPS 2025, §4), as an inline SVG
string: drawn here, no network asset, readable by tests."""

from __future__ import annotations

from html import escape
from itertools import pairwise

import numpy as np

WIDTH, HEIGHT = 1000, 236
BOX_W, BOX_H, BOX_Y = 240, 204, 16
BOX_X = (106, 374, 642)
STAGES = (
    (
        "1 · Which data",
        "#2563eb",
        ("Datasets chosen by their", "domain correspondence to", "the capabilities to keep"),
    ),
    (
        "2 · How it is shaped",
        "#16a34a",
        ("Compositional properties:", "sequence length, reasoning", "format, quality"),
    ),
    (
        "3 · Which samples",
        "#9333ea",
        ("All-layer activations →", "random projection → k-means", "(k = n) → nearest to each centroid"),
    ),
)


def _text(x: float, y: float, text: str, size: int = 13, weight: str = "normal", fill: str = "#111827") -> str:
    return (
        f'<text x="{x:.0f}" y="{y:.0f}" font-size="{size}" font-weight="{weight}" fill="{fill}" '
        f'font-family="sans-serif">{escape(text)}</text>'
    )


def _arrow(x1: float, x2: float, y: float) -> str:
    return (
        f'<line x1="{x1}" y1="{y}" x2="{x2 - 8}" y2="{y}" stroke="#6b7280" stroke-width="2"/>'
        f'<polygon points="{x2},{y} {x2 - 9},{y - 5} {x2 - 9},{y + 5}" fill="#6b7280"/>'
    )


def _mix_bars(x: float, y: float, colour: str) -> str:
    """Stage 1: the pool's mix, one bar per candidate corpus."""
    bars = [("prose", 0.55), ("code", 0.8), ("math", 1.0), ("facts", 0.35)]
    out = []
    for i, (name, share) in enumerate(bars):
        yy = y + i * 15
        out.append(_text(x, yy + 9, name, 11, fill="#4b5563"))
        out.append(f'<rect x="{x + 42}" y="{yy}" width="{150 * share:.0f}" height="10" rx="2" fill="{colour}"/>')
    return "".join(out)


def _length_cut(x: float, y: float, colour: str) -> str:
    """Stage 2: texts cut to a sequence length (the dashed line), one shown with worked steps."""
    out = []
    for i, length in enumerate((170, 120, 205, 90)):
        yy = y + i * 15
        kept = min(length, 150)
        out.append(f'<rect x="{x}" y="{yy}" width="{kept}" height="8" rx="2" fill="{colour}" opacity="0.75"/>')
        if length > kept:
            out.append(f'<rect x="{x + kept + 2}" y="{yy}" width="{length - kept}" height="8" rx="2" fill="#d1d5db"/>')
    out.append(
        f'<line x1="{x + 151}" y1="{y - 4}" x2="{x + 151}" y2="{y + 60}" stroke="#dc2626" stroke-dasharray="3,3"/>'
    )
    return "".join(out)


def _centroids(x: float, y: float, colour: str) -> str:
    """Stage 3: a pool in three clusters, each centroid (+) and the sample nearest it (ringed)."""
    rng = np.random.default_rng(3)
    centres = np.array([[28.0, 20.0], [100.0, 42.0], [172.0, 16.0]])
    out = []
    for cx, cy in centres:
        pts = np.array([cx, cy]) + rng.normal(0, [11, 7], (10, 2))
        for px, py in pts:
            out.append(f'<circle cx="{x + px:.1f}" cy="{y + py:.1f}" r="3" fill="#9ca3af"/>')
        nx, ny = pts[np.argmin(((pts - [cx, cy]) ** 2).sum(1))]
        out.append(
            f'<circle cx="{x + nx:.1f}" cy="{y + ny:.1f}" r="6" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        out.append(
            f'<path d="M{x + cx - 5:.1f},{y + cy:.1f}h10M{x + cx:.1f},{y + cy - 5:.1f}v10" stroke="#111827" stroke-width="2"/>'
        )
    return "".join(out)


def stages_svg() -> str:
    """Candidate corpora → Stage 1 → Stage 2 → Stage 3 → calibration set, one line of SVG (Markdown
    would read indented lines as code)."""
    mid = BOX_Y + BOX_H / 2
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        'aria-label="COLA in three stages">',
        _text(4, mid - 8, "candidate", 13, "bold"),
        _text(4, mid + 10, "corpora", 13, "bold"),
        _arrow(72, BOX_X[0] - 4, mid),
    ]
    pictures = (_mix_bars, _length_cut, _centroids)
    for (title, colour, lines), x, picture in zip(STAGES, BOX_X, pictures, strict=True):
        parts.append(
            f'<rect x="{x}" y="{BOX_Y}" width="{BOX_W}" height="{BOX_H}" rx="10" fill="white" stroke="{colour}" stroke-width="2"/>'
        )
        parts.append(f'<rect x="{x}" y="{BOX_Y}" width="{BOX_W}" height="32" rx="10" fill="{colour}"/>')
        parts.append(f'<rect x="{x}" y="{BOX_Y + 22}" width="{BOX_W}" height="10" fill="{colour}"/>')
        parts.append(_text(x + 12, BOX_Y + 22, title, 15, "bold", "white"))
        parts += [_text(x + 12, BOX_Y + 54 + 17 * i, line) for i, line in enumerate(lines)]
        parts.append(picture(x + 16, BOX_Y + 122, colour))
    for left, right in pairwise(BOX_X):
        parts.append(_arrow(left + BOX_W + 4, right - 4, mid))
    end = BOX_X[-1] + BOX_W
    parts += [
        _arrow(end + 4, end + 30, mid),
        _text(end + 36, mid - 26, "n samples:", 13, "bold"),
        _text(end + 36, mid - 8, "calibration", 13, "bold"),
        _text(end + 36, mid + 10, "set", 13, "bold"),
        _text(end + 36, mid + 32, "→ compress", 12, fill="#4b5563"),
        _text(end + 36, mid + 48, "→ compare", 12, fill="#4b5563"),
        "</svg>",
    ]
    return "".join(parts)
