"""Stage 1 of COLA (He et al., NeurIPS 2025, §4.1) as it builds the pool: score the candidate corpora
against the capability probes (:mod:`cola_core.curation.correspondence`), turn the deployment into
shares, and draw the pool in them (files and datasets as a seeded sample of their rows)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cola_core.corpora import Record, load_records
from cola_core.corpora.fields import fields_for
from cola_core.curation.config import CurateConfig
from cola_core.curation.correspondence import correspondence_table, recommend_mix, unigram_distribution
from cola_core.curation.embedding import embed_sets, probe_records
from cola_core.curation.selection import apportion
from cola_core.engine.config import EngineConfig
from cola_core.errors import ColaError
from cola_core.models.chat import encode
from cola_core.models.loading import LoadedModel

if TYPE_CHECKING:  # only an annotation here: no pandas import for every CLI command
    import pandas as pd


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
) -> tuple[list[Record], dict[str, int]]:
    """The pool and the records each corpus spec gave: ``corpora`` as a {spec: records} plan, or a
    list drawn in equal shares of ``pool_size``. Built-in corpora give their pool split; files and
    datasets a uniform sample fixed by ``seed`` (the head when None), their Q&A columns mapped by
    ``fields``. Counts are kept per spec as given (a file's records carry its stem as their corpus
    name, not the path on the command line, issue #32). A corpus holding fewer records than its share
    gives what it has, and the rest is asked of the corpora that gave their whole share, in proportion
    to their shares, until the pool is full or none has more."""
    plan = corpora if isinstance(corpora, dict) else dict.fromkeys(corpora, math.ceil(pool_size / len(corpora)))
    asked, drawn, exhausted = dict(plan), {}, set()
    while True:
        for spec, count in asked.items():
            if spec not in exhausted and len(drawn.get(spec, ())) < count:
                mapping = fields_for(fields, spec)
                drawn[spec] = load_records(spec, "pool", limit=count, text_field=text_field, fields=mapping, seed=seed)
                if not drawn[spec]:
                    raise ColaError(f"corpus '{spec}' is empty")
                if len(drawn[spec]) < count:
                    exhausted.add(spec)
        missing = sum(plan.values()) - sum(map(len, drawn.values()))
        room = {s: float(plan[s]) for s in plan if s not in exhausted and plan[s] > 0}
        if missing <= 0 or not room:
            break
        extra = apportion(missing, room)  # by the plan's shares; each round fills or exhausts a corpus
        asked = {s: asked[s] + extra.get(s, 0) for s in asked}
    return [r for spec in plan for r in drawn[spec]], {s: len(drawn[s]) for s in plan}


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
            c,
            "pool",
            limit=per_corpus,
            text_field=config.text_field,
            fields=fields_for(config.fields, c),
            seed=config.seed,
        )
        for c in corpora
    }
    probes = probe_records(capabilities, per_corpus)

    def describe(sets: dict[str, list[Record]]) -> tuple[dict, dict]:
        ids = {name: encode(loaded.tokenizer, [r.text for r in recs]) for name, recs in sets.items()}
        embedded = embed_sets(loaded, list(sets.values()), config, engine=engine)
        points = {name: e.space for name, e in zip(sets, embedded, strict=True)}
        return points, {name: unigram_distribution(i, len(loaded.tokenizer)) for name, i in ids.items()}

    corpus_pts, corpus_uni = describe(candidates)
    probe_pts, probe_uni = describe(probes)
    return correspondence_table(corpus_pts, probe_pts, corpus_uni, probe_uni, alpha)
