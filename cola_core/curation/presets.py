"""Named settings presets. ``paper``: COLA as He et al. (NeurIPS 2025) run it, for pruning and GPTQ;
``paper-awq``: the same with AWQ's shorter sequences.

Where each value comes from (docs/method.md has the full table):
- 128 samples of 2,048 tokens, all decoder layers, a 64-d random projection, k-means with k = n and
  the sample nearest each centroid: the defaults of the authors' published code
  (github.com/BokwaiHo/COLA, ``run_cola.py``), matching the paper's description of Stage 3;
- α = 0.6 for Stage 1: the published code's weight of semantic (embedding) similarity against token
  statistics; we measure the semantic half in the model's own activation space instead;
- AWQ: the paper uses shorter sequences for AWQ without a number we could verify, so ``paper-awq``
  takes AutoAWQ's default of 512 tokens (a project choice, not the paper's).
The sequence length is capped by the model's context length (:func:`cap_seqlen`).
"""

from __future__ import annotations

from typing import Any

from cola_core.errors import ColaError

_PAPER = {"n": 128, "seqlen": 2048, "dim": 64, "layers": None, "strategy": "cola", "alpha": 0.6}
PRESETS: dict[str, dict[str, Any]] = {"paper": _PAPER, "paper-awq": {**_PAPER, "seqlen": 512}}


def preset(name: str) -> dict[str, Any]:
    """The settings of a preset, keyed by the CLI flag's destination (``n``, ``seqlen`` …)."""
    if name not in PRESETS:
        raise ColaError(f"unknown preset '{name}': choose one of {', '.join(PRESETS)}")
    return dict(PRESETS[name])


def cap_seqlen(seqlen: int, max_positions: int | None) -> int:
    """A preset's sequence length, capped by the model's context (cola-tiny: 512 positions)."""
    return min(seqlen, max_positions) if max_positions else seqlen
