"""The COLA pipeline, composed once (He et al., NeurIPS 2025): the CLI, the experiment runner and the
dashboard all call these functions, so a setting means the same thing everywhere.

    corpora ──build_pool──▶ Pool ──Stage 2 (process_records)──▶ Samples
      ──build_space: activations (pool and capability probes in one extraction, local or Ray)
        → random projection──▶ Space
      ──select_and_measure: Stage 3 selection + metrics──▶ (Selection, SelectionMetrics)
      ──export_all──▶ calibration set files                       (all of it: :func:`curate`)

Stage 1 (:func:`score_corpora`, domain correspondence of candidate corpora to the capability probes)
scores corpora before a pool is built; see :mod:`cola_core.curation.correspondence`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cola_core.corpora import BUILTIN_CORPORA, Record, load_records
from cola_core.corpora.fields import parse_fields
from cola_core.corpora.sampling import describe_sampling, sampling_summary
from cola_core.curation.activations import ActivationConfig, Progress, cached_activations
from cola_core.curation.correspondence import correspondence_table, recommend_mix, unigram_distribution
from cola_core.curation.export import export_all
from cola_core.curation.metrics import SelectionMetrics, selection_metrics
from cola_core.curation.processing import ProcessingConfig, process_with_report
from cola_core.curation.selection import STRATEGIES, Selection, TradeoffIndex, select
from cola_core.curation.space import cluster_space, project_activations
from cola_core.engine.config import EngineConfig
from cola_core.errors import ColaError
from cola_core.models.loading import LoadedModel, context_length
from cola_core.storage.fingerprints import pool_fingerprint

DEFAULT_CAPABILITIES = ("prose", "code", "math", "facts")  # probe corpora; prose stands for the capability `lm`


def coverage_by_capability(capability_coverage: dict[str, float]) -> dict[str, float]:
    """Coverage per probe corpus, keyed by the evaluated capability it stands for (prose → lm)."""
    return {{"prose": "lm"}.get(k, k): v for k, v in capability_coverage.items()}


@dataclass(frozen=True)
class CurateConfig:
    """Every curation setting and its one default; the CLI flags and the dashboard's widgets read
    their defaults from here (and from :class:`ProcessingConfig` / :class:`ActivationConfig`)."""

    corpora: tuple[str, ...] = ("prose", "code", "math", "facts")
    pool_size: int = 1000
    n: int = 128  # calibration samples (the paper's n = 128, §5)
    strategy: str = "cola"
    lam: float = 0.5
    seed: int = 0
    dim: int = 64  # random projection dimension (§4.3)
    capabilities: tuple[str, ...] = DEFAULT_CAPABILITIES
    probe_size: int = 100
    text_field: str = "text"
    fields: str | None = None  # question=COL,answer=COL[,rationale=COL]: Q&A columns of files and datasets
    # Stage 1 (§4.1): score the corpora against the capability probes and draw the pool in that mix
    stage1: bool = True  # False: an equal share of each corpus (the ablation "no Stage 1")
    deployment: str = "general"  # general: every capability weighs the same; targeted: `target` weighs 3×
    target: str | None = None
    weights: tuple[tuple[str, float], ...] = ()  # capability weights; replace the deployment's when given
    alpha: float = 0.5  # weight of activation vs token similarity in the correspondence score
    stage1_samples: int = 100  # records per corpus and per probe set that Stage 1 scores
    mix: tuple[tuple[str, float], ...] = ()  # the user's own pool shares; overrides Stage 1
    activations: ActivationConfig = field(default_factory=ActivationConfig)
    processing: ProcessingConfig = field(default_factory=ProcessingConfig)

    def validate(self) -> None:
        if not self.corpora:
            raise ColaError("name at least one corpus")
        if self.pool_size <= 0 or self.n <= 0:
            raise ColaError(f"pool size and n must be positive, got {self.pool_size} and {self.n}")
        if self.probe_size <= 0 or self.activations.batch_tokens <= 0:
            raise ColaError(
                f"--probe-size and --batch-tokens must be positive, got {self.probe_size}, {self.activations.batch_tokens}"
            )
        if self.strategy not in STRATEGIES:
            raise ColaError(f"unknown strategy '{self.strategy}': choose one of {', '.join(STRATEGIES)}")
        if not 0.0 <= self.lam <= 1.0:
            raise ColaError(f"λ (lam) must lie in [0, 1], got {self.lam}")
        if self.deployment not in ("general", "targeted"):
            raise ColaError(f"unknown deployment '{self.deployment}': use general or targeted")
        if self.deployment == "targeted" and not self.weights and self.target not in self.capabilities:
            caps = ", ".join(self.capabilities)
            raise ColaError(
                f"a targeted deployment needs --target, one of the capabilities ({caps}); got {self.target}"
            )
        if not 0.0 <= self.alpha <= 1.0 or self.stage1_samples <= 0:
            raise ColaError(
                f"α must lie in [0, 1] and the Stage 1 samples be positive, got {self.alpha}, {self.stage1_samples}"
            )
        if self.fields is not None:
            parse_fields(self.fields)  # one clear line on a bad mapping, before any work
        strangers = [c for c, _ in self.weights if c not in self.capabilities]
        if strangers:
            caps = ", ".join(self.capabilities)
            raise ColaError(f"--weights names {', '.join(strangers)}, not among --capabilities ({caps})")
        unknown = [c for c, _ in self.mix if c not in self.corpora]
        if unknown:
            raise ColaError(f"--mix names {', '.join(unknown)}, not among --corpora ({', '.join(self.corpora)})")
        for flag, shares in (("--mix", self.mix), ("--weights", self.weights)):
            values = [w for _, w in shares]
            if values and (not all(math.isfinite(w) and w >= 0 for w in values) or sum(values) <= 0):
                raise ColaError(f"{flag} numbers must be finite, non-negative and not all zero, got {values}")

    def extraction(self) -> ActivationConfig:
        """What activations are extracted with: Stage 2's sequence length, the one the samples were
        cut to (``ActivationConfig.seqlen`` is that cap for callers of the extraction alone)."""
        return replace(self.activations, seqlen=self.processing.seqlen)


@dataclass
class Embedded:
    """Samples placed in the activation space."""

    records: list[Record]
    space: np.ndarray
    fingerprint: str  # storage.fingerprints.pool_fingerprint of the records


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


def pool_counts(shares: dict[str, float], pool_size: int) -> dict[str, int]:
    """Records per corpus for a pool of ``pool_size`` in these shares (largest remainder, so the
    counts add up exactly); corpora with no share are left out."""
    total = sum(shares.values())
    exact = {c: pool_size * w / total for c, w in shares.items() if w > 0}
    counts = {c: math.floor(x) for c, x in exact.items()}
    for c in sorted(exact, key=lambda c: counts[c] - exact[c])[: pool_size - sum(counts.values())]:
        counts[c] += 1
    return {c: n for c, n in counts.items() if n > 0}


def build_pool(
    corpora: Sequence[str] | dict[str, int],
    pool_size: int = 0,
    text_field: str = "text",
    seed: int | None = None,
    fields: str | None = None,
) -> list[Record]:
    """The pool: ``corpora`` as a {corpus: records} plan, or a list drawn in equal shares of
    ``pool_size``. Built-in corpora give their pool split; files and datasets a uniform sample fixed
    by ``seed`` (the head when None), their Q&A columns mapped by ``fields``."""
    plan = corpora if isinstance(corpora, dict) else dict.fromkeys(corpora, math.ceil(pool_size / len(corpora)))
    pool: list[Record] = []
    for spec, count in plan.items():
        records = load_records(spec, "pool", limit=count, text_field=text_field, fields=fields, seed=seed)
        if not records:
            raise ColaError(f"corpus '{spec}' is empty")
        pool += records
    return pool


def pool_plan(
    loaded: LoadedModel, config: CurateConfig, engine: EngineConfig | None = None
) -> tuple[dict[str, int], dict[str, Any]]:
    """Stage 1 (He et al., §4.1): records per corpus, and a record of how that mix was chosen.

    The user's ``mix`` wins; otherwise, with ``stage1`` and more than one corpus, the corpora are
    scored against the capability probes (:func:`score_corpora`) and the deployment turns the table
    into shares (:func:`~cola_core.curation.correspondence.recommend_mix`); else equal shares."""
    corpora = list(config.corpora)
    if config.mix:
        shares, why = dict(config.mix), {"source": "user", "why": "shares given with --mix"}
    elif config.stage1 and len(corpora) > 1 and config.capabilities:
        table = score_corpora(loaded, corpora, config.capabilities, config, config.alpha, config.stage1_samples, engine)
        recommended = recommend_mix(table, config.deployment, config.target, weights=dict(config.weights))
        shares = {c: float(recommended.get(c, 0.0)) for c in corpora}
        best = table.loc[table.groupby("capability")["score"].idxmax(), ["capability", "corpus"]]
        why = {
            "source": "stage1",
            "why": (
                "capability weights " + ", ".join(f"{c} {w:g}" for c, w in config.weights)
                if config.weights
                else f"{config.deployment} deployment"
                + (f" targeting {config.target}" if config.deployment == "targeted" else "")
            )
            + "; best corpus per capability: "
            + ", ".join(f"{r.capability} → {r.corpus}" for r in best.itertuples()),
            "deployment": config.deployment,
            "target": config.target,
            "weights": dict(config.weights),
            "alpha": config.alpha,
            "table": table.round(4).to_dict(orient="records"),
        }
    else:
        reason = "--no-stage1" if not config.stage1 else "a single corpus" if len(corpora) < 2 else "no capabilities"
        shares, why = dict.fromkeys(corpora, 1.0), {"source": "equal", "why": f"equal shares ({reason})"}
    counts = pool_counts(shares, config.pool_size)
    if why["source"] == "equal":  # as before Stage 1 existed: ⌈pool / corpora⌉ each (the ablation)
        counts = dict.fromkeys(corpora, math.ceil(config.pool_size / len(corpora)))
    total = sum(shares.values())
    return counts, {**why, "shares": {c: round(w / total, 4) for c, w in shares.items()}, "pool_mix": counts}


def probe_records(capabilities: Sequence[str], limit: int) -> dict[str, list[Record]]:
    """A capability's probe set: a built-in corpus's held-out split, or any corpus spec whole."""
    return {
        cap: load_records(cap, "heldout" if cap in BUILTIN_CORPORA else "pool", limit=limit) for cap in capabilities
    }


def embed_sets(
    loaded: LoadedModel,
    record_sets: Sequence[Sequence[Record]],
    config: CurateConfig,
    progress: Progress | None = None,
    engine: EngineConfig | None = None,
) -> list[Embedded]:
    """Pooled activations of each record set (disk-cached; extracted here or on Ray workers, which
    read and write the same cache entry) projected to ``config.dim`` dimensions. On Ray the sets
    share one pipeline (one model load per worker)."""
    extraction = config.extraction()
    text_sets = [[r.text for r in records] for records in record_sets]
    if engine is not None and engine.kind == "ray":
        from cola_core.curation.ray_activations import ray_activation_sets
        from cola_core.engine.config import ModelSpec

        acts = ray_activation_sets(ModelSpec.of(loaded), text_sets, extraction, engine, progress)
    else:
        total, offset, acts = sum(map(len, text_sets)), 0, []
        for texts in text_sets:  # progress counts samples over all sets, as on Ray
            step = (lambda done, _n, o=offset: progress(o + done, total)) if progress else None
            acts.append(cached_activations(loaded.model, loaded.tokenizer, loaded.fingerprint, texts, extraction, step))
            offset += len(texts)
    return [
        Embedded(
            list(records),
            project_activations(a, config.dim, config.seed),
            pool_fingerprint(texts, [r.id for r in records]),
        )
        for records, texts, a in zip(record_sets, text_sets, acts, strict=True)
    ]


def embed_probes(
    loaded: LoadedModel, config: CurateConfig, engine: EngineConfig | None = None
) -> dict[str, np.ndarray]:
    """The capability probe sets of ``config`` in the projected space (for a space built without them)."""
    probes = probe_records(config.capabilities, config.probe_size)
    embedded = embed_sets(loaded, list(probes.values()), config, engine=engine)
    return {cap: e.space for cap, e in zip(probes, embedded, strict=True)}


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
        pool = build_pool(counts, text_field=config.text_field, seed=config.seed, fields=config.fields)
        built = {c: sum(r.corpus == c for r in pool) for c in counts}
        if built != counts:  # a corpus had fewer records than its share asked for
            short = ", ".join(f"{c} {built[c]} of {n}" for c, n in counts.items() if built[c] < n)
            stage1["shortfall"] = short
            log(f"stage 1: some corpora hold fewer records than their share: {short}")
        stage1["planned"], stage1["pool_mix"] = counts, built
        stage1["sampling"] = sampling_summary(pool)
        log(f"stage 1: {stage1['why']}; {describe_sampling(pool)}")
        log(f"pool: {len(pool)} records: " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    needs_model = score_perplexity or config.processing.drop_worst_perplexity > 0
    model = loaded.model if needs_model else None
    samples, stage2 = process_with_report(pool, loaded.tokenizer, config.processing, model)
    log(f"after stage 2 (length, format, quality): {len(samples)} samples")
    if need > len(samples):  # before the costly extraction
        raise ColaError(f"cannot select {need} samples from a pool of {len(samples)}; lower --n or raise --pool-size")
    probe_sets = probe_records(config.capabilities, config.probe_size) if with_probes and config.capabilities else {}
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
    settings = {
        "model": loaded.name,
        "model_fingerprint": loaded.fingerprint,
        "fingerprint": space.embedded.fingerprint,
        "config": asdict(config),
        "seqlen": config.processing.seqlen,
        "stage1": space.stage1,
        "stage2": space.stage2,
        "metrics": metrics.to_dict(),
    }
    paths = export_all(chosen, loaded.tokenizer, config.processing.seqlen, out, settings)
    seconds = time.perf_counter() - t0
    return CurationResult(space.embedded, selection, metrics, paths, seconds, space.stage1, space.stage2)


def score_corpora(
    loaded: LoadedModel,
    corpora: Sequence[str],
    capabilities: Sequence[str],
    config: CurateConfig,
    alpha: float = CurateConfig.alpha,
    per_corpus: int = CurateConfig.stage1_samples,
    engine: EngineConfig | None = None,
) -> pd.DataFrame:
    """Stage 1 table for candidate corpora × capabilities (see :mod:`cola_core.curation.correspondence`);
    ``engine`` says where the activations are extracted."""
    candidates = {
        c: load_records(
            c, "pool", limit=per_corpus, text_field=config.text_field, fields=config.fields, seed=config.seed
        )
        for c in corpora
    }
    probes = probe_records(capabilities, per_corpus)

    def describe(sets: dict[str, list[Record]]) -> tuple[dict, dict]:
        ids = {name: loaded.tokenizer([r.text for r in recs])["input_ids"] for name, recs in sets.items()}
        embedded = embed_sets(loaded, list(sets.values()), config, engine=engine)
        points = {name: e.space for name, e in zip(sets, embedded, strict=True)}
        return points, {name: unigram_distribution(i, len(loaded.tokenizer)) for name, i in ids.items()}

    corpus_pts, corpus_uni = describe(candidates)
    probe_pts, probe_uni = describe(probes)
    return correspondence_table(corpus_pts, probe_pts, corpus_uni, probe_uni, alpha)


__all__ = [
    "CurateConfig",
    "CurationResult",
    "Space",
    "build_pool",
    "build_space",
    "curate",
    "embed_sets",
    "recommend_mix",
    "score_corpora",
    "select_and_measure",
]
