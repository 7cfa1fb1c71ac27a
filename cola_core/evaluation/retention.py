"""Retention — how much of a capability a compressed model keeps — and the rank statistics the
Compare page and the experiment report share (He et al., NeurIPS 2025, §3 measure capability
preservation as the compressed model's score relative to the dense one).

- :func:`retention`: compressed ÷ dense (inverse for perplexity) with a paired-bootstrap interval;
- :func:`retention_rows`: a run's retention per capability against its dense run, from the run store;
- :func:`spearman`: rank correlation, NaN with fewer than three points.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cola_core.errors import ColaError
from cola_core.evaluation.runstore import RunStore
from cola_core.evaluation.suite import Score


def _value(items: np.ndarray, metric: str) -> np.ndarray:
    """Metric of (rounds × items × 2) resampled items."""
    ratio = items[..., 0].sum(-1) / np.maximum(items[..., 1].sum(-1), 1)
    return np.exp(ratio) if metric == "perplexity" else ratio


def retention(dense: Score, compressed: Score, seed: int = 0, rounds: int = 1000) -> tuple[float, float, float]:
    """(value, ci_low, ci_high) of compressed ÷ dense (inverse for perplexity), paired bootstrap."""
    if dense.metric != compressed.metric or len(dense.items) != len(compressed.items):
        raise ColaError(f"cannot compare {dense.capability} scores measured on different items")
    a, b = np.asarray(dense.items, dtype=np.float64), np.asarray(compressed.items, dtype=np.float64)

    def ratio(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        vx, vy = _value(x, dense.metric), _value(y, dense.metric)
        return vx / np.maximum(vy, 1e-12) if dense.metric == "perplexity" else vy / np.maximum(vx, 1e-12)

    value = float(ratio(a[None], b[None])[0])
    if len(a) < 2:
        return value, value, value
    idx = np.random.default_rng(seed).integers(0, len(a), size=(rounds, len(a)))
    lo, hi = np.percentile(ratio(a[idx], b[idx]), [2.5, 97.5])
    return value, float(lo), float(hi)


def retention_rows(store: RunStore, run_id: int, dense_run_id: int) -> list[dict[str, Any]]:
    """One row per capability of a finished run: dense and compressed scores with the compressed
    score's interval, and the retention with its interval."""
    dense = store.score_items(dense_run_id)
    rows = []
    for capability, s in store.score_items(run_id).items():
        value, lo, hi = retention(dense[capability], s)
        rows.append(
            {
                "capability": capability,
                "dense": dense[capability].score,
                "compressed": s.score,
                "ci_low": s.ci_low,
                "ci_high": s.ci_high,
                "retention": value,
                "ret_low": lo,
                "ret_high": hi,
            }
        )
    return rows


def spearman(x: pd.Series, y: pd.Series, min_points: int = 3) -> float:
    """Spearman rank correlation of two aligned series; NaN with fewer than ``min_points`` pairs."""
    if len(x) < min_points:
        return float("nan")
    return float(x.rank().corr(y.rank()))
