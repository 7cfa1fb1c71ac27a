"""Batches by token budget rather than by count: one rule for every forward pass the tool runs
(activation extraction, scoring, generation, compression replays).

A batch of sequences padded to its longest costs ``rows × longest`` tokens of activations, whatever
the model; a fixed count of sequences costs 16× more at seqlen 2048 than at 128. Sorting by length
before cutting keeps padding small, and the budget keeps a forward's transient memory bounded on CPU
and GPU alike (about three ``batch_tokens × intermediate width`` tensors at the MLP, its widest
point: 240 MB for Qwen2.5-0.5B and 700 MB for a 7B Llama in fp32 at the default of 4,096 tokens —
measured on the 0.5B shape, 8,192 put evaluation and curation 0.1× the model's size above 1.5×)."""

from __future__ import annotations

from collections.abc import Sequence

BATCH_TOKENS = 4096  # the default budget of one forward pass, in (padded) tokens


def length_batches(lengths: Sequence[int], batch_tokens: int = BATCH_TOKENS) -> list[list[int]]:
    """Indices sorted by length, cut into batches whose padded size (rows × longest) stays within
    ``batch_tokens``; a single sequence longer than the budget goes alone."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Sorted ascending, so this sequence is the longest so far in the batch.
        if current and (len(current) + 1) * lengths[i] > batch_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def rows_per_batch(seqlen: int, batch_tokens: int = BATCH_TOKENS) -> int:
    """How many sequences of one fixed length fit the budget (at least one)."""
    return max(1, batch_tokens // max(1, seqlen))
