"""Quality by the model's own perplexity (COLA Stage 2, He et al., NeurIPS 2025, §4.2; Ji et al.,
ICLR 2025 filter self-generated text the same way): score each record, drop the worst fraction."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from cola_core.corpora import Record
from cola_core.models.batching import BATCH_TOKENS


def score_perplexity(
    records: Sequence[Record], model, tokenizer, seqlen: int, batch_tokens: int = BATCH_TOKENS
) -> list[Record]:
    """Each record's perplexity under the model, in ``meta["perplexity"]``."""
    from cola_core.models.scoring import per_text_nll

    sums, counts = per_text_nll(model, tokenizer, [r.text for r in records], seqlen, batch_tokens)
    return [
        replace(r, meta={**r.meta, "perplexity": math.exp(s / max(c, 1))})
        for r, s, c in zip(records, sums, counts, strict=True)
    ]


def drop_worst(records: Sequence[Record], fraction: float) -> list[Record]:
    """Drop the ``fraction`` of records with the highest perplexity."""
    if fraction <= 0 or not records:
        return list(records)
    order = sorted(range(len(records)), key=lambda i: records[i].meta["perplexity"])
    keep = sorted(order[: max(1, round(len(records) * (1 - fraction)))])
    return [records[i] for i in keep]
