"""95% confidence intervals: Wilson for accuracies, percentile bootstrap for perplexities and ratios."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z95 = 1.959963984540054


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson 1927); (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))  # rounding never excludes p


def bootstrap_perplexity(
    nll_sums: Sequence[float], token_counts: Sequence[int], seed: int = 0, rounds: int = 1000
) -> tuple[float, float]:
    """Percentile interval of exp(Σ nll / Σ tokens), resampling whole texts."""
    nll = np.asarray(nll_sums, dtype=np.float64)
    cnt = np.asarray(token_counts, dtype=np.float64)
    if len(nll) < 2:
        value = math.exp(nll.sum() / max(cnt.sum(), 1))
        return value, value
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(nll), size=(rounds, len(nll)))
    ppl = np.exp(nll[idx].sum(1) / np.maximum(cnt[idx].sum(1), 1))
    lo, hi = np.percentile(ppl, [2.5, 97.5])
    return float(lo), float(hi)
