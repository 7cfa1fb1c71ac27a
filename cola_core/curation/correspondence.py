"""Stage 1 of COLA (He et al., NeurIPS 2025, §4.1): dataset selection by domain correspondence.

For every candidate corpus × target capability (a capability is a probe set: a built-in held-out
split or any corpus), a correspondence score in [0, 1]:

    score = α · activation similarity + (1 − α) · token similarity

- activation similarity: cosine of the two sets' centroids in the activation space, around the
  mean of all points, mapped from [−1, 1] to [0, 1];
- token similarity: 1 − the Jensen–Shannon divergence of the two unigram distributions, in bits
  (so it lies in [0, 1]): identical streams score 1, streams sharing no token score 0. JS needs no
  smoothing, so only the tokens the corpora actually use count, whatever the vocabulary size (the
  earlier add-one-smoothed symmetric KL ÷ log |V| scored two disjoint Zipf streams over a 128,256-token
  vocabulary 0.88, barely below identical ones).

A deployment choice turns the table into a recommended corpus mix: ``general`` weighs every
capability equally, ``targeted`` weighs one capability ``boost`` times more. For each capability the
corpora share its weight by a softmax of their scores (temperature τ), so the best-matching corpus
gets most of it while close runners-up keep some.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from cola_core.errors import ColaError

if TYPE_CHECKING:  # imported where a table is made, not by every CLI command
    import pandas as pd


def unigram_distribution(token_ids: Sequence[Sequence[int]], vocab_size: int) -> np.ndarray:
    """Relative token frequencies over the vocabulary (no smoothing; see :func:`token_similarity`)."""
    counts = np.zeros(vocab_size, dtype=np.float64)
    for ids in token_ids:
        np.add.at(counts, np.asarray(ids, dtype=np.int64), 1)
    total = counts.sum()
    if total == 0:
        raise ColaError("cannot compare token statistics of an empty corpus")
    return counts / total


def token_similarity(p: np.ndarray, q: np.ndarray) -> float:
    """1 − JS(p ‖ q) / ln 2: Jensen–Shannon divergence in bits, so the similarity lies in [0, 1]."""
    m = 0.5 * (p + q)

    def kl_to_m(x: np.ndarray) -> float:
        used = x > 0
        return float(np.sum(x[used] * np.log(x[used] / m[used])))

    js = 0.5 * kl_to_m(p) + 0.5 * kl_to_m(q)
    return float(np.clip(1.0 - js / np.log(2.0), 0.0, 1.0))


def activation_similarity(a: np.ndarray, b: np.ndarray, centre: np.ndarray) -> float:
    ca, cb = a.mean(0) - centre, b.mean(0) - centre
    cos = float(ca @ cb / max(np.linalg.norm(ca) * np.linalg.norm(cb), 1e-12))
    return (cos + 1.0) / 2.0


def correspondence_table(
    corpus_points: Mapping[str, np.ndarray],
    probe_points: Mapping[str, np.ndarray],
    corpus_unigrams: Mapping[str, np.ndarray],
    probe_unigrams: Mapping[str, np.ndarray],
    alpha: float = 0.5,
) -> pd.DataFrame:
    """Tidy table: one row per (corpus, capability) with activation, token and combined scores."""
    import pandas as pd

    if not 0.0 <= alpha <= 1.0:
        raise ColaError(f"α must lie in [0, 1], got {alpha}")
    centre = np.concatenate([*corpus_points.values(), *probe_points.values()]).mean(0)
    rows = []
    for corpus, pts in corpus_points.items():
        for cap, probe in probe_points.items():
            act = activation_similarity(pts, probe, centre)
            tok = token_similarity(corpus_unigrams[corpus], probe_unigrams[cap])
            rows.append(
                {
                    "corpus": corpus,
                    "capability": cap,
                    "activation": act,
                    "token": tok,
                    "score": alpha * act + (1 - alpha) * tok,
                }
            )
    return pd.DataFrame(rows)


def recommend_mix(
    table: pd.DataFrame,
    deployment: str = "general",
    target: str | None = None,
    boost: float = 3.0,
    temperature: float = 0.05,
    weights: Mapping[str, float] | None = None,
) -> pd.Series:
    """Corpus shares (summing to 1) from a correspondence table and a deployment choice; explicit
    capability ``weights`` (unnamed capabilities weigh 0) replace the deployment's."""
    import pandas as pd

    caps = sorted(table["capability"].unique())
    if weights:
        unknown = sorted(set(weights) - set(caps))
        if unknown or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ColaError(
                f"capability weights must be non-negative, not all zero, over {', '.join(caps)}; got {dict(weights)}"
            )
        weights = {c: float(weights.get(c, 0.0)) for c in caps}
    elif deployment == "general":
        weights = dict.fromkeys(caps, 1.0)
    elif deployment == "targeted":
        if target not in caps:
            raise ColaError(f"targeted deployment needs a target capability among {', '.join(caps)}, got {target}")
        weights = {c: (boost if c == target else 1.0) for c in caps}
    else:
        raise ColaError(f"unknown deployment '{deployment}': use general or targeted")
    total = sum(weights.values())
    mix = pd.Series(0.0, index=sorted(table["corpus"].unique()))
    caps = [c for c in caps if weights[c] > 0]
    for cap in caps:
        scores = table[table["capability"] == cap].set_index("corpus")["score"]
        soft = np.exp((scores - scores.max()) / temperature)
        mix = mix.add(weights[cap] / total * soft / soft.sum(), fill_value=0.0)
    return mix.rename("share")
