"""The COLA pipeline, composed once (He et al., NeurIPS 2025): the CLI, the experiment runner and the
dashboard all call these functions, so a setting means the same thing everywhere.

    corpora ──build_pool──▶ Pool ──Stage 2 (process_records)──▶ Samples
      ──build_space: activations (pool and capability probes in one extraction, local or Ray)
        → random projection──▶ Space
      ──select_and_measure: Stage 3 selection + metrics──▶ (Selection, SelectionMetrics)
      ──calibration.files.export_all──▶ calibration set files     (all of it: :func:`curate`)

Stage 1 (:func:`score_corpora`, domain correspondence of candidate corpora to the capability probes)
scores corpora before a pool is built; see :mod:`cola_core.curation.correspondence`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cola_core.calibration.files import export_all
from cola_core.corpora import Record
from cola_core.corpora.sampling import describe_sampling, sampling_summary
from cola_core.curation.activations import Progress
from cola_core.curation.config import DEFAULT_CAPABILITIES, CurateConfig, coverage_by_capability
from cola_core.curation.correspondence import recommend_mix
from cola_core.curation.embedding import Embedded, embed_probes, embed_sets, probe_records
from cola_core.curation.metrics import SelectionMetrics, selection_metrics
from cola_core.curation.processing import process_with_report, render_chat
from cola_core.curation.selection import Selection, select
from cola_core.curation.space import cluster_space
from cola_core.curation.stage1 import build_pool, pool_counts, pool_plan, score_corpora
from cola_core.curation.tradeoff import TradeoffIndex
from cola_core.engine.config import EngineConfig
from cola_core.errors import ColaError
from cola_core.models.loading import LoadedModel, context_length


@dataclass
class Space:
    """A pool after Stage 2, placed in the activation space, with the capability probes beside it."""

    embedded: Embedded
    probes: dict[str, np.ndarray]  # capability probe set → its points in the same projected space
    stage1: dict[str, Any] = field(default_factory=dict)  # the pool's mix, and why (see pool_plan)
    stage2: dict[str, Any] = field(default_factory=dict)  # what Stage 2 did (processing.process_with_report)

    @property
    def records(self) -> list[Record]:
        return self.embedded.records


def build_space(
    loaded: LoadedModel,
    config: CurateConfig,
    *,
    pool: Sequence[Record] | None = None,
    with_probes: bool = True,
    score_perplexity: bool = False,
    progress: Progress | None = None,
    engine: EngineConfig | None = None,
    log: Callable[[str], None] = lambda s: None,
    need: int = 0,
) -> Space:
    """Pool (``config.corpora``, or ``pool`` as given, e.g. self-generated) → Stage 2 → activations of
    the samples and, with ``with_probes``, of the capability probes in the same extraction → Space.
    ``score_perplexity`` records each sample's perplexity even when none is dropped (the dashboard
    colours by it); ``engine`` says where activations are extracted; the space is the same either way.
    ``need``: fail before extraction when Stage 2 leaves fewer samples than this."""
    config.validate()
    if engine is not None:
        engine.validate()
    config.processing.validate(context_length(loaded.model))  # before any work
    stage1: dict[str, Any] = {"source": "given", "why": "a pool given by the caller (e.g. self-generated)"}
    if pool is None:
        counts, stage1 = pool_plan(loaded, config, engine)
        pool, built = build_pool(counts, text_field=config.text_field, seed=config.seed, fields=config.fields)
        if built != counts:  # a corpus had fewer records than its share asked for
            short = ", ".join(f"{c} {built[c]} of {n}" for c, n in counts.items() if built[c] < n)
            given = ", ".join(f"{c} +{built[c] - n}" for c, n in counts.items() if built[c] > n)
            stage1["shortfall"] = short + (f"; the rest drawn from {given}" if given else "")
            log(f"stage 1: some corpora hold fewer records than their share: {stage1['shortfall']}")
        stage1["planned"], stage1["pool_mix"] = counts, built
        stage1["sampling"] = sampling_summary(pool)
        log(f"stage 1: {stage1['why']}; {describe_sampling(pool)}")
        log(f"pool: {len(pool)} records: " + ", ".join(f"{c} {n}" for c, n in built.items()))
    needs_model = score_perplexity or config.processing.drop_worst_perplexity > 0
    model = loaded.model if needs_model else None
    samples, stage2 = process_with_report(
        pool, loaded.tokenizer, config.processing, model, config.activations.batch_tokens
    )
    log(f"after stage 2 (length, format, quality): {len(samples)} samples")
    if need > len(samples):  # before the costly extraction
        raise ColaError(f"cannot select {need} samples from a pool of {len(samples)}; lower --n or raise --pool-size")
    probe_sets = probe_records(config.capabilities, config.probe_size) if with_probes and config.capabilities else {}
    # probes rendered as the samples are, so the map compares like with like
    probe_sets = {cap: render_chat(recs, loaded.tokenizer, config.processing)[0] for cap, recs in probe_sets.items()}
    embedded, *probe_embs = embed_sets(loaded, [samples, *probe_sets.values()], config, progress, engine)
    probes = {cap: e.space for cap, e in zip(probe_sets, probe_embs, strict=True)}
    return Space(embedded, probes, stage1, stage2)


def run_selection(
    embedded: Embedded,
    config: CurateConfig,
    include: Sequence[int] = (),
    exclude: Sequence[int] = (),
    index: TradeoffIndex | None = None,
) -> Selection:
    """Stage 3: ``config.n`` samples by ``config.strategy`` (see :mod:`cola_core.curation.selection`)."""
    if config.n > len(embedded.records):
        raise ColaError(
            f"cannot select {config.n} samples from a pool of {len(embedded.records)}; lower --n or raise --pool-size"
        )
    groups = [r.corpus for r in embedded.records]
    return select(
        embedded.space,
        config.n,
        config.strategy,
        lam=config.lam,
        seed=config.seed,
        groups=groups,
        include=include,
        exclude=exclude,
        index=index,
        experts=embedded.experts,
        expert_floor=embedded.expert_floor,
    )


def measure(
    embedded: Embedded,
    selection: Selection,
    probes: dict[str, np.ndarray] | None = None,
    clusters_k: int | None = None,
    seed: int = 0,
) -> SelectionMetrics:
    """Representativeness, diversity, cluster coverage, mix and capability coverage of a selection."""
    k = min(clusters_k or len(selection.indices), len(embedded.space))
    labels = cluster_space(embedded.space, k, seed).labels
    recs = embedded.records
    return selection_metrics(
        embedded.space,
        selection.indices,
        corpora=[r.corpus for r in recs],
        domains=[r.domain for r in recs],
        tokens=[r.meta.get("n_tokens", 0) for r in recs],
        cluster_labels=labels,
        probes=probes,
        experts=(embedded.experts, embedded.expert_floor) if embedded.experts is not None else None,
    )


def select_and_measure(
    space: Space,
    config: CurateConfig,
    include: Sequence[int] = (),
    exclude: Sequence[int] = (),
    index: TradeoffIndex | None = None,
) -> tuple[Selection, SelectionMetrics]:
    """Stage 3 on a built space, and the selection's metrics (capability coverage on its probes)."""
    selection = run_selection(space.embedded, config, include, exclude, index)
    return selection, measure(space.embedded, selection, space.probes or None, seed=config.seed)


@dataclass
class CurationResult:
    embedded: Embedded
    selection: Selection
    metrics: SelectionMetrics
    paths: dict[str, str]
    seconds: float
    stage1: dict[str, Any] = field(default_factory=dict)
    stage2: dict[str, Any] = field(default_factory=dict)

    @property
    def chosen(self) -> list[Record]:
        return [self.embedded.records[i] for i in self.selection.indices]

    @property
    def pool_mix(self) -> dict[str, int]:
        """Samples per corpus in the pool Stage 3 drew from (after Stage 2)."""
        return dict(Counter(r.corpus for r in self.embedded.records))


def curate(
    loaded: LoadedModel,
    config: CurateConfig,
    out: str | Path,
    log: Callable[[str], None] = lambda s: None,
    progress: Progress | None = None,
    engine: EngineConfig | None = None,
) -> CurationResult:
    """The whole pipeline: pool → Stage 2 → activation space (+ probes) → selection → metrics → exports.
    ``engine`` says where activations are extracted; the outputs are the same either way."""
    t0 = time.perf_counter()
    space = build_space(loaded, config, progress=progress, engine=engine, log=log, need=config.n)
    selection, metrics = select_and_measure(space, config)
    chosen = [space.records[i] for i in selection.indices]
    recorded = asdict(replace(config, activations=config.extraction()))  # the length extraction used
    del recorded["processing"]["seqlen"]  # the set's length is recorded once, by the export (export_all)
    settings = {
        "model": loaded.name,
        "model_fingerprint": loaded.fingerprint,
        "fingerprint": space.embedded.fingerprint,
        "config": recorded,
        "stage1": space.stage1,
        "stage2": space.stage2,
        "metrics": metrics.to_dict(),
        "selection": selection.params,
    }
    paths = export_all(chosen, loaded.tokenizer, config.processing.seqlen, out, settings)
    seconds = time.perf_counter() - t0
    return CurationResult(space.embedded, selection, metrics, paths, seconds, space.stage1, space.stage2)


def describe_stages(stage1: dict[str, Any], stage2: dict[str, Any]) -> dict[str, str]:
    """One line per stage, for people: the pool's mix and why (Stage 1), what Stage 2 changed. The
    CLI's text output and the dashboard's space page both print these."""
    pool = ", ".join(f"{c} {n}" for c, n in stage1.get("pool_mix", {}).items())
    described_1 = f"Pool: {pool} — {stage1.get('why', 'built as given')}"
    dropped = {
        "duplicates": stage2.get("duplicates_dropped", 0),
        "too short": stage2.get("too_short_dropped", 0),
        "by perplexity": stage2.get("perplexity_dropped", 0),
    }
    fmt = stage2.get("reasoning_format", "keep")
    qa = stage2.get("qa_records")
    if qa is None:  # a report written before qa_records was counted
        changes = [f"{stage2.get('reformatted', 0)} re-rendered ({fmt} reasoning format)"]
    elif qa and fmt == "keep":
        changes = [f"{qa} Q&A records kept as written"]
    elif qa:
        changes = [f"{qa} Q&A records in the {fmt} reasoning format ({stage2.get('reformatted', 0)} re-rendered)"]
    else:
        changes = ["no Q&A records to format"]
    chat = stage2.get("chat_template") or {}
    if chat.get("rendered"):
        thinking = f", thinking {chat['thinking']}" if chat.get("thinking", "auto") != "auto" else ""
        changes.append(f"{chat['rendered']} rendered through the model's chat template{thinking}")
    elif chat.get("template"):
        changes.append(f"chat template {'off' if chat.get('mode') == 'off' else 'not used (no Q&A records)'}")
    changes.append(f"{stage2.get('truncated', 0)} truncated to {stage2.get('seqlen', '?')} tokens")
    changes += [f"{n} dropped as {why}" for why, n in dropped.items() if n]
    counts = f"{stage2.get('samples_in', '?')} → {stage2.get('samples_out', '?')} samples, {stage2.get('tokens', 0):,} tokens"
    return {"Stage 1 · which data": described_1, "Stage 2 · how it is shaped": f"{counts}: " + "; ".join(changes)}


__all__ = [  # the pipeline's public face: its steps live in config, embedding and stage1
    "DEFAULT_CAPABILITIES",
    "CurateConfig",
    "CurationResult",
    "Embedded",
    "Space",
    "build_pool",
    "build_space",
    "coverage_by_capability",
    "curate",
    "describe_stages",
    "embed_probes",
    "embed_sets",
    "measure",
    "pool_counts",
    "pool_plan",
    "probe_records",
    "recommend_mix",
    "run_selection",
    "score_corpora",
    "select_and_measure",
]
