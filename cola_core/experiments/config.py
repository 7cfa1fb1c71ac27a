"""Experiment configs: a model, calibration sets (corpora × strategy), compression settings, seeds and
claims to judge; built-ins live as JSON in ``configs/``. Defaults are the pipeline's own."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cola_core.curation.pipeline import CurateConfig
from cola_core.curation.processing import ProcessingConfig
from cola_core.errors import ColaError
from cola_core.evaluation.suite import CAPABILITIES, DEFAULT_LIMIT
from cola_core.models.loading import DEFAULT_MODEL

BUILTIN_DIR = Path(__file__).resolve().parent / "configs"


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
        return ExperimentConfig.from_dict(json.loads(path.read_text()))
    except json.JSONDecodeError as exc:
        raise ColaError(f"{path.name} is not valid JSON (line {exc.lineno}: {exc.msg})") from None


def compression_label(c: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in sorted(c.items()))
