"""Resuming an experiment reuses a stored run only when its key matches (experiments/plan.py). A
refactor that changes how configs are built must not change any key of a shipped config: these are
the keys' digests, recorded when issue #28 moved the configs' building into cola_core/settings.py
(identical before and after it). A deliberate change of what a run means updates them here (the demo
and paper-claims were redesigned for issues #29 and #30; a config with ``models`` is pinned over all
its parts). Every key changed with issue #33: EVALUATION_VERSION 4 (SparseGPT's block-wide masks, errors
from the sweeps) and the ``error_tokens`` setting, and again when GPTQ's ``act_order`` became the
default (every run's key holds its compression settings)."""

from __future__ import annotations

import hashlib

import pytest

from cola_core.experiments.config import list_builtin, load_config
from cola_core.experiments.plan import model_fingerprint, plan_runs

KEYS = {
    "demo": "a3024af7a9fb73ec",
    "paper-claims": "a7ac62cd3d888aa1",
    "paper-claims-models": "142daeaf1e9a6d8d",
    "reasoning-traces": "c801186e29907e16",
    "settings-sweep": "dba3542393f27264",
    "smoke": "f2c52cce488fbb0a",
}


def test_every_shipped_config_is_pinned():
    assert sorted(KEYS) == list_builtin()


@pytest.mark.parametrize("name", sorted(KEYS))
def test_run_keys_of_shipped_configs_are_unchanged(name):
    cfg = load_config(name)
    keys = [k for part in cfg.per_model() for k in plan_runs(part, model_fp=model_fingerprint(part.model)).keys]
    assert hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16] == KEYS[name]
