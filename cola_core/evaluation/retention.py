"""Retention — how much of a capability a compressed model keeps — and the rank statistics the
Compare page and the experiment report share (He et al., NeurIPS 2025, §3 measure capability
preservation as the compressed model's score relative to the dense one).

- :func:`retention`: compressed ÷ dense (inverse for perplexity) with a paired-bootstrap interval;
- :func:`retention_rows`: a run's retention per capability against its dense run, from the run store;
- :func:`bootstrap_seeds_and_items`: mean retention over seeds, resampled hierarchically — seeds,
  then items (texts, where tokens are scored) — for experiment intervals;
- :func:`spearman`: rank correlation, NaN with fewer than three points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from cola_core.errors import ColaError
from cola_core.evaluation.runstore import RunStore
from cola_core.evaluation.suite import Score


def _metric(num: np.ndarray, den: np.ndarray, metric: str) -> np.ndarray:
    """A score from summed item columns (Σ nll, Σ tokens → perplexity; Σ correct, Σ total → accuracy)."""
    ratio = num / np.maximum(den, 1)
    return np.exp(ratio) if metric == "perplexity" else ratio


def _value(items: np.ndarray, metric: str) -> np.ndarray:
    """Metric of (rounds × items × 2) resampled items."""
    return _metric(items[..., 0].sum(-1), items[..., 1].sum(-1), metric)


def _retention_of(compressed: np.ndarray, dense: np.ndarray, metric: str) -> np.ndarray:
    """Compressed ÷ dense, or dense ÷ compressed for perplexity (so that higher is better); NaN where
    the dense accuracy is 0 (nothing to retain: a ratio over 0 is not a retention)."""
    if metric == "perplexity":
        return dense / np.maximum(compressed, 1e-12)
    dense = np.asarray(dense, dtype=np.float64)
    return np.where(dense > 0, compressed / np.where(dense > 0, dense, 1.0), np.nan)


def retention(
    dense: Score, compressed: Score, seed: int = 0, rounds: int = 1000, level: float = 0.95
) -> tuple[float, float, float]:
    """(value, ci_low, ci_high) of compressed ÷ dense (inverse for perplexity), paired bootstrap; a
    ``level`` above 0.95 for a Bonferroni correction when several are read together."""
    if dense.metric != compressed.metric or len(dense.items) != len(compressed.items):
        raise ColaError(f"cannot compare {dense.capability} scores measured on different items")
    a, b = np.asarray(dense.items, dtype=np.float64), np.asarray(compressed.items, dtype=np.float64)

    def ratio(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return _retention_of(_value(y, dense.metric), _value(x, dense.metric), dense.metric)

    value = float(ratio(a[None], b[None])[0])
    if len(a) < 2:
        return value, value, value
    idx = np.random.default_rng(seed).integers(0, len(a), size=(rounds, len(a)))
    lo, hi = _nan_percentiles(ratio(a[idx], b[idx]), level)
    return value, lo, hi


def _nan_percentiles(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` (95%) percentile interval over the defined replicates (a resample whose dense
    accuracy is 0 defines no retention); NaN when none is."""
    finite = replicates[np.isfinite(replicates)]
    if len(finite) == 0:
        return math.nan, math.nan
    tail = 50 * (1 - level)
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap_seeds_and_items(
    dense: Score,
    arms: Sequence[Sequence[Score]],
    rounds: int = 2000,
    seed: int = 0,
    items: Literal["shared", "per_seed"] = "shared",
    clusters: Sequence[str] | None = None,
    resample: Literal["both", "seeds", "items"] = "both",
    item_stream: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Hierarchical bootstrap of mean-over-seeds retention. ``arms[a][s]`` is calibration set a's
    score at seed s (the same seeds, in the same order, for every arm; all on the dense run's items).

    Each round draws S seeds with replacement, then items with replacement, and applies the same
    item draw to the dense and compressed scores (paired); an item is a text where tokens are
    scored, so token-level scores are resampled in clusters. ``items="shared"`` draws items once per
    round for every seed — right when every seed is scored on the same items, as here (a crossed
    design; Owen 2007, *Ann. Appl. Stat.* 1, "the pigeonhole bootstrap"); ``"per_seed"`` draws them
    anew inside each drawn seed (nested data; Davison & Hinkley 1997, §3.8), which would understate
    the item variance of a crossed design.

    ``clusters`` (one label per item, with ``items="shared"``): items are drawn as whole clusters —
    every item of a drawn cluster, as often as the cluster is drawn (the cluster bootstrap; Davison &
    Hinkley 1997, §3.8) — for items that are not independent: facts asked of one town, prose and code
    from one source module, math problems of one template (:func:`cola_core.evaluation.suite.item_clusters`).

    ``resample="seeds"`` keeps every item once (only the seeds vary), ``"items"`` keeps every seed
    once (only the items vary): the two components of the variance, which a claim's test combines
    (:func:`cola_core.evaluation.significance.components_t`). ``item_stream``: item draws come from
    their own generator (``[seed, item_stream]``), so calls that share ``seed`` draw the same seeds and,
    with the same ``item_stream`` and items, the same items — one capability's items drawn alike for
    every model, different capabilities' items drawn independently.

    Returns (point, replicates): each arm's mean retention over seeds on all items (arms,), and the
    bootstrap replicates (rounds × arms); differences between arms are paired by round."""
    if not arms or not arms[0]:
        raise ColaError("the bootstrap needs at least one arm with one seed")
    s_count = len(arms[0])
    if any(len(a) != s_count for a in arms):
        raise ColaError("every arm of the bootstrap needs the same seeds")
    for arm in arms:
        for s in arm:
            if s.metric != dense.metric or len(s.items) != len(dense.items):
                raise ColaError(f"cannot compare {dense.capability} scores measured on different items")
    d = np.asarray(dense.items, dtype=np.float64)  # items × 2
    x = np.asarray([[s.items for s in arm] for arm in arms], dtype=np.float64)  # arms × seeds × items × 2
    n_items, metric = len(d), dense.metric
    point_dense = _metric(d[:, 0].sum(), d[:, 1].sum(), metric)
    point = _retention_of(_metric(x[..., 0].sum(-1), x[..., 1].sum(-1), metric), point_dense, metric).mean(-1)
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, s_count, size=(rounds, s_count))  # rounds × seed slots
    if resample == "items":
        drawn = np.tile(np.arange(s_count), (rounds, 1))
    item_rng = rng if item_stream is None else np.random.default_rng([seed, item_stream])
    if clusters is not None and (items != "shared" or len(clusters) != n_items):
        raise ColaError(f"cluster labels need items='shared' and one label per item ({n_items}), got {len(clusters)}")
    if resample == "seeds":
        if items != "shared":
            raise ColaError("resample='seeds' keeps the items fixed: use items='shared'")
        w = np.ones((rounds, n_items))
    elif items == "shared" and clusters is not None:
        labels, of_item = np.unique(np.asarray(clusters), return_inverse=True)
        k = len(labels)
        w = item_rng.multinomial(k, np.full(k, 1 / k), size=rounds).astype(np.float64)[:, of_item]  # rounds × items
    elif items == "shared":
        w = item_rng.multinomial(n_items, np.full(n_items, 1 / n_items), size=rounds).astype(np.float64)
    if items == "shared":
        dense_value = _metric(w @ d[:, 0], w @ d[:, 1], metric)  # rounds
        num, den = np.einsum("ri,asi->ras", w, x[..., 0]), np.einsum("ri,asi->ras", w, x[..., 1])
        ret = _retention_of(_metric(num, den, metric), dense_value[:, None, None], metric)  # rounds × arms × seeds
        picked = np.take_along_axis(ret, drawn[:, None, :], axis=2)  # rounds × arms × slots
    elif items == "per_seed":
        w = item_rng.multinomial(n_items, np.full(n_items, 1 / n_items), size=(rounds, s_count)).astype(np.float64)
        dense_value = _metric(w @ d[:, 0], w @ d[:, 1], metric)  # rounds × slots
        num, den = np.einsum("rki,asi->rkas", w, x[..., 0]), np.einsum("rki,asi->rkas", w, x[..., 1])
        ret = _retention_of(
            _metric(num, den, metric), dense_value[..., None, None], metric
        )  # rounds × slots × arms × seeds
        picked = np.take_along_axis(ret, drawn[:, :, None, None], axis=3)[..., 0].transpose(0, 2, 1)
    else:
        raise ColaError(f"items must be 'shared' or 'per_seed', got {items!r}")
    return point, picked.mean(-1)


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
                "metric": s.metric,
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
