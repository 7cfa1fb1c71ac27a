"""Resuming an experiment reuses a stored run only when its key matches (experiments/plan.py). A
refactor that changes how configs are built must not change any key of a shipped config: these are
the keys' digests, recorded when issue #28 moved the configs' building into cola_core/settings.py
(identical before and after it). A deliberate change of what a run means updates them here."""

from __future__ import annotations

import hashlib

import pytest

from cola_core.experiments.config import list_builtin, load_config
from cola_core.experiments.plan import model_fingerprint, plan_runs

KEYS = {
    "demo": "9ba4fcc05cf394c2",
    "paper-claims": "d0a9c08d78323237",
    "paper-claims-confirm": "a2d03054b4af5721",
    "settings-sweep": "70918d1ca487f28c",
    "smoke": "cbaf9042ea129033",
}


def test_every_shipped_config_is_pinned():
    assert sorted(KEYS) == list_builtin()


@pytest.mark.parametrize("name", sorted(KEYS))
def test_run_keys_of_shipped_configs_are_unchanged(name):
    cfg = load_config(name)
    keys = plan_runs(cfg, model_fp=model_fingerprint(cfg.model)).keys
    assert hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16] == KEYS[name]
