"""Every curation setting and its one default (He et al., NeurIPS 2025: the three stages' knobs); the
CLI flags, the dashboard's widgets and the experiment configs read their defaults from here."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from cola_core.corpora.fields import corpus_mappings
from cola_core.curation.activations import ActivationConfig
from cola_core.curation.processing import ProcessingConfig
from cola_core.curation.selection import STRATEGIES
from cola_core.errors import ColaError
from cola_core.settings import setting

DEFAULT_CAPABILITIES = ("prose", "code", "math", "facts")  # probe corpora; prose stands for the capability `lm`


def coverage_by_capability(capability_coverage: dict[str, float]) -> dict[str, float]:
    """Coverage per probe corpus, keyed by the evaluated capability it stands for (prose → lm)."""
    return {{"prose": "lm"}.get(k, k): v for k, v in capability_coverage.items()}


@dataclass(frozen=True)
class CurateConfig:
    """Every curation setting, its one default and its help: the CLI's flags, the dashboard's session
    defaults and the experiment configs' keys are derived from these fields and those of
    :class:`ProcessingConfig` / :class:`ActivationConfig` (:mod:`cola_core.settings`)."""

    corpora: tuple[str, ...] = setting(
        ("prose", "code", "math", "facts"), "comma-separated: built-in names, file paths, hf:NAME[:CONFIG[:SPLIT]]"
    )
    pool_size: int = setting(1000, "candidate samples drawn from the corpora")
    n: int = setting(128, "calibration samples to select", selection=True)  # the paper's n = 128, §5
    strategy: str = setting("cola", "Stage 3 selection", choices=lambda: STRATEGIES, selection=True)
    lam: float = setting(0.5, "tradeoff: 1 = representativeness, 0 = diversity", selection=True)
    seed: int = setting(0, "projection and selection seed")
    dim: int = setting(64, "random projection dimension")  # §4.3
    capabilities: tuple[str, ...] = setting(
        DEFAULT_CAPABILITIES, "probe sets: built-in names (held-out split) or corpus specs"
    )
    probe_size: int = setting(100, "held-out samples per capability probe set")
    text_field: str = setting("text", "field/column holding the text (files, datasets)")
    fields: str | None = setting(
        None,
        "Q&A columns of files and hf: datasets, question=COL,answer=COL[,rationale=COL] (every corpus), or per "
        "corpus SPEC:question=COL,answer=COL;SPEC2:…: rendered as Question / Reasoning / Answer (GSM8K '#### N' "
        "answers parsed)",
    )
    # Stage 1 (§4.1): score the corpora against the capability probes and draw the pool in that mix
    stage1: bool = setting(True, "equal shares of each corpus instead of Stage 1's mix (ablation)")
    deployment: str = setting(
        "general",
        "Stage 1: general (every capability weighs the same) or targeted (--target weighs 3×)",
        choices=("general", "targeted"),
    )
    target: str | None = setting(None, "Stage 1: the capability to keep first (targeted)")
    weights: tuple[tuple[str, float], ...] = setting(
        (), "Stage 1: capability weights, e.g. math=3,code=1 (replace --deployment)"
    )
    alpha: float = setting(0.5, "Stage 1: weight of activation vs token similarity")
    stage1_samples: int = setting(100, "Stage 1: records per corpus and probe set scored", flag="--per-corpus")
    mix: tuple[tuple[str, float], ...] = setting(
        (), "your own pool shares, e.g. math=0.5,prose=0.5 (overrides Stage 1)"
    )
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
        if self.fields is not None:  # one clear line on a bad mapping, before any work
            strangers = [s for s in corpus_mappings(self.fields) if s is not None and s not in self.corpora]
            if strangers:
                raise ColaError(f"--fields maps {strangers[0]}, not among --corpora ({', '.join(self.corpora)})")
        strangers = [c for c, _ in self.weights if c not in self.capabilities]
        if strangers:
            caps = ", ".join(self.capabilities)
            raise ColaError(f"--weights names {', '.join(strangers)}, not among --capabilities ({caps})")
        if self.mix and not self.stage1:
            raise ColaError("--mix gives the pool's shares and --no-stage1 asks for equal ones: drop one of them")
        if self.weights and (self.deployment != "general" or self.target is not None):
            raise ColaError("--weights replaces --deployment and --target: give the weights alone, or a deployment")
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
