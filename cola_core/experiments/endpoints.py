"""What a claim measures, and the view that shows a trade-off.

- A claim's ``capability`` is one score (``math``, ``lm`` …) or :data:`MEAN`: the mean retention over
  the experiment's capabilities (lm, code, math, facts), the one number a set must raise to keep
  *every* capability rather than buy one with another — the primary endpoint of a pre-registered
  comparison (issue #29), with the per-capability differences as its secondary ones.
- :func:`endpoint_bootstrap`: each arm's point retention and bootstrap replicates for an endpoint.
  For :data:`MEAN` every capability is resampled on its own items (an item stream of its own) with
  the same seed draws, so a round's mean over capabilities is one replicate of the mean.
- :func:`sign_table`: the sign of (better − worse) per compression setting × capability, so a
  comparison that wins one capability and loses another is visible at a glance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from cola_core.evaluation.retention import bootstrap_seeds_and_items
from cola_core.evaluation.suite import CAPABILITIES
from cola_core.experiments.results import ExperimentResults

MEAN = "mean"  # the claim capability that stands for mean retention over the capabilities


def item_units(results: ExperimentResults, capability: str, clusters: Mapping[str, Sequence[str]] | None) -> int:
    """The independent item units behind an endpoint's item variance: its item clusters, or its items;
    for :data:`MEAN` the fewest of any capability it averages (the component's degrees of freedom are
    then conservative)."""
    counts = []
    for cap in capabilities_of(results, capability):
        labels = clusters.get(cap) if clusters else None
        counts.append(len(set(labels)) if labels is not None else len(results.dense[cap].items))
    return min(counts) if counts else 0


def capabilities_of(results: ExperimentResults, capability: str) -> list[str]:
    """The scores an endpoint averages: the capabilities themselves for :data:`MEAN` (not their
    sub-scores, which would count a capability twice), else the one score."""
    if capability != MEAN:
        return [capability]
    return [c for c in CAPABILITIES if c in results.dense]


def endpoint_bootstrap(
    results: ExperimentResults,
    sides: Sequence[str],
    compression: str,
    capability: str,
    seeds: list[int],
    rounds: int,
    clusters: Mapping[str, Sequence[str]] | None = None,
    resample: str = "both",
) -> tuple[np.ndarray, np.ndarray]:
    """(point, replicates) of each side's mean-over-seeds retention on ``capability`` (or the mean over
    the capabilities): shapes (arms,) and (rounds × arms), paired by round. ``clusters``: each score's
    item clusters (an experiment with ``cluster_items``), resampled whole. ``resample``: "both", or
    only the "seeds" or only the "items" (the variance components of a claim's test). Every
    capability's seeds are drawn alike in a round; its items from a stream of its own, the same for
    every model that scored them (so models share their item draws by construction)."""
    points, reps = [], []
    for cap in capabilities_of(results, capability):
        arms = [results.arm(side, compression, cap, seeds) for side in sides]
        labels = clusters.get(cap) if clusters else None
        stream = int.from_bytes(cap.encode(), "little") % 2**31  # the capability's own item stream
        point, rep = bootstrap_seeds_and_items(
            results.dense[cap], arms, rounds, clusters=labels, resample=resample, item_stream=stream
        )
        points.append(point)
        reps.append(rep)
    return np.mean(points, axis=0), np.mean(reps, axis=0)


def per_seed_retention(results: ExperimentResults, sides: Sequence[str], compression: str, capability: str, seeds):
    """Seeds × sides: each side's retention at each seed (the mean over the capabilities for :data:`MEAN`)."""
    caps = capabilities_of(results, capability)
    t = results.table
    table = t[t["capability"].isin(caps) & (t["compression"] == compression)]
    return table.groupby(["seed", "calibration"])["retention"].mean().unstack().reindex(index=seeds, columns=sides)


def sign_table(results: ExperimentResults, better: str, worse: str) -> pd.DataFrame:
    """Compression × capability: ``+`` where ``better`` keeps more retention than ``worse`` on the
    mean over the seeds both share, ``−`` where less, ``0`` where equal, blank where either lacks runs."""
    t = results.table[results.table["capability"].isin(CAPABILITIES)]
    cells: dict[str, dict[str, str]] = {}
    for (comp, cap), g in t.groupby(["compression", "capability"], sort=False):
        by_seed = g.groupby(["seed", "calibration"])["retention"].mean().unstack()
        if better not in by_seed or worse not in by_seed:
            continue
        diff = (by_seed[better] - by_seed[worse]).dropna()
        if diff.empty:
            continue
        mean = float(diff.mean())
        cells.setdefault(comp, {})[cap] = "+" if mean > 0 else "−" if mean < 0 else "0"
    frame = pd.DataFrame.from_dict(cells, orient="index")
    return frame.reindex(columns=[c for c in CAPABILITIES if c in frame.columns]).fillna("")
