"""One default per setting (issue #16): the CLI's flags, the dashboard's widgets, the workspace and
the experiment configs all read their defaults from the config dataclasses; every --help works."""

from __future__ import annotations

import argparse

import pytest

from cola_core.app.workspace import SpaceSettings
from cola_core.cli.main import COMMANDS, build_parser, main
from cola_core.compress.config import CompressConfig
from cola_core.corpora.selfgen import SelfGenConfig
from cola_core.curation.activations import ActivationConfig
from cola_core.curation.pipeline import CurateConfig
from cola_core.curation.processing import ProcessingConfig
from cola_core.engine.config import EngineConfig
from cola_core.evaluation.suite import CAPABILITIES, DEFAULT_LIMIT, evaluate
from cola_core.experiments.config import CalibrationSpec, ExperimentConfig


def _defaults(command: str) -> dict:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices[command]
    found = {a.dest: a.default for a in parser._actions if a.default is not argparse.SUPPRESS}
    return found | {k: parser.get_default(k) for k in found}


def _csv(values) -> str:
    return ",".join(values)


C, P, A, E = CurateConfig(), ProcessingConfig(), ActivationConfig(), EngineConfig()


def test_curate_flags_default_to_the_pipeline_config():
    d = _defaults("curate")
    assert (d["corpora"], d["capabilities"]) == (_csv(C.corpora), _csv(C.capabilities))
    assert (d["pool_size"], d["n"], d["strategy"], d["lam"], d["seed"], d["dim"]) == (
        C.pool_size,
        C.n,
        C.strategy,
        C.lam,
        C.seed,
        C.dim,
    )
    assert (d["seqlen"], d["min_tokens"], d["length_mode"], d["reasoning_format"], d["drop_worst_ppl"]) == (
        P.seqlen,
        P.min_tokens,
        P.mode,
        P.reasoning_format,
        P.drop_worst_perplexity,
    )
    assert (d["deployment"], d["target"], d["alpha"], d["per_corpus"], d["fields"], d["mix"]) == (
        C.deployment,
        C.target,
        C.alpha,
        C.stage1_samples,
        C.fields,
        None,
    )
    assert d["no_stage1"] is (not C.stage1) and d["preset"] is None and d["weights"] is None and not C.weights
    assert _defaults("corpus-scores")["per_corpus"] == C.stage1_samples
    assert (d["probe_size"], d["batch_tokens"], d["dtype"]) == (C.probe_size, A.batch_tokens, "auto")
    assert d["no_dedupe"] is (not P.dedupe) and d["pooling"] == A.pooling and d["include_mlp"] is A.include_mlp
    assert (d["engine"], d["ray_workers"], d["shard_size"], d["ray_address"]) == (
        E.kind,
        E.workers,
        E.shard_size,
        E.address,
    )


def test_other_commands_default_to_their_configs():
    q, s = CompressConfig(), SelfGenConfig()
    d = _defaults("compress")
    assert (d["sparsity"], d["bits"], d["group_size"], d["damp"], d["batch_tokens"], d["owl_lambda"], d["owl_m"]) == (
        q.sparsity,
        q.bits,
        q.group_size,
        q.damp,
        q.batch_tokens,
        q.owl_lambda,
        q.owl_m,
    )
    assert d["pattern"] == q.pattern and d["symmetric"] is q.symmetric and d["act_order"] is q.act_order
    d = _defaults("self-generate")
    assert (d["n"], d["max_new_tokens"], d["temperature"], d["top_k"], d["top_p"], d["repetition_penalty"]) == (
        s.n,
        s.max_new_tokens,
        s.temperature,
        s.top_k,
        s.top_p,
        s.repetition_penalty,
    )
    assert d["drop_worst_ppl"] == s.drop_worst_perplexity
    d = _defaults("evaluate")
    assert d["limit"] == DEFAULT_LIMIT == evaluate.__defaults__[1] and d["capabilities"] == _csv(CAPABILITIES)


def test_dashboard_and_workspace_defaults_are_the_configs():
    from ui.state import DEFAULTS

    assert DEFAULTS["corpora"] == list(C.corpora) and DEFAULTS["pool_size"] == C.pool_size
    assert (DEFAULTS["n"], DEFAULTS["lam"], DEFAULTS["seed"]) == (C.n, C.lam, C.seed)
    assert DEFAULTS["strategy"] == "tradeoff"  # the one deliberate difference: the dashboard opens on the λ slider
    assert (DEFAULTS["seqlen"], DEFAULTS["reasoning_format"], DEFAULTS["dedupe"], DEFAULTS["drop_worst"]) == (
        P.seqlen,
        P.reasoning_format,
        P.dedupe,
        P.drop_worst_perplexity,
    )
    assert DEFAULTS["alpha"] == C.alpha and (DEFAULTS["mix_mode"] == "stage1") is C.stage1
    assert DEFAULTS["pooling"] == A.pooling and DEFAULTS["engine"] == E.kind and DEFAULTS["ray_workers"] == E.workers
    w = SpaceSettings()
    assert (w.stage1, w.deployment, w.target, w.alpha, w.mix) == (C.stage1, C.deployment, C.target, C.alpha, C.mix)
    assert (w.corpora, w.pool_size, w.seqlen, w.layers, w.pooling, w.seed) == (
        C.corpora,
        C.pool_size,
        P.seqlen,
        A.layers,
        A.pooling,
        C.seed,
    )
    assert (w.reasoning_format, w.dedupe, w.drop_worst_perplexity) == (
        P.reasoning_format,
        P.dedupe,
        P.drop_worst_perplexity,
    )


def test_experiment_defaults_are_the_configs():
    x, spec = ExperimentConfig(name="x"), CalibrationSpec(name="s")
    assert (x.n, x.pool_size, x.seqlen, x.limit, x.capabilities) == (
        C.n,
        C.pool_size,
        P.seqlen,
        DEFAULT_LIMIT,
        CAPABILITIES,
    )
    assert (spec.corpora, spec.strategy, spec.lam) == (C.corpora, C.strategy, C.lam)


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_every_help_works_and_shows_defaults(command, capsys):
    argv = [command, "--help"] if command else ["--help"]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "usage: python -m cola_core" in out
    assert "(default: None)" not in out and "(default: False)" not in out  # empty defaults say nothing
    if command in ("curate", "compress", "evaluate", "experiment", "self-generate"):
        assert "(default:" in out
    if not command:
        assert all(name in out for name in COMMANDS) and "95% confidence intervals" in out


def test_missing_command_is_one_error_line(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--help" in err[0]
