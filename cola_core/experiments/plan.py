"""An experiment's runs, each keyed by everything that decides its result, so that resuming reuses
a stored run only when that run is the one the current config asks for.

A run's key is ``name/set/compression/seed/<hash>`` (``name/dense/<hash>`` for the dense run); the
hash covers, as JSON:

- the model name and its weights' fingerprint (:func:`model_fingerprint`);
- the data's fingerprint: every record (id, text, meta) of the pool and held-out splits of the
  built-in corpora, and of any local file a calibration set names (:func:`data_fingerprint`);
- the whole curation config the cell builds (:meth:`ExperimentConfig.curate_config`: corpora, pool size, n, seqlen,
  strategy, λ, seed, Stage 1 and Stage 2 settings, defaults included) and, for self-generated sets,
  the generation settings;
- the whole compression config (defaults included) and the evaluation settings (capabilities,
  limit, :data:`EVALUATION_VERSION`).

Batch sizes and devices are left out: they change speed, not results (tests/test_scoring.py checks scores under any token budget). The
code is not fingerprinted: bump :data:`EVALUATION_VERSION` when a change alters what a stored run
would hold. Each run also records its calibration set's token fingerprint; a cell that recomputes a
calibration set checks it against the finished runs of the same set and seed (cells.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from cola_core.compress import CompressConfig
from cola_core.corpora import BUILTIN_CORPORA, load_records
from cola_core.corpora.selfgen import SelfGenConfig
from cola_core.curation.pipeline import CurateConfig
from cola_core.experiments.config import ExperimentConfig, compression_label
from cola_core.models.loading import load_model, resolve_model
from cola_core.storage.fingerprints import fingerprint_directory, pool_fingerprint

# bump when a code change alters what an experiment run would store; 4: the compression engine of issue
# #33 (SparseGPT's masks chosen over a block's rows, each linear's error from its sweep or a token sample)
EVALUATION_VERSION = 4
SPEED_ONLY = ("batch_tokens", "device", "batch_size")  # settings that change speed, not results
# Settings added after runs were stored, left out of the key at their default: what they decide (a
# mixture-of-experts model's expert statistics or routing features, a tokenizer's chat template,
# question prompts for self-generation) does not arise for the models and sets those runs used (dense,
# no chat template, prefix prompts), so their results are what the default gives.
ADDED_LATER = {
    "moe_calibration": "routed",
    "moe_floor": 1.0,
    "chat_template": "auto",
    "thinking": "auto",
    "prompts": "",
    "prompt_fields": "",
    "expert_features": False,
    "awq_duo": False,
}
# AWQ on a mixture-of-experts model changed with issue #33 (every expert's gate/up take the block's
# scales, awq_groups.py); on a dense model it did not, so only those runs' keys carry this rather than
# a new EVALUATION_VERSION, which would retire every stored run
AWQ_EXPERTS = "block-scales"
_EXPERT_COUNTS = ("num_experts", "num_local_experts", "n_routed_experts")


def selfgen_config(curate: CurateConfig, overrides: tuple[tuple[str, Any], ...] = ()) -> SelfGenConfig:
    """A self-generated set's generation settings: a pool's worth of texts of the set's length, with
    the set's own (``CalibrationSpec.selfgen``, e.g. ``prompts``)."""
    base = SelfGenConfig(n=curate.pool_size, max_new_tokens=curate.processing.seqlen, seed=curate.seed)
    return replace(base, **dict(overrides))


def model_fingerprint(name: str) -> str:
    """The weights' fingerprint of a model directory (built-in, local or in the HF cache); a hub
    model not yet cached is downloaded and loaded to fingerprint it."""
    where, _ = resolve_model(name)
    if Path(where).is_dir():
        return fingerprint_directory(where)
    return load_model(name, device="cpu").fingerprint


def _records_fingerprint(spec: str, split: str) -> str:
    records = load_records(spec, split)
    texts = [f"{r.text}\x02{json.dumps(r.meta, sort_keys=True, default=str)}" for r in records]
    return pool_fingerprint(texts, [str(r.id) for r in records])


def data_fingerprint(cfg: ExperimentConfig) -> str:
    """Every record the grid can read: the pool and held-out splits of the built-in corpora (pools,
    probes and evaluated items) and any local file a set names; a hub dataset (``hf:``) is named,
    not read. Self-generated pools are decided by the model and the settings."""
    parts = {
        f"{c}/{split}": _records_fingerprint(c, split)
        for c in BUILTIN_CORPORA
        for split in ("pool", "probe", "heldout")
    }
    named = {c for s in cfg.calibration_sets if not s.self_generated for c in cfg.curate_config(s, 0).corpora}
    for spec in named:
        if spec not in BUILTIN_CORPORA:
            parts[spec] = spec if spec.startswith("hf:") else _records_fingerprint(spec, "pool")
    return _digest(parts)


def is_moe(name: str) -> bool:
    """Whether the model's ``config.json`` (nested configs included) counts experts: read from the
    directory, nothing loaded; False for a hub model not on disk (its runs carry no expert marker)."""
    where, _ = resolve_model(name)
    path = Path(where, "config.json")

    def counts(node: Any) -> bool:
        if isinstance(node, dict):
            return any(isinstance(node.get(k), int) and node[k] > 0 for k in _EXPERT_COUNTS) or any(
                counts(v) for v in node.values()
            )
        return False

    return path.is_file() and counts(json.loads(path.read_text()))


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _results_only(settings: dict[str, Any]) -> dict[str, Any]:
    return {
        k: _results_only(v) if isinstance(v, dict) else v
        for k, v in settings.items()
        if k not in SPEED_ONLY and not (k in ADDED_LATER and v == ADDED_LATER[k])
    }


@dataclass(frozen=True)
class PlannedRun:
    key: str
    calibration: str  # a set's name, or "dense"
    compression: str  # compression_label, "" for the dense run
    seed: int | None
    settings: dict = field(default_factory=dict)  # the compression settings as the config gives them
    settings_hash: str = ""  # of everything that decides the run's result
    calibration_hash: str = ""  # of everything that decides its calibration set


@dataclass(frozen=True)
class Plan:
    model_fingerprint: str
    dense: PlannedRun
    runs: tuple[PlannedRun, ...]

    @property
    def keys(self) -> list[str]:
        return [self.dense.key, *(r.key for r in self.runs)]


def plan_runs(cfg: ExperimentConfig, model_fp: str | None = None, data_fp: str | None = None) -> Plan:
    """Every run of the config with its key; fingerprints are computed unless given."""
    model_fp = model_fp or model_fingerprint(cfg.model)
    data_fp = data_fp or data_fingerprint(cfg)
    base = {"model": cfg.model, "model_fingerprint": model_fp, "data": data_fp}
    evaluation = {"capabilities": list(cfg.capabilities), "limit": cfg.limit, "version": EVALUATION_VERSION}
    dense_hash = _digest({**base, "evaluation": evaluation})
    dense = PlannedRun(f"{cfg.name}/dense/{dense_hash}", "dense", "", None, {"method": "dense"}, dense_hash)
    moe = is_moe(cfg.model)
    runs = []
    # seed-major: an experiment stopped part-way (it resumes in a later sitting) holds whole seeds,
    # every set compared on the same ones
    for seed in cfg.seeds:
        for spec in cfg.calibration_sets:
            curate = cfg.curate_config(spec, seed)
            calibration = {
                **base,
                "curate": _results_only(asdict(curate)),
                "selfgen": _results_only(asdict(selfgen_config(curate, spec.selfgen))) if spec.self_generated else None,
            }
            calibration_hash = _digest(calibration)
            for c in cfg.compression:
                compress = _results_only(asdict(CompressConfig(**c)))
                if moe and "awq" in (compress["method"], compress.get("quantize")):
                    compress["awq_experts"] = AWQ_EXPERTS
                run_hash = _digest({"calibration": calibration_hash, "compress": compress, "evaluation": evaluation})
                label = compression_label(c)
                key = f"{cfg.name}/{spec.name}/{label}/{seed}/{run_hash}"
                runs.append(PlannedRun(key, spec.name, label, seed, dict(c), run_hash, calibration_hash))
    return Plan(model_fp, dense, tuple(runs))
