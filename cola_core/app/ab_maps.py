"""Calibration sets compared side by side (:mod:`cola_core.app.ab`) drawn on one shared map: each set
rebuilt from its pool, kept only when its token fingerprint equals the run's, and projected with the
held-out capability probes onto the PCA plane of every compared pool together (so a probe sits at
the same place on every set's map). Each probe is marked covered or missed by the same rule for
every set; each set reports its real token count and corpus mix. A set that cannot be rebuilt says
why instead of drawing a map."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cola_core.app.ab import ABComparison
from cola_core.app.workspace import PreparedSpace, probes_of
from cola_core.calibration.files import tokenize_calibration
from cola_core.curation.map2d import pca_project
from cola_core.curation.pipeline import CurateConfig, coverage_by_capability, run_selection
from cola_core.curation.selection import selection_strategy
from cola_core.errors import ColaError
from cola_core.evaluation.runstore import RunStore
from cola_core.experiments.cells import build_calibration
from cola_core.experiments.config import load_config
from cola_core.models.loading import load_model_cached
from cola_core.storage.fingerprints import calibration_fingerprint


def _json(text: Any) -> dict:
    return json.loads(text) if isinstance(text, str) and text else {}


@dataclass
class SetMap:
    """One set's pool and samples on the comparison's shared map, with the capability probes.
    ``reason`` says why a set could not be placed; the arrays are empty then."""

    group: str
    run_id: int
    seed: int
    reason: str = ""
    xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # the set's pool on the shared plane
    corpus: list[str] = field(default_factory=list)  # each pool sample's corpus
    chosen: list[int] = field(default_factory=list)  # pool indices of the set's samples
    ids: list[str] = field(default_factory=list)  # their record ids
    probes: dict[str, np.ndarray] = field(default_factory=dict)  # capability → probe positions on the plane
    covered: dict[str, np.ndarray] = field(default_factory=dict)  # capability → covered? per probe
    tokens: int | None = None  # real calibration tokens (after truncation to seqlen, no padding)
    mix: dict[str, float] = field(default_factory=dict)  # corpus → share of the set's samples
    k: int = 0  # neighbours a probe's coverage looks at (see covered_probes)

    @property
    def placed(self) -> bool:
        return not self.reason


@dataclass
class _Rebuilt:
    reason: str = ""
    space: np.ndarray | None = None
    records: list = field(default_factory=list)
    chosen: list[int] = field(default_factory=list)
    probes: dict[str, np.ndarray] = field(default_factory=dict)
    tokens: int | None = None


_LOCK = threading.Lock()
_BUILT: dict[tuple, _Rebuilt] = {}  # rebuilding a set costs a model pass over its pool (activations are disk-cached)


def corpus_shares(corpora: Sequence[str]) -> dict[str, float]:
    """Share of each corpus among a set's samples."""
    counts = Counter(corpora)
    return {c: counts[c] / max(len(corpora), 1) for c in sorted(counts)}


def covered_probes(
    pooled: np.ndarray, pooled_ids: Sequence[str], chosen_ids: set[str], probes: dict[str, np.ndarray], k: int
) -> dict[str, np.ndarray]:
    """Per capability, which probes a set covers: a probe is covered when one of the set's samples
    (``chosen_ids``) is among its ``k`` nearest neighbours in every compared pool (``pooled``) and
    every probe together (itself left out) — so every set is judged against the same points, and a
    probe whose own kind is in no pool is surrounded by fellow probes rather than by stand-ins from
    another corpus. Nearness is cosine around the probes' mean, the pool-independent centre of
    :func:`~cola_core.curation.metrics.probe_coverage`."""
    from sklearn.neighbors import NearestNeighbors

    every_probe = np.concatenate([np.asarray(p, dtype=np.float32) for p in probes.values()])
    centre = every_probe.mean(0)

    def unit(x: np.ndarray) -> np.ndarray:
        y = np.asarray(x, dtype=np.float32) - centre
        return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)

    reference = np.concatenate([unit(pooled), unit(every_probe)])
    index = NearestNeighbors(n_neighbors=min(k + 1, len(reference))).fit(reference)
    ids = np.asarray([*pooled_ids, *[""] * len(every_probe)])  # a probe is never a chosen sample
    hit = np.vectorize(lambda i: i in chosen_ids, otypes=[bool])
    return {cap: hit(ids[index.kneighbors(unit(p))[1]]).any(1) for cap, p in probes.items() if len(p)}


def _check(run: dict, records: list, chosen: list[int], probes: dict, space: np.ndarray, tok, seqlen) -> _Rebuilt:
    """The rebuilt set, if its samples are the ones the run was calibrated on (same token fingerprint)."""
    tensors = tokenize_calibration([records[i] for i in chosen], tok, seqlen)
    fp, stored = calibration_fingerprint(tensors), run.get("calibration_fingerprint")
    if stored and fp != stored:
        return _Rebuilt(f"rebuilt now, the set differs from the one this run used (tokens {fp} ≠ {stored})")
    tokens = int(tensors["attention_mask"].sum())
    return _Rebuilt("", space, records, chosen, coverage_by_capability(probes), tokens)


def _rebuild_experiment(run: dict, seed: int) -> _Rebuilt:
    try:
        cfg = load_config(run["experiment"])
    except ColaError:
        return _Rebuilt(f"experiment '{run['experiment']}' is not a built-in config, so its sets are not rebuilt here")
    spec = next((s for s in cfg.calibration_sets if s.name == run["calibration"]), None)
    if spec is None or spec.self_generated:
        return _Rebuilt("a self-generated pool is not rebuilt for the map" if spec else "no longer in its config")
    loaded = load_model_cached(cfg.model)
    built = build_calibration(loaded, spec, cfg, seed)  # the grid's own builder
    space, chosen = built.space, list(built.selection.indices)
    seqlen = cfg.curate_config(spec, seed).processing.seqlen
    return _check(run, space.records, chosen, space.probes, space.embedded.space, loaded.tokenizer, seqlen)


def _rebuild_dashboard(run: dict, seed: int, prepared: PreparedSpace | None, lam: float, include, exclude) -> _Rebuilt:
    settings, report = _json(run["settings"]), _json(run["report"])
    if prepared is None or prepared.settings.model != run["model"]:
        return _Rebuilt("its samples are not stored with the run: open the space it was drawn from on the space page")
    strategy, n = settings.get("strategy", "cola"), int(report.get("calibration", {}).get("n", 0))
    config = prepared.settings.selection(n, strategy, lam, seed)
    forced, excluded = selection_strategy(strategy).edits(include, exclude)
    chosen = list(run_selection(prepared.embedded, config, forced, excluded, prepared.index).indices)
    tok = load_model_cached(run["model"]).tokenizer
    seqlen = settings.get("seqlen", prepared.settings.curation.processing.seqlen)
    built = _check(run, prepared.records, chosen, probes_of(prepared), prepared.embedded.space, tok, seqlen)
    if built.reason:
        built.reason = "not drawn from the space open on the space page (with its current edits): " + built.reason
    return built


def _rebuilt(store: RunStore, run: dict, seed: int, prepared, lam: float, include, exclude) -> _Rebuilt:
    where = None if run["experiment"] else (prepared.settings if prepared else None, lam, include, exclude)
    key = (str(store.path), run["id"], where)
    with _LOCK:
        known = _BUILT.get(key)
    if known is None:
        if run["experiment"]:
            known = _rebuild_experiment(run, seed)
        else:
            known = _rebuild_dashboard(run, seed, prepared, lam, include, exclude)
        with _LOCK:
            _BUILT[key] = known
    return known


def set_maps(
    store: RunStore,
    comparison: ABComparison,
    seed: int | None = None,
    prepared: PreparedSpace | None = None,
    lam: float = CurateConfig.lam,
    include: Sequence[int] = (),
    exclude: Sequence[int] = (),
) -> dict[str, SetMap]:
    """Each compared set at ``seed`` (else its first seed) on one shared map, with the probes it covers
    and misses (:func:`covered_probes`, k = pooled samples ÷ set size), its real token count and mix.
    An experiment's set is rebuilt from its built-in config; a dashboard set from ``prepared`` (the
    session's space, with the λ and include/exclude edits it was drawn with). A set is placed only
    when its token fingerprint equals the run's, else ``SetMap.reason`` says why it is missing.
    Sets whose probes lie in another activation space than the first placed set's are not placed."""
    out, built = {}, {}
    for group in comparison.groups:
        seeds = comparison.seeds[group]
        s = seed if seed in seeds else seeds[0]
        run = store.get(comparison.run_ids[group][seeds.index(s)])
        out[group] = SetMap(group, int(run["id"]), s)
        built[group] = _rebuilt(store, run, s, prepared, lam, tuple(include), tuple(exclude))
        out[group].reason = built[group].reason
    placed = [g for g in comparison.groups if not built[g].reason]
    if not placed:
        return out
    first = built[placed[0]].probes
    for g in placed[1:]:
        same = built[g].probes.keys() == first.keys() and all(
            np.array_equal(built[g].probes[c], first[c]) for c in first
        )
        if not same:
            out[g].reason = f"its activation space differs from {placed[0]}'s (other model settings): not comparable"
    placed = [g for g in placed if out[g].placed]
    pooled: dict[str, np.ndarray] = {}  # record id → its point: every compared pool together
    for g in placed:
        for r, point in zip(built[g].records, built[g].space, strict=True):
            pooled.setdefault(str(r.id), point)
    ids, reference = list(pooled), np.stack(list(pooled.values()))
    k = max(1, round(len(reference) / max(np.mean([len(built[g].chosen) for g in placed]), 1)))
    for g in placed:
        b, m = built[g], out[g]
        m.xy, m.corpus, m.chosen, m.k = pca_project(reference, b.space), [r.corpus for r in b.records], b.chosen, k
        m.ids = [str(b.records[i].id) for i in b.chosen]
        m.mix, m.tokens = corpus_shares([b.records[i].corpus for i in b.chosen]), b.tokens
        m.probes = {cap: pca_project(reference, p) for cap, p in b.probes.items()}
        m.covered = covered_probes(reference, ids, set(m.ids), b.probes, k)
    return out


def budget_table(comparison: ABComparison, maps: dict[str, SetMap] | None = None) -> pd.DataFrame:
    """Per set: samples, real tokens and corpus shares — from the runs' reports, or from the rebuilt
    set on the map where the reports do not record them; ``source`` says which (or ``unknown``)."""
    rows = []
    for r in comparison.sets.itertuples():
        built = (maps or {}).get(r.group)
        if r.tokens is not None:
            row = {"n": r.n, "tokens": r.tokens, "from": "run report", **r.mix}
        elif built is not None and built.placed:
            row = {"n": len(built.chosen), "tokens": built.tokens, "from": f"rebuilt (seed {built.seed})", **built.mix}
        else:
            row = {"n": r.n, "tokens": None, "from": "unknown"}
        rows.append({"group": r.group, **row})
    return pd.DataFrame(rows).fillna(
        {c: 0.0 for c in pd.DataFrame(rows).columns if c not in ("group", "n", "tokens", "from")}
    )


def shared_ranges(maps: dict[str, SetMap], margin: float = 0.05) -> tuple[tuple[float, float], tuple[float, float]]:
    """Axis ranges holding every placed set's pool and probes, so the maps of a comparison line up."""
    points = [m.xy for m in maps.values() if m.placed] + [p for m in maps.values() for p in m.probes.values()]
    if not points:
        return (0.0, 1.0), (0.0, 1.0)
    xy = np.concatenate(points)
    low, high = xy.min(0), xy.max(0)
    pad = (high - low) * margin + 1e-9
    return (float(low[0] - pad[0]), float(high[0] + pad[0])), (float(low[1] - pad[1]), float(high[1] + pad[1]))
