"""A setting is named once (issue #28): the CLI's flags, the dashboard's session defaults, the
workspace and the experiment configs are derived from the config dataclasses' fields
(cola_core/settings.py), and every --help works."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from cola_core.app.workspace import SpaceSettings
from cola_core.cli.main import COMMANDS, build_parser, main
from cola_core.compress.config import CompressConfig
from cola_core.corpora.selfgen import SelfGenConfig
from cola_core.curation.pipeline import CurateConfig
from cola_core.engine.config import EngineConfig
from cola_core.errors import ColaError
from cola_core.evaluation.suite import CAPABILITIES, DEFAULT_LIMIT, evaluate
from cola_core.experiments.config import EXPERIMENT_CURATION, CalibrationSpec, ExperimentConfig, load_config
from cola_core.settings import add_flags, build, flat_defaults, flat_fields, from_args, setting

# command → the configs whose settings it takes as flags
CONFIGS = {
    "curate": (CurateConfig, EngineConfig),
    "corpus-scores": (EngineConfig,),
    "compress": (CompressConfig,),
    "self-generate": (SelfGenConfig,),
}


def _subparser(command: str) -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def _parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


@pytest.mark.parametrize("command", list(CONFIGS))
def test_every_setting_with_a_flag_is_a_flag_of_its_command(command):
    dests = {a.dest for a in _subparser(command)._actions}
    for cls in CONFIGS[command]:
        wanted = {n for n, (_, f, _) in flat_fields(cls).items() if f.metadata.get("cli", True)}
        assert wanted <= dests, f"{cls.__name__}: {sorted(wanted - dests)} have no flag on {command}"


def test_no_flags_build_the_default_configs():
    args = _parse(["curate"])
    assert from_args(CurateConfig, args) == CurateConfig() and from_args(EngineConfig, args) == EngineConfig()
    assert from_args(SelfGenConfig, _parse(["self-generate"])) == SelfGenConfig()
    args = _parse(["compress", "--calib", "c.jsonl", "--method", "wanda", "--out", "o"])
    assert from_args(CompressConfig, args) == CompressConfig(method="wanda")


def test_flags_reach_the_config_fields_they_name():
    argv = ["curate", "--seqlen", "64", "--length-mode", "pack", "--no-dedupe", "--drop-worst-ppl", "0.1"]
    argv += ["--per-corpus", "7", "--layers", "0,-1", "--mix", "math=2,prose=1", "--no-stage1", "--corpora", "a,b"]
    argv += ["--engine", "ray", "--ray-workers", "3"]
    args = _parse(argv)
    config = from_args(CurateConfig, args)
    assert config == build(
        CurateConfig,
        seqlen=64,
        mode="pack",
        dedupe=False,
        drop_worst_perplexity=0.1,
        stage1_samples=7,
        layers=(0, -1),
        mix=(("math", 2.0), ("prose", 1.0)),
        stage1=False,
        corpora=("a", "b"),
    )
    assert config.processing.seqlen == 64 and config.activations.layers == (0, -1)
    assert from_args(EngineConfig, args) == EngineConfig(kind="ray", workers=3)
    base = ["compress", "--calib", "c", "--method", "gptq", "--out", "o"]
    assert from_args(CompressConfig, _parse([*base, "--sym", "--no-awq-clip"])) == CompressConfig(
        method="gptq", symmetric=True, awq_clip=False
    )
    assert from_args(CompressConfig, _parse([*base, "--asym"])).symmetric is False
    gen = from_args(SelfGenConfig, _parse(["self-generate", "--prefix", "a", "--prefix", ""]))
    assert gen.prefixes == ("a", "")


@pytest.mark.parametrize("command", list(CONFIGS))
def test_help_shows_each_settings_default_and_help(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for cls in CONFIGS[command]:
        for name, (_, f, tp) in flat_fields(cls).items():
            if not f.metadata.get("cli", True):
                continue
            assert " ".join(f.metadata["help"].split())[:30] in out, name
            default = flat_defaults(cls)[name]
            if tp in (int, float, str) and not f.metadata.get("required"):
                assert f"(default: {default})" in out, name


def test_flat_names_are_unique_and_derived_fields_stay_out():
    names = flat_fields(CurateConfig)
    assert names["seqlen"][0] == ("processing",)  # Stage 2's, not the extraction's copy
    assert names["batch_tokens"][0] == ("activations",)
    with pytest.raises(ColaError, match="unknown setting 'sequence_length'"):
        build(CurateConfig, sequence_length=3)


def test_a_new_setting_needs_only_its_field():
    """What adding a curation setting takes (docs/architecture.md): the field, with its help. The flag,
    its default, the config built from the flags and the flat default (the dashboard's session key)
    follow from it."""

    @dataclasses.dataclass(frozen=True)
    class Extended(CurateConfig):
        temperature_knob: float = setting(0.25, "a new knob, for this test")

    parser = argparse.ArgumentParser()
    add_flags(parser, Extended)
    assert parser.parse_args([]).temperature_knob == 0.25
    assert from_args(Extended, parser.parse_args(["--temperature-knob", "0.5", "--seqlen", "32"])) == build(
        Extended, temperature_knob=0.5, seqlen=32
    )
    assert flat_defaults(Extended)["temperature_knob"] == 0.25
    assert "--temperature-knob" in parser.format_help() and "a new knob" in parser.format_help()


def test_dashboard_defaults_are_the_configs():
    from ui.state import CURATION, DASHBOARD_CHOICES, DEFAULTS

    for name, default in flat_defaults(CurateConfig).items():
        if name in CURATION and name not in DASHBOARD_CHOICES:
            assert DEFAULTS[name] == (list(default) if name == "corpora" else default), name
    assert DASHBOARD_CHOICES["strategy"] == "tradeoff"  # the deliberate difference: the dashboard opens on λ
    assert DEFAULTS["engine"] == EngineConfig.kind and DEFAULTS["ray_workers"] == EngineConfig.workers
    assert SpaceSettings().curation == CurateConfig()
    s = SpaceSettings.of(seqlen=64, n=7, strategy="random", lam=0.1)
    assert s.curation == build(CurateConfig, seqlen=64)  # Stage 3's settings do not change a space
    assert s.selection(7, "random", 0.1) == build(CurateConfig, seqlen=64, n=7, strategy="random", lam=0.1)


def test_experiment_sets_are_built_from_the_curation_settings():
    cfg = ExperimentConfig.from_dict(
        {
            "name": "x",
            "n": 16,
            "seqlen": 64,
            "mode": "pack",
            "dim": 32,
            "calibration_sets": [
                {"name": "a", "corpora": ["math"], "strategy": "random", "stage1": True},
                {"name": "b"},
            ],
            "compression": [{"method": "wanda"}],
        }
    )
    a, b = cfg.calibration_sets
    assert cfg.curate_config(a, 3) == build(
        CurateConfig,
        {**EXPERIMENT_CURATION, "n": 16, "seqlen": 64, "mode": "pack", "min_tokens": 64, "dim": 32},
        corpora=("math",),
        strategy="random",
        stage1=True,
        seed=3,
    )
    assert cfg.curate_config(b, 0).stage1 is False and cfg.curate_config(b, 0).corpora == CurateConfig.corpora
    assert (ExperimentConfig(name="x").limit, ExperimentConfig(name="x").capabilities) == (DEFAULT_LIMIT, CAPABILITIES)
    assert CalibrationSpec(name="s").curation == ()
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg  # what Ray workers receive
    for name in ("paper-claims", "demo"):
        shipped = load_config(name)
        assert ExperimentConfig.from_dict(shipped.to_dict()) == shipped
    with pytest.raises(ColaError, match="unknown key 'sequence_length'"):
        ExperimentConfig.from_dict({"name": "x", "sequence_length": 3, "calibration_sets": [], "compression": []})
    with pytest.raises(ColaError, match="unknown key 'seed'"):
        CalibrationSpec.from_dict({"name": "a", "seed": 1})


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


def test_evaluate_defaults():
    d = {a.dest: a.default for a in _subparser("evaluate")._actions}
    assert d["limit"] == DEFAULT_LIMIT == evaluate.__defaults__[1] and d["capabilities"] == ",".join(CAPABILITIES)


def test_missing_command_is_one_error_line(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--help" in err[0]
