"""Significance, intervals and power for an experiment's verdicts, each a small function with its source.

- :func:`t_critical`: Student's t quantile for any degrees of freedom (exact, via scipy);
- :func:`paired_t`: the seed-paired difference of two calibration sets — mean, t-interval, two-sided
  p-value of the paired t-test (Student 1908) — with the zero-variance case decided by the sign;
- :func:`holm`: Holm's step-down adjustment of a family of p-values (Holm 1979, Scand. J. Statist. 6);
- :func:`verdict`: supported / contradicted / inconclusive from an adjusted p-value and a sign;
- :func:`min_detectable_effect`: the smallest difference a paired t-test detects with a given power
  (Cohen 1988, *Statistical Power Analysis*, ch. 2), from the noncentral t distribution;
- :func:`components_t`: the experiment's one rule — a difference over the standard error summed from
  its variance components (seeds, item clusters; models) on Student's t with Welch–Satterthwaite
  degrees of freedom, giving interval, p and power;
- :func:`spearman_permutation`: Spearman's ρ with a permutation p-value, exact (every permutation)
  for a few points, else seeded Monte Carlo with the +1 correction (Phipson & Smyth 2010, SAGMB 9);
- :func:`spearman_bootstrap_ci`: a percentile bootstrap interval of ρ over pairs (Efron &
  Tibshirani 1993, *An Introduction to the Bootstrap*, ch. 13).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

ALPHA = 0.05  # the family-wise error rate within each family of an experiment's claims (Holm)
POWER = 0.8
EXACT_PERMUTATIONS_MAX_N = 8  # 8! = 40,320 permutations; above, Monte Carlo
PERMUTATION_ROUNDS = 10_000
BOOTSTRAP_MIN_POINTS = (
    10  # pairs below which a bootstrap interval of ρ is not given (at 6, a monotone set gives [1, 1])
)


def t_critical(df: int, level: float = 0.95) -> float:
    """Two-sided critical value t_{(1+level)/2, df} of Student's t; NaN for df < 1."""
    return float(stats.t.ppf((1 + level) / 2, df)) if df >= 1 else float("nan")


def _is_constant(x: np.ndarray) -> bool:
    """Equal up to floating-point noise (sums of the same items in another order differ in the last bits)."""
    return bool(np.ptp(x) <= 1e-12 * max(1.0, float(np.abs(x).max())))


@dataclass(frozen=True)
class PairedTest:
    n: int
    mean: float
    sd: float
    ci_low: float
    ci_high: float
    p: float  # two-sided; NaN when there is nothing to test
    note: str = ""


def paired_t(differences: Sequence[float], level: float = 0.95) -> PairedTest:
    """Paired t-test of per-seed differences d_i: t = d̄ / (s_d / √n) on n − 1 degrees of freedom.

    With every d_i equal there is no seed-to-seed variation to test against: the interval is the
    point and the p-value is 0 for a nonzero difference (the verdict follows its sign), 1 for zero.
    With one seed nothing can be tested (p is NaN)."""
    d = np.asarray(differences, dtype=np.float64)
    d = d[np.isfinite(d)]
    n = len(d)
    if n == 0:
        return PairedTest(0, math.nan, math.nan, math.nan, math.nan, math.nan, "no paired seeds")
    mean = float(d.mean())
    if n == 1:
        return PairedTest(1, mean, math.nan, math.nan, math.nan, math.nan, "one seed: no test")
    if _is_constant(d):
        mean = 0.0 if abs(mean) <= 1e-12 else mean
        note = "identical in every seed: the interval is the point"
        return PairedTest(n, mean, 0.0, mean, mean, 0.0 if mean != 0 else 1.0, note)
    sd = float(d.std(ddof=1))
    se = sd / math.sqrt(n)
    half = t_critical(n - 1, level) * se
    p = float(2 * stats.t.sf(abs(mean) / se, n - 1))
    return PairedTest(n, mean, sd, mean - half, mean + half, p)


def bootstrap_p(replicates: Sequence[float]) -> float:
    """Two-sided p-value of "the difference is 0" from bootstrap replicates of the difference: twice
    the smaller share on either side of 0, with the +1 correction (Davison & Hinkley 1997, §4.4)."""
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if len(r) == 0:
        return math.nan
    tail = min(int((r <= 0).sum()), int((r >= 0).sum()))
    return min(1.0, 2 * (1 + tail) / (1 + len(r)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values: sorted ascending, p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) p_(j)).
    Rejecting where p̃ ≤ α controls the family-wise error rate at α. NaN p-values (nothing tested)
    stay NaN and do not count in m."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(len(p), np.nan)
    tested = np.flatnonzero(np.isfinite(p))
    m = len(tested)
    order = tested[np.argsort(p[tested], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def verdict(
    difference: float, adjusted_p: float, alpha: float = ALPHA, interval: tuple[float, float] | None = None
) -> str:
    """``supported`` (significant, claimed direction), ``contradicted`` (significant, opposite
    direction) or ``inconclusive`` (not significant, or not testable). With ``interval`` (the
    dashboard's older seed-paired view passed one), significance also needs that interval to exclude
    0 on the same side; the experiments' rule (:func:`components_t`) makes p and its interval agree,
    so it passes none."""
    if not (math.isfinite(adjusted_p) and adjusted_p <= alpha and difference != 0):
        return "inconclusive"
    if interval is not None:
        lo, hi = interval
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0 <= hi or (lo > 0) != (difference > 0):
            return "inconclusive"
    return "supported" if difference > 0 else "contradicted"


def _power(nc: float, df: int, t_c: float) -> float:
    """P(|T'| > t_c) for noncentral t; scipy returns NaN for far-tail masses, which are ~0 here."""
    upper, lower = stats.nct.sf(t_c, df, nc), stats.nct.cdf(-t_c, df, nc)
    return float(np.nan_to_num(upper, nan=1.0) + np.nan_to_num(lower, nan=0.0))


def _noncentrality(df: int, alpha: float, power: float) -> float:
    """λ* solving P(T'_{df,λ} > t_c) + P(T'_{df,λ} < −t_c) = power, t_c = t_{1−α/2, df} (Cohen 1988, ch. 2)."""
    t_c = t_critical(df, 1 - alpha)
    high = 1.0
    while _power(high, df, t_c) < power:
        high *= 2
    return float(optimize.brentq(lambda lam: _power(lam, df, t_c) - power, 0.0, high, xtol=1e-10))


def min_detectable_effect(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest true mean difference δ a two-sided paired t-test at level α detects with the given
    power, for n seeds whose differences have standard deviation σ:

        δ = σ · λ* / √n,  λ* solving  P(T'_{n−1,λ} > t_c) + P(T'_{n−1,λ} < −t_c) = power,

    with t_c = t_{1−α/2, n−1} and T'_{n−1,λ} noncentral t (Cohen 1988, ch. 2); approximately
    δ ≈ (t_{1−α/2, n−1} + t_{power, n−1}) σ / √n. σ is itself estimated from the same few seeds, so
    δ is an estimate. NaN with fewer than two seeds, or when σ = 0 (no seed-to-seed variation was seen:
    the power of the test is then unknown, not perfect)."""
    if n < 2 or not math.isfinite(sd) or sd == 0:
        return math.nan
    return float(sd * _noncentrality(n - 1, alpha, power) / math.sqrt(n))


@dataclass(frozen=True)
class DifferenceTest:
    """A difference judged from its variance components (:func:`components_t`)."""

    difference: float
    se: float
    df: float  # Welch–Satterthwaite degrees of freedom of the combined variance
    ci_low: float
    ci_high: float
    p: float  # two-sided; NaN when there is nothing to test
    note: str = ""

    def detectable(self, alpha: float = ALPHA, power: float = POWER) -> float:
        """Smallest true difference this test detects with ``power`` at level ``alpha``: se · λ*."""
        if not (math.isfinite(self.se) and self.se > 0 and self.df >= 1):
            return math.nan
        return self.se * _noncentrality(self.df, alpha, power)


def component_variance(replicates: Sequence[float], units: int) -> tuple[float, float]:
    """One component of a difference's variance from bootstrap replicates that resample ``units``
    independent units (seeds, item clusters, models) and nothing else: the replicates' variance
    times units / (units − 1) — a bootstrap over n units shrinks their variance by (n − 1)/n (Efron &
    Tibshirani 1993, §5.2) — and its degrees of freedom, units − 1. NaN replicates (a dense score of
    0) are left out."""
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if len(r) < 2 or units < 2:
        return math.nan, float(max(units - 1, 0))
    return float(r.var(ddof=1)) * units / (units - 1), float(units - 1)


def components_t(difference: float, components: Sequence[tuple[float, float]], level: float = 0.95) -> DifferenceTest:
    """The one rule an experiment's claims are judged by (issue #29): the difference's variance is the
    sum of independent components — seed to seed, and item (cluster) to item, each from its own
    bootstrap (:func:`component_variance`); with models, model to model and the items all models
    share — and the difference over its standard error is referred to Student's t with the
    Welch–Satterthwaite degrees of freedom ν = (Σ vⱼ)² / Σ (vⱼ² / νⱼ) (Satterthwaite 1946,
    *Biometrics Bull.* 2), so a component resting on few units (six math templates, three models)
    weighs on the test as it should. Interval d ± t_ν · se and two-sided p come from the same numbers,
    so p ≤ 1 − level exactly when the interval excludes 0."""
    parts = [(v, df) for v, df in components if df > 0]
    if not math.isfinite(difference) or not parts or any(not math.isfinite(v) for v, _ in parts):
        return DifferenceTest(difference, math.nan, math.nan, math.nan, math.nan, math.nan, "nothing to test")
    total = sum(v for v, _ in parts)
    if total <= 1e-24 * max(1.0, difference**2):
        note = "no variation across the resamples: nothing to test the difference against"
        return DifferenceTest(difference, 0.0, math.nan, difference, difference, math.nan, note)
    df = total**2 / sum(v**2 / d for v, d in parts if v > 0)
    se = math.sqrt(total)
    half = t_critical(df, level) * se
    p = float(2 * stats.t.sf(abs(difference) / se, df))
    return DifferenceTest(difference, se, df, difference - half, difference + half, p)


def _standardised_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks (ties averaged) centred and scaled along the last axis; NaN rows where ranks are constant."""
    r = stats.rankdata(values, axis=-1)
    r = r - r.mean(-1, keepdims=True)
    norm = np.sqrt((r * r).sum(-1, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, r / norm, np.nan)


def spearman_permutation(
    x: Sequence[float],
    y: Sequence[float],
    seed: int = 0,
    rounds: int = PERMUTATION_ROUNDS,
    exact_max_n: int = EXACT_PERMUTATIONS_MAX_N,
) -> tuple[float, float, str]:
    """(ρ, two-sided p, how p was computed). p is the share of permutations of y against x with
    |ρ_perm| ≥ |ρ|: all n! of them when n ≤ ``exact_max_n``, else ``rounds`` seeded random ones with
    p = (1 + hits) / (1 + rounds) so that p is never 0. NaN with fewer than 3 points or constant ranks."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(xs)
    if n < 3:
        return math.nan, math.nan, "fewer than 3 points"
    rx, ry = _standardised_ranks(xs), _standardised_ranks(ys)
    if np.isnan(rx).any() or np.isnan(ry).any():
        return math.nan, math.nan, "constant ranks"
    rho = float(rx @ ry)
    tol = 1e-12
    if n <= exact_max_n:
        perms = np.array(list(itertools.permutations(range(n))))
        p = float(np.mean(np.abs(ry[perms] @ rx) >= abs(rho) - tol))
        return rho, p, f"exact, all {len(perms):,} permutations"
    rng = np.random.default_rng(seed)
    perms = rng.permuted(np.tile(np.arange(n), (rounds, 1)), axis=1)
    hits = int(np.sum(np.abs(ry[perms] @ rx) >= abs(rho) - tol))
    return rho, (1 + hits) / (1 + rounds), f"Monte Carlo, {rounds:,} permutations (seed {seed})"


def spearman_bootstrap_ci(
    x: Sequence[float],
    y: Sequence[float],
    seed: int = 0,
    rounds: int = 2000,
    level: float = 0.95,
    min_points: int = BOOTSTRAP_MIN_POINTS,
) -> tuple[float, float]:
    """Percentile interval of ρ resampling (x, y) pairs; resamples with constant ranks are left out.
    NaN with fewer than ``min_points`` pairs: resamples of a few points take a handful of values (of 6
    perfectly ranked pairs every resample gives ρ = 1), and their percentiles say nothing about ρ."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(xs) < min_points:
        return math.nan, math.nan
    idx = np.random.default_rng(seed).integers(0, len(xs), size=(rounds, len(xs)))
    rho = np.sum(_standardised_ranks(xs[idx]) * _standardised_ranks(ys[idx]), axis=1)
    rho = rho[np.isfinite(rho)]
    if len(rho) == 0:
        return math.nan, math.nan
    lo, hi = np.percentile(rho, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)
