"""Resuming an experiment reuses a stored run only when its key matches (experiments/plan.py). A
refactor that changes how configs are built must not change any key of a shipped config: these are
the keys' digests, recorded when issue #28 moved the configs' building into cola_core/settings.py
(identical before and after it). A deliberate change of what a run means updates them here (the demo
and paper-claims were redesigned for issues #29 and #30; a config with ``models`` is pinned over all
its parts)."""

from __future__ import annotations

import hashlib

import pytest

from cola_core.experiments.config import list_builtin, load_config
from cola_core.experiments.plan import model_fingerprint, plan_runs

KEYS = {
    "demo": "6d4e30ac2c87a6d2",  # redesigned for issue #30
    "paper-claims": "d7b9599462c36c0c",  # pre-registered anew for issue #29
    "paper-claims-models": "570c5744924a9993",  # three models (issue #29)
    "reasoning-traces": "7a5e031469af0aa6",  # on-policy reasoning traces (issue #31)
    "settings-sweep": "70918d1ca487f28c",
    "smoke": "cbaf9042ea129033",
}


def test_every_shipped_config_is_pinned():
    assert sorted(KEYS) == list_builtin()


@pytest.mark.parametrize("name", sorted(KEYS))
def test_run_keys_of_shipped_configs_are_unchanged(name):
    cfg = load_config(name)
    keys = [k for part in cfg.per_model() for k in plan_runs(part, model_fp=model_fingerprint(part.model)).keys]
    assert hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16] == KEYS[name]
