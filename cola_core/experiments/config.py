"""Experiment configs: a model, calibration sets (corpora × strategy), compression settings, seeds and
claims to judge; built-ins live as JSON in ``configs/``.

Curation settings are not re-listed here: any flat setting of
:class:`~cola_core.curation.config.CurateConfig` (``n``, ``seqlen``, ``mode``, ``dim`` …) may stand at
the top level of a config (every set) or in a set (that set), and :meth:`ExperimentConfig.curate_config`
builds each set's config from them with :func:`cola_core.settings.build`. Compression entries are
:class:`~cola_core.compress.config.CompressConfig` settings. A config is validated when it is read: an
unknown setting, or a claim naming a set, a compression or a score the config does not have, is an
error then, not a silent "inconclusive" in the report."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from cola_core.compress import CompressConfig
from cola_core.corpora.selfgen import SelfGenConfig
from cola_core.curation.pipeline import DEFAULT_CAPABILITIES, CurateConfig
from cola_core.errors import ColaError
from cola_core.evaluation.suite import CAPABILITIES, DEFAULT_LIMIT, item_clusters
from cola_core.models.loading import DEFAULT_MODEL
from cola_core.settings import build, flat_fields

BUILTIN_DIR = Path(__file__).resolve().parent / "configs"
# The scores evaluation.suite.evaluate reports per capability (a test checks this against a real run).
SCORES_OF = {"code": ("code", "code_next_token"), "math": ("math", "math_tier1", "math_tier2", "math_tier3")}
CLAIM_FIELDS = ("title", "better", "worse", "capability", "compression")
# optional: the claim's Holm family (experiments/claims.py; default "primary")
CLAIM_OPTIONAL = ("family",)


# Where an experiment's curation differs from the CLI's: the grid compares fixed corpus mixes, so a
# set opts into Stage 1's mix (He et al. §4.1) explicitly.
EXPERIMENT_CURATION = {"stage1": False, "capabilities": DEFAULT_CAPABILITIES}


def _curation(where: str, d: dict[str, Any], own: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    """The flat curation settings among a config's (or a set's) keys; anything else is an error."""
    # the seed is the grid's (``seeds``); a key of the experiment's own wins (``capabilities``: the
    # evaluated ones, not Stage 1's probes)
    settings = set(flat_fields(CurateConfig)) - {"seed", *own}
    unknown = sorted(set(d) - settings - set(own))
    if unknown:
        raise ColaError(
            f"{where}: unknown key '{unknown[0]}': use {', '.join(own)} or a curation setting ({', '.join(sorted(settings))})"
        )
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in settings)


@dataclass(frozen=True)
class CalibrationSpec:
    """One calibration set of the grid: a name, whether its pool is self-generated (Ji et al.) and with
    which generation settings beyond the experiment's (``"self_generated": {"prompts": "math"}``: the
    model's own reasoning traces on the math questions; corpora/selfgen.py), and its own curation
    settings (e.g. ``corpora``, ``strategy``, ``lam``, ``stage1``) as flat pairs."""

    name: str
    self_generated: bool = False
    curation: tuple[tuple[str, Any], ...] = ()
    selfgen: tuple[tuple[str, Any], ...] = ()

    @staticmethod
    def from_dict(d: dict[str, Any]) -> CalibrationSpec:
        own = ("name", "self_generated")
        where = f"calibration set {d.get('name', '(no name)')}"
        generated = d.get("self_generated", False)
        selfgen: tuple[tuple[str, Any], ...] = ()
        if isinstance(generated, dict):
            known = {f.name for f in fields(SelfGenConfig)}
            unknown = sorted(set(generated) - known)
            if unknown:
                raise ColaError(
                    f"{where}: self_generated has no setting {unknown[0]!r}; known: {', '.join(sorted(known))}"
                )
            selfgen = tuple(sorted(generated.items()))
        return CalibrationSpec(d["name"], bool(generated), _curation(where, d, own), selfgen)


@dataclass(frozen=True)
class ExperimentConfig:
    """The grid. ``curation`` holds the curation settings every set shares (flat pairs; a set's own
    win); with ``"mode": "pack"`` every sample is exactly ``seqlen`` real tokens, so all sets get the
    same token budget (n × seqlen) whatever their domain's record lengths."""

    name: str
    model: str = DEFAULT_MODEL
    calibration_sets: tuple[CalibrationSpec, ...] = ()
    compression: tuple[dict, ...] = ()
    seeds: tuple[int, ...] = (0, 1, 2)
    capabilities: tuple[str, ...] = CAPABILITIES
    limit: int = DEFAULT_LIMIT
    claims: tuple[dict, ...] = ()
    description: str = ""
    # The bootstrap resamples whole item clusters (facts by town, prose/code by source module, math
    # by template: evaluation.suite.item_clusters) rather than single items
    cluster_items: bool = False
    # Model variants (the model as a random effect): the grid runs once per model, as the experiment
    # "name@model"; the report judges each model and the models pooled (experiments/claims.py)
    models: tuple[str, ...] = ()
    # What a claim asks (experiments/claims.py): "seeds" — would another draw of the calibration sets
    # do the same (seeds resampled; the experiment's question) — or "items": do these sets differ on
    # these held-out items, for this model (seeds averaged item by item; the demo's question)
    claims_over: str = "seeds"
    curation: tuple[tuple[str, Any], ...] = ()

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ExperimentConfig:
        own = tuple(f.name for f in fields(ExperimentConfig) if f.name != "curation")
        if "model" in d and d.get("models"):
            raise ColaError(f"experiment {d.get('name', '(no name)')}: give model or models, not both")
        try:
            sets = tuple(CalibrationSpec.from_dict(c) for c in d["calibration_sets"])
            return ExperimentConfig(
                **{
                    **{k: v for k, v in d.items() if k in own},
                    "calibration_sets": sets,
                    "compression": tuple(d["compression"]),
                    "seeds": tuple(d.get("seeds", (0,))),
                    "capabilities": tuple(d.get("capabilities", ExperimentConfig.capabilities)),
                    "claims": tuple(d.get("claims", ())),
                    "models": tuple(d.get("models", ())),
                    "curation": _curation(f"experiment {d.get('name', '(no name)')}", d, own),
                }
            )
        except (KeyError, TypeError) as exc:
            raise ColaError(f"bad experiment config: {exc}") from None

    def per_model(self) -> tuple[ExperimentConfig, ...]:
        """The experiment once per model of ``models`` (named ``name@model``), or itself alone."""
        if not self.models:
            return (self,)
        return tuple(replace(self, name=f"{self.name}@{m}", model=m, models=()) for m in self.models)

    def item_clusters(self) -> dict[str, list[str]] | None:
        """Each score's item clusters when the config asks for the cluster bootstrap, else None."""
        if not self.cluster_items:
            return None
        return {score: item_clusters(score, self.limit) for score in self.scores}

    def to_dict(self) -> dict[str, Any]:
        """The config as its JSON file would hold it (flat curation keys): :meth:`from_dict` reads it back."""
        sets = [
            {"name": s.name, "self_generated": dict(s.selfgen) or s.self_generated, **dict(s.curation)}
            for s in self.calibration_sets
        ]
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("curation", "calibration_sets")}
        return {**own, **dict(self.curation), "calibration_sets": sets}

    def curate_config(self, spec: CalibrationSpec, seed: int) -> CurateConfig:
        """One set's curation settings at one seed: the pipeline as the CLI runs it, with the
        experiment's own defaults (:data:`EXPERIMENT_CURATION`), the shared settings, the set's, and
        the seed. Packed samples keep only full windows (``min_tokens = seqlen``, unless given), so
        every set holds n × seqlen real tokens."""
        given = {**EXPERIMENT_CURATION, **dict(self.curation), **dict(spec.curation), "seed": seed}
        config = build(CurateConfig, given)
        if config.processing.mode == "pack" and "min_tokens" not in given:
            config = build(CurateConfig, {**given, "min_tokens": config.processing.seqlen})
        return config

    @property
    def shared(self) -> CurateConfig:
        """The settings every set shares (n, pool size, seqlen, length mode), as a config, for reports."""
        return build(CurateConfig, {**EXPERIMENT_CURATION, **dict(self.curation)})

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
        if self.limit <= 0:
            raise ColaError(f"{self.name}: limit must be positive")
        if len(set(self.models)) != len(self.models) or len(self.models) == 1:
            raise ColaError(f"{self.name}: models must be two or more distinct names, got {list(self.models)}")
        for spec in self.calibration_sets:
            try:
                config = self.curate_config(spec, self.seeds[0])
                config.validate()
                config.processing.validate()
            except ColaError as exc:
                raise ColaError(f"{self.name}: calibration set {spec.name}: {exc}") from None
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
        if self.claims_over not in ("seeds", "items"):
            raise ColaError(f"{self.name}: claims_over must be seeds or items, got '{self.claims_over}'")
        for i, claim in enumerate(self.claims, 1):
            _check_claim(i, claim, names, labels, self.scores)
            if self.claims_over == "items" and claim["capability"] == "mean":
                raise ColaError(f"{self.name}: claim {i}: claims over items name one score, not the mean")
        return self


def _check_claim(i: int, claim: dict, sets: list[str], labels: list[str], scores: tuple[str, ...]) -> None:
    where = f"claim {i} ({claim.get('title', 'untitled')})"
    missing = [f for f in CLAIM_FIELDS if f not in claim]
    if missing:
        raise ColaError(f"{where}: missing {', '.join(missing)}; a claim has {', '.join(CLAIM_FIELDS)}")
    unknown = sorted(set(claim) - set(CLAIM_FIELDS) - set(CLAIM_OPTIONAL))
    if unknown:
        raise ColaError(f"{where}: unknown key '{unknown[0]}'; a claim has {', '.join(CLAIM_FIELDS + CLAIM_OPTIONAL)}")
    if not isinstance(claim.get("family", ""), str):
        raise ColaError(f"{where}: family must be a name (a string), got {claim['family']!r}")
    # "mean": the mean retention over the capabilities (experiments/endpoints.py)
    endpoints = (*scores, "mean")
    for field, valid in (("better", sets), ("worse", sets), ("compression", labels), ("capability", endpoints)):
        if claim[field] not in valid:
            raise ColaError(f"{where}: unknown {field} '{claim[field]}': the config has {', '.join(valid)}")
    if claim["better"] == claim["worse"]:
        raise ColaError(f"{where}: compares '{claim['better']}' with itself")


def list_builtin() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.json"))


def load_config(name_or_path: str) -> ExperimentConfig:
    """A built-in name or a JSON file; ``name@model`` is one model's part of a config with ``models``."""
    path = Path(name_or_path)
    if not path.is_file() and "@" in name_or_path:
        base, model = name_or_path.rsplit("@", 1)
        cfg = load_config(base)
        if model not in cfg.models:
            raise ColaError(f"experiment '{base}' runs no model '{model}': its models are {list(cfg.models)}")
        return cfg.per_model()[cfg.models.index(model)]
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


_LABEL_PART = re.compile(r"-(?=[a-z_]+=)")  # a "-" that starts the next key (a value may hold "-1")


def compression_name(label: str) -> str:
    """A compression label (:func:`compression_label`) as people write the setting: "Wanda 50%",
    "GPTQ 3-bit g32" (:attr:`CompressConfig.short_name`); the label itself where it is not one."""
    settings: dict[str, Any] = {}
    for part in _LABEL_PART.split(label):
        key, _, value = part.partition("=")
        settings[key] = _value(value)
    try:
        return CompressConfig(**settings).short_name
    except (TypeError, ColaError, ValueError):
        return label


def _value(text: str) -> Any:
    if text in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[text]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text
