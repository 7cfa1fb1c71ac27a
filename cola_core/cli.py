"""Command line: ``python -m cola_core <command> [--json]``.

Contract: ``--json`` prints exactly one JSON object on stdout (logs go to stderr); exit 0 on
success; exit 2 on bad input with one ``error: …`` line on stderr and no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from cola_core.errors import ColaError


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one ``error: …`` line, like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ColaError(f"{message} (see `{self.prog} --help`)")


def _emit(payload: dict[str, Any], as_json: bool, human: Callable[[dict[str, Any]], str]) -> None:
    print(json.dumps(payload, default=str) if as_json else human(payload))


def cmd_models(args: argparse.Namespace) -> dict[str, Any]:
    from cola_core.models import list_models

    return {"models": [m.to_dict() for m in list_models()]}


def _models_text(p: dict[str, Any]) -> str:
    rows = [f"{m['name']:<40} {m['source']:<9} {m['params'] or '?':>12}  {m['path']}" for m in p["models"]]
    return "\n".join([f"{'name':<40} {'source':<9} {'params':>12}  path", *rows])


def cmd_corpora(args: argparse.Namespace) -> dict[str, Any]:
    from cola_core.corpora import list_corpora

    return {"corpora": [c.to_dict() for c in list_corpora()]}


def _corpora_text(p: dict[str, Any]) -> str:
    rows = [f"{c['name']:<8} {c['domain']:<8} {'/'.join(c['splits']):<20} {c['description']}" for c in p["corpora"]]
    extra = "Also: local files (.txt .jsonl .json .csv .parquet) and hf:NAME[:CONFIG[:SPLIT]]."
    return "\n".join([*rows, extra])


def cmd_sample(args: argparse.Namespace) -> dict[str, Any]:
    from cola_core.corpora import load_records

    records = load_records(args.corpus, args.split, limit=args.n, text_field=args.text_field)
    return {"records": [r.to_dict() for r in records]}


def _sample_text(p: dict[str, Any]) -> str:
    return "\n\n".join(f"[{r['id']}] ({r['corpus']}/{r['domain']})\n{r['text']}" for r in p["records"])


COMMANDS: dict[str, tuple[Callable, Callable, str]] = {
    "models": (cmd_models, _models_text, "list built-in models and models in the local Hugging Face cache"),
    "corpora": (cmd_corpora, _corpora_text, "list the built-in corpora"),
    "sample": (cmd_sample, _sample_text, "print records of a corpus split"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m cola_core", description="COLA Studio: calibration data curation for LLM compression"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, (_, _, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        if name == "sample":
            p.add_argument("--corpus", required=True, help="built-in name, file path or hf:NAME[:CONFIG[:SPLIT]]")
            p.add_argument("--split", default="pool", help="train, pool or heldout (built-in corpora)")
            p.add_argument("--n", type=int, default=5, help="how many records")
            p.add_argument("--text-field", default="text", help="field/column holding the text (files, datasets)")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        run, human, _ = COMMANDS[args.command]
        _emit(run(args), args.json, human)
    except ColaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0
