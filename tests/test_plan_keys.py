"""Resuming an experiment reuses a stored run only when its key matches (experiments/plan.py). A
refactor that changes how configs are built must not change any key of a shipped config: these are
the keys' digests, recorded when issue #28 moved the configs' building into cola_core/settings.py
(identical before and after it). A deliberate change of what a run means updates them here (the demo
and paper-claims were redesigned for issues #29 and #30; a config with ``models`` is pinned over all
its parts). Every key changed with issue #33: EVALUATION_VERSION 4 (SparseGPT's block-wide masks, errors
from the sweeps) and the ``error_tokens`` setting."""

from __future__ import annotations

import hashlib

import pytest

from cola_core.experiments.config import list_builtin, load_config
from cola_core.experiments.plan import model_fingerprint, plan_runs

KEYS = {
    "demo": "cb5025b81b7a1ab5",
    "paper-claims": "ab87ceb5d9e309f2",
    "paper-claims-models": "301f598e3bf3e1d2",
    "reasoning-traces": "9a0290c0c0f9a430",
    "settings-sweep": "d53aaead090d4b34",
    "smoke": "115d460433bde009",
}


def test_every_shipped_config_is_pinned():
    assert sorted(KEYS) == list_builtin()


@pytest.mark.parametrize("name", sorted(KEYS))
def test_run_keys_of_shipped_configs_are_unchanged(name):
    cfg = load_config(name)
    keys = [k for part in cfg.per_model() for k in plan_runs(part, model_fp=model_fingerprint(part.model)).keys]
    assert hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16] == KEYS[name]


def test_awq_runs_on_a_mixture_of_experts_model_carry_the_expert_marker(tiny_model_dir, monkeypatch):
    """AWQ changed for mixture-of-experts models only (issue #33): their AWQ runs get new keys, every
    other run (and every run of a dense model, above) keeps its key."""
    from cola_core.experiments import plan

    assert plan.is_moe(tiny_model_dir("qwen3_moe")) and plan.is_moe(tiny_model_dir("mixtral"))
    assert not plan.is_moe(tiny_model_dir("llama")) and not plan.is_moe("cola-tiny")
    cfg = load_config("paper-claims")
    keys = {}
    for moe in (False, True):
        monkeypatch.setattr(plan, "is_moe", lambda _name, moe=moe: moe)
        keys[moe] = {r.compression: r.key for r in plan_runs(cfg, model_fp="m", data_fp="d").runs}
    changed = {label for label in keys[False] if keys[False][label] != keys[True][label]}
    assert changed == {label for label in keys[False] if "method=awq" in label} != set()
