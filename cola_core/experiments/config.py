"""Experiment configs: a model, calibration sets (corpora × strategy), compression settings, seeds and
claims to judge; built-ins live as JSON in ``configs/``. Defaults are the pipeline's own. A config is
validated when it is read: a claim naming a set, a compression or a score the config does not have is
an error then, not a silent "inconclusive" in the report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cola_core.compress import CompressConfig
from cola_core.curation.pipeline import CurateConfig
from cola_core.curation.processing import ProcessingConfig
from cola_core.errors import ColaError
from cola_core.evaluation.suite import CAPABILITIES, DEFAULT_LIMIT
from cola_core.models.loading import DEFAULT_MODEL

BUILTIN_DIR = Path(__file__).resolve().parent / "configs"
# The scores evaluation.suite.evaluate reports per capability (a test checks this against a real run).
SCORES_OF = {"code": ("code", "code_next_token"), "math": ("math", "math_tier1", "math_tier2", "math_tier3")}
CLAIM_FIELDS = ("title", "better", "worse", "capability", "compression")


@dataclass(frozen=True)
class CalibrationSpec:
    name: str
    corpora: tuple[str, ...] = CurateConfig.corpora
    strategy: str = CurateConfig.strategy
    lam: float = CurateConfig.lam
    # The grid compares fixed corpus mixes, so a set opts into Stage 1's mix (He et al. §4.1) explicitly.
    stage1: bool = False
    self_generated: bool = False


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    model: str = DEFAULT_MODEL
    n: int = CurateConfig.n
    pool_size: int = CurateConfig.pool_size
    seqlen: int = ProcessingConfig.seqlen
    # "pack" fills every sample to exactly ``seqlen`` real tokens, so all sets get the same token
    # budget (n × seqlen) whatever their domain's record lengths; "truncate" keeps records whole
    # up to ``seqlen`` (budgets then differ by domain and the report shows them).
    mode: str = ProcessingConfig.mode
    calibration_sets: tuple[CalibrationSpec, ...] = ()
    compression: tuple[dict, ...] = ()
    seeds: tuple[int, ...] = (0, 1, 2)
    capabilities: tuple[str, ...] = CAPABILITIES
    limit: int = DEFAULT_LIMIT
    claims: tuple[dict, ...] = ()
    description: str = ""

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ExperimentConfig:
        try:
            sets = tuple(
                CalibrationSpec(**{**c, "corpora": tuple(c.get("corpora", CalibrationSpec.corpora))})
                for c in d["calibration_sets"]
            )
            return ExperimentConfig(
                **{
                    **d,
                    "calibration_sets": sets,
                    "compression": tuple(d["compression"]),
                    "seeds": tuple(d.get("seeds", (0,))),
                    "capabilities": tuple(d.get("capabilities", ExperimentConfig.capabilities)),
                    "claims": tuple(d.get("claims", ())),
                }
            )
        except (KeyError, TypeError) as exc:
            raise ColaError(f"bad experiment config: {exc}") from None

    @property
    def scores(self) -> tuple[str, ...]:
        """Every score a run of this config reports (a capability and its sub-scores)."""
        return tuple(s for c in self.capabilities for s in SCORES_OF.get(c, (c,)))

    def validate(self) -> ExperimentConfig:
        """One clear error for anything the grid or the report would trip over; returns the config."""
        names = [s.name for s in self.calibration_sets]
        if not names or len(set(names)) != len(names) or "dense" in names:
            raise ColaError(f"{self.name}: calibration sets need distinct names other than 'dense', got {names}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ColaError(f"{self.name}: seeds must be distinct and at least one, got {list(self.seeds)}")
        if min(self.n, self.pool_size, self.seqlen, self.limit) <= 0:
            raise ColaError(f"{self.name}: n, pool_size, seqlen and limit must be positive")
        if self.mode not in ("truncate", "pack"):
            raise ColaError(f"{self.name}: unknown length mode '{self.mode}': use truncate or pack")
        unknown = sorted(set(self.capabilities) - set(CAPABILITIES))
        if unknown:
            raise ColaError(f"{self.name}: unknown capability '{unknown[0]}': choose from {', '.join(CAPABILITIES)}")
        for c in self.compression:
            try:
                CompressConfig(**c).validate()
            except TypeError as exc:
                raise ColaError(f"{self.name}: compression {c}: {exc}") from None
        labels = [compression_label(c) for c in self.compression]
        if not labels or len(set(labels)) != len(labels):
            raise ColaError(f"{self.name}: compression settings must be distinct and at least one")
        for i, claim in enumerate(self.claims, 1):
            _check_claim(i, claim, names, labels, self.scores)
        return self


def _check_claim(i: int, claim: dict, sets: list[str], labels: list[str], scores: tuple[str, ...]) -> None:
    where = f"claim {i} ({claim.get('title', 'untitled')})"
    missing = [f for f in CLAIM_FIELDS if f not in claim]
    if missing:
        raise ColaError(f"{where}: missing {', '.join(missing)}; a claim has {', '.join(CLAIM_FIELDS)}")
    for field, valid in (("better", sets), ("worse", sets), ("compression", labels), ("capability", scores)):
        if claim[field] not in valid:
            raise ColaError(f"{where}: unknown {field} '{claim[field]}': the config has {', '.join(valid)}")
    if claim["better"] == claim["worse"]:
        raise ColaError(f"{where}: compares '{claim['better']}' with itself")


def list_builtin() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.json"))


def load_config(name_or_path: str) -> ExperimentConfig:
    path = Path(name_or_path)
    if not path.is_file():
        path = BUILTIN_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise ColaError(
            f"no experiment config '{name_or_path}': give a JSON file or one of {', '.join(list_builtin())}"
        )
    try:
        return ExperimentConfig.from_dict(json.loads(path.read_text())).validate()
    except json.JSONDecodeError as exc:
        raise ColaError(f"{path.name} is not valid JSON (line {exc.lineno}: {exc.msg})") from None


def compression_label(c: dict) -> str:
    """A compression setting's name in claims and reports: its keys sorted, ``key=value`` joined by ``-``."""
    return "-".join(f"{k}={v}" for k, v in sorted(c.items()))
