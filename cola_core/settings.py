"""A setting is named once: on its config dataclass, as a field whose metadata carries its help text,
its CLI flag, its choices and its bounds (llm-compressor's arguments-as-dataclasses; nanoGPT's
"each setting written once"). Everything else is derived from the fields:

- :func:`build`: a config from *flat* overrides (``{"seqlen": 512, "lam": 0.3}``): names of the
  config's own fields and of its nested configs' fields (``CurateConfig.processing.seqlen`` is
  ``seqlen``). The CLI, the dashboard and the experiment configs all build configs here;
- :func:`flat_defaults`: every flat setting and its default (the dashboard's session defaults);
- :func:`add_flags` / :func:`from_args`: argparse flags from the fields, and the config back from the
  parsed flags (``--help`` shows each default, read from the field).

A nested field that is derived rather than set (``ActivationConfig.seqlen``, which the pipeline fills
from Stage 2's) is marked ``flat=False`` and left out of the flat names.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any, TypeVar

from cola_core.errors import ColaError

T = TypeVar("T")
MISSING = dataclasses.MISSING


def setting(
    default: Any = MISSING,
    help: str = "",
    *,
    flag: str | None = None,
    also: tuple[str, ...] = (),
    off_flag: str | None = None,
    choices: Iterable[str] | Callable[[], Iterable[str]] | None = None,
    repeat: bool = False,
    required: bool = False,
    cli: bool = True,
    flat: bool = True,
    selection: bool = False,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field with what the flags and widgets need to know of it.

    ``flag``: the CLI name when it is not ``--field-name`` (booleans on by default get ``--no-NAME``);
    ``also``: more names for the same flag; ``off_flag``: a flag that sets a boolean back to False;
    ``choices``: the accepted values (a callable is read when the flag is built: registries);
    ``repeat``: a tuple given one value per flag (``--prefix A --prefix B``), not comma-separated;
    ``required``: the command line must give the flag (the library still has the default);
    ``cli=False``: no flag (internal or derived); ``flat=False``: not a flat setting of an enclosing
    config; ``selection``: a Stage 3 setting (it picks samples from a built space, it does not change
    the space)."""
    meta = {
        "help": help,
        "flag": flag,
        "also": also,
        "off_flag": off_flag,
        "choices": choices,
        "repeat": repeat,
        "required": required,
        "cli": cli,
        "flat": flat,
        "selection": selection,
    }
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@cache
def flat_fields(cls: type) -> dict[str, tuple[tuple[str, ...], dataclasses.Field, Any]]:
    """Flat name → (path of nested config fields, the field, its type). A name owned twice is a bug."""
    out: dict[str, tuple[tuple[str, ...], dataclasses.Field, Any]] = {}
    for f in dataclasses.fields(cls):
        tp = _hints(cls)[f.name]
        if _is_config(tp):
            for name, (path, inner, inner_tp) in flat_fields(tp).items():
                if inner.metadata.get("flat", True):
                    out.setdefault(name, ((f.name, *path), inner, inner_tp))
            continue
        out[f.name] = ((), f, tp)
    return out


def _default(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def flat_defaults(cls: type) -> dict[str, Any]:
    """Every flat setting of ``cls`` and its default."""
    return {name: _default(f) for name, (_, f, _) in flat_fields(cls).items()}


def selection_settings(cls: type) -> tuple[str, ...]:
    """The flat settings marked ``selection`` (Stage 3's: they do not change a built space)."""
    return tuple(n for n, (_, f, _) in flat_fields(cls).items() if f.metadata.get("selection"))


def _coerce(value: Any) -> Any:
    """JSON and widgets give lists where a config holds tuples (hashable, frozen)."""
    if isinstance(value, list):
        return tuple(tuple(v) if isinstance(v, list) else v for v in value)
    return value


def build(cls: type[T], overrides: Mapping[str, Any] | None = None, **more: Any) -> T:
    """``cls`` with flat ``overrides`` applied to its fields and its nested configs' fields; an
    unknown name is a ColaError listing the valid ones."""
    given = {**(overrides or {}), **more}
    known = flat_fields(cls)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ColaError(f"unknown setting '{unknown[0]}' for {cls.__name__}: choose from {', '.join(known)}")
    nested: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for name, value in given.items():
        path = known[name][0]
        value = _coerce(value)
        if path:
            nested.setdefault(path[0], {})[name] = value
        else:
            top[name] = value
    for attr, values in nested.items():
        top[attr] = build(_hints(cls)[attr], values)
    return cls(**top)


# --- command-line flags -------------------------------------------------------------------------


def csv_list(text: str | None) -> tuple[str, ...]:
    """``"a, b,,c"`` → ``("a", "b", "c")``."""
    return tuple(x.strip() for x in (text or "").split(",") if x.strip())


def _ints(flag: str) -> Callable[[str], tuple[int, ...] | None]:
    def parse(text: str) -> tuple[int, ...] | None:
        try:
            return tuple(int(x) for x in csv_list(text)) or None
        except ValueError:
            raise ColaError(f"{flag} takes comma-separated integers, got '{text}'") from None

    return parse


def _shares(flag: str) -> Callable[[str], tuple[tuple[str, float], ...]]:
    """``math=0.5,prose=0.5`` → (("math", 0.5), ("prose", 0.5))."""

    def parse(text: str) -> tuple[tuple[str, float], ...]:
        shares = []
        for item in csv_list(text):
            name, sep, number = item.rpartition("=")
            try:
                value = float(number)
            except ValueError:
                sep = ""
            if not sep or not name.strip():
                raise ColaError(f"{flag} takes NAME=NUMBER pairs separated by commas, got '{item}'")
            shares.append((name.strip(), value))
        return tuple(shares)

    return parse


def _flag_of(name: str, f: dataclasses.Field, tp: Any) -> str:
    if f.metadata.get("flag"):
        return f.metadata["flag"]
    if tp is bool and _default(f) is True:
        return f"--no-{name.replace('_', '-')}"
    return f"--{name.replace('_', '-')}"


def _argument(name: str, f: dataclasses.Field, tp: Any) -> tuple[list[str], dict[str, Any]]:
    """argparse's names and keywords for one field."""
    meta, default = f.metadata, _default(f)
    flag = _flag_of(name, f, tp)
    kw: dict[str, Any] = {"dest": name, "help": meta.get("help", "")}
    choices = meta.get("choices")
    if callable(choices):
        choices = choices()
    if tp is bool:
        kw |= {"action": "store_false" if default else "store_true", "default": argparse.SUPPRESS}
    elif meta.get("repeat"):
        kw |= {"action": "append", "default": None}
    elif tp == tuple[str, ...]:
        kw |= {"type": csv_list, "default": ",".join(default)}
    elif tp == tuple[tuple[str, float], ...]:
        kw |= {"type": _shares(flag), "default": None}
    elif tp == tuple[int, ...] | None:
        kw |= {"type": _ints(flag), "default": None}
    else:
        base = next((t for t in typing.get_args(tp) if t is not type(None)), tp)
        kw |= {"type": base, "default": default}
    if choices is not None:
        kw["choices"] = tuple(choices)
    if meta.get("flag") and tp is not bool and choices is None:  # shown as the flag's name, not the field's
        kw["metavar"] = flag.lstrip("-").replace("-", "_").upper()
    if meta.get("required"):
        kw |= {"required": True, "default": None}
    return [flag, *meta.get("also", ())], kw


def add_flags(
    parser: argparse.ArgumentParser, cls: type, *, only: Iterable[str] | None = None, skip: Iterable[str] = ()
) -> None:
    """One flag per flat setting of ``cls`` that has one (``cli``), in field order; ``only`` / ``skip``
    pick among them. Booleans' defaults are the field's (an absent switch leaves the field alone)."""
    wanted = set(only) if only is not None else None
    for name, (_, f, tp) in flat_fields(cls).items():
        if not f.metadata.get("cli", True) or name in skip or (wanted is not None and name not in wanted):
            continue
        names, kw = _argument(name, f, tp)
        off = f.metadata.get("off_flag")
        if off:
            group = parser.add_mutually_exclusive_group()
            group.add_argument(*names, **kw)
            note = " (the default)" if _default(f) is False else ""
            group.add_argument(
                off,
                dest=name,
                action="store_false",
                default=argparse.SUPPRESS,
                help=f"the opposite of {names[0]}{note}",
            )
        else:
            parser.add_argument(*names, **kw)


def from_args(cls: type[T], args: argparse.Namespace, **more: Any) -> T:
    """``cls`` built from the parsed flags named like its flat settings (absent ones keep their
    defaults), plus ``more``."""
    given = {name: getattr(args, name) for name in flat_fields(cls) if getattr(args, name, None) is not None}
    return build(cls, {**given, **more})
