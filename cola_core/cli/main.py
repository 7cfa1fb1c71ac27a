"""Command line: ``python -m cola_core <command> [--json]``.

Contract: ``--json`` prints exactly one JSON object on stdout (logs go to stderr); exit 0 on
success; exit 2 on bad input with one ``error: …`` line on stderr and no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

from cola_core.cli import args, flags, handlers, render, reporting
from cola_core.cli.args import HelpFormatter
from cola_core.errors import ColaError


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one ``error: …`` line, like every other error, and takes
    no abbreviated flags (a preset must know exactly which flags were given)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ColaError(f"{message} (see `{self.prog} --help`)")


def _emit(payload: dict[str, Any], as_json: bool, human: Callable[[dict[str, Any]], str]) -> None:
    print(json.dumps(payload, default=str) if as_json else human(payload))


def _fail(message: str) -> None:
    """The one ``error:`` line, on a line of its own (any progress bar still drawn is cleared first)."""
    while handlers.OPEN_BARS:
        handlers.OPEN_BARS.pop().close()
    print(f"error: {message}", file=sys.stderr)


class Command(NamedTuple):
    """One command: its flags, what it does (flags → payload), its text output, its one-line summary."""

    add_args: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict[str, Any]]
    render: Callable[[dict[str, Any]], str]
    summary: str


COMMANDS: dict[str, Command] = {
    "experiment": Command(
        args.experiment_args,
        handlers.cmd_experiment,
        render.experiment_text,
        "run (or resume) an experiment grid and summarise it",
    ),
    "evaluate": Command(
        args.add_evaluate_args,
        handlers.cmd_evaluate,
        render.evaluate_text,
        "capability scores with 95% confidence intervals",
    ),
    "runs": Command(args.runs_args, handlers.cmd_runs, render.runs_text, "list the run store"),
    "export-tasks": Command(
        args.export_tasks_args,
        handlers.cmd_export_tasks,
        render.export_tasks_text,
        "the built-in capability suite as lm-evaluation-harness tasks over local data",
    ),
    "compress": Command(
        args.add_compress_args,
        handlers.cmd_compress,
        render.compress_text,
        "prune or quantize a model with a calibration set",
    ),
    "models": Command(
        args.no_args,
        handlers.cmd_models,
        render.models_text,
        "list built-in models and models in the local Hugging Face cache",
    ),
    "corpora": Command(args.no_args, handlers.cmd_corpora, render.corpora_text, "list the built-in corpora"),
    "sample": Command(args.sample_args, handlers.cmd_sample, render.sample_text, "print records of a corpus split"),
    "curate": Command(
        args.curate_args,
        handlers.cmd_curate,
        render.curate_text,
        "COLA stages 1, 2 and 3: build the pool, shape it, select a calibration set, export it",
    ),
    "corpus-scores": Command(
        args.corpus_scores_args,
        handlers.cmd_corpus_scores,
        render.scores_text,
        "COLA stage 1: corpus × capability correspondence and a mix",
    ),
    "self-generate": Command(
        args.add_self_generate_args,
        handlers.cmd_self_generate,
        render.selfgen_text,
        "sample a self-generated corpus from the model (Ji et al.)",
    ),
    "report": Command(
        reporting.add_report_args,
        reporting.cmd_report,
        reporting.report_text,
        "a self-contained HTML report of an experiment or of chosen runs",
    ),
    "demo": Command(
        reporting.add_demo_args,
        reporting.cmd_demo,
        reporting.demo_text,
        "run the preset COLA vs random vs domain-matched comparison, then its HTML report",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m cola_core",
        description="COLA Studio: calibration data curation for LLM compression",
        epilog="Run `python -m cola_core COMMAND --help` for a command's flags and their defaults.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    for name, command in COMMANDS.items():
        text = command.summary.replace("%", "%%")  # argparse %-formats help texts, not descriptions
        p = sub.add_parser(name, help=text, description=command.summary, formatter_class=HelpFormatter)
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        command.add_args(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        parsed = parser.parse_args(argv)
        parsed.given = flags.given_flags(parser, argv if argv is not None else sys.argv[1:])
        command = COMMANDS[parsed.command]
        _emit(command.run(parsed), parsed.json, command.render)
    except ColaError as exc:
        _fail(str(exc))
        return 2
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    return 0
