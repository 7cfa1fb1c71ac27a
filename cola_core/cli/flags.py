"""From parsed flags to the config objects the library takes: lists, pairs, shares, the curation
config, and a preset applied to the flags the user did not give."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import TypeVar

from cola_core.errors import ColaError

T = TypeVar("T")


def csv_list(text: str | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in (text or "").split(",") if x.strip())


def layers_of(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(x) for x in csv_list(text))
    except ValueError:
        raise ColaError(f"--layers takes comma-separated integers, got '{text}'") from None


def shares_of(text: str | None, flag: str) -> tuple[tuple[str, float], ...]:
    """``math=0.5,prose=0.5`` → (("math", 0.5), ("prose", 0.5)), for ``--mix`` and ``--weights``."""
    shares = []
    for item in csv_list(text):
        corpus, sep, share = item.rpartition("=")
        try:
            shares.append((corpus.strip(), float(share)))
        except ValueError:
            sep = ""
        if not sep or not corpus.strip():
            raise ColaError(f"{flag} takes NAME=NUMBER pairs separated by commas, got '{item}'")
    return tuple(shares)


def curate_config(args: argparse.Namespace):
    from cola_core.curation.activations import ActivationConfig
    from cola_core.curation.pipeline import CurateConfig
    from cola_core.curation.processing import ProcessingConfig

    return CurateConfig(
        corpora=csv_list(args.corpora),
        pool_size=args.pool_size,
        n=args.n,
        strategy=args.strategy,
        lam=args.lam,
        seed=args.seed,
        dim=args.dim,
        capabilities=csv_list(args.capabilities),
        text_field=args.text_field,
        fields=args.fields,
        stage1=not getattr(args, "no_stage1", False),
        deployment=args.deployment,
        target=args.target,
        alpha=args.alpha,
        stage1_samples=args.per_corpus,
        mix=shares_of(getattr(args, "mix", None), "--mix"),
        weights=shares_of(args.weights, "--weights"),
        probe_size=args.probe_size,
        activations=ActivationConfig(
            layers=layers_of(args.layers),
            pooling=args.pooling,
            include_mlp=args.include_mlp,
            batch_tokens=args.batch_tokens,
        ),
        processing=ProcessingConfig(
            seqlen=args.seqlen,
            min_tokens=args.min_tokens,
            mode=args.length_mode,
            reasoning_format=args.reasoning_format,
            dedupe=not args.no_dedupe,
            drop_worst_perplexity=args.drop_worst_ppl,
        ),
    )


def apply_preset(args: argparse.Namespace) -> set[str]:
    """Set the preset's values on flags the user did not give; returns the flags it set."""
    from cola_core.curation.presets import preset

    if not args.preset:
        return set()
    applied = {dest for dest in preset(args.preset) if dest not in args.given}
    for dest in applied:
        setattr(args, dest, preset(args.preset)[dest])
    return applied


def pair_of(text: str, flag: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise ColaError(f"{flag} takes NAME=PATH, got '{text}'")
    return name.strip(), path.strip()


def given_flags(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """Destinations of the options written on the command line (a preset must not override them)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    words = {w.split("=", 1)[0] for w in argv if w.startswith("--")}
    command = next((w for w in argv if w in sub.choices), None)
    actions = sub.choices[command]._actions if command else []
    return {a.dest for a in actions if words & set(a.option_strings)}


def from_args(cls: type[T], args: argparse.Namespace) -> T:
    """A config dataclass built from the parsed flags named like its fields (the others keep the
    dataclass's defaults, e.g. settings the CLI does not expose)."""
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)})
