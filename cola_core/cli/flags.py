"""Parsed flags that are not a config's settings: a preset applied to the flags the user did not
give, NAME=PATH pairs. Configs are built from the flags by :func:`cola_core.settings.from_args`."""

from __future__ import annotations

import argparse

from cola_core.errors import ColaError
from cola_core.settings import csv_list, from_args

__all__ = ["apply_preset", "csv_list", "from_args", "given_flags", "pair_of"]


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
