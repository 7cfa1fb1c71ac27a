"""The ``report`` and ``demo`` commands: the shareable HTML report of an experiment or of chosen runs
(:mod:`cola_core.html_report.document`), and the preset demo comparison that ends in one
(:mod:`cola_core.experiments.demo`). Registered in :data:`cola_core.cli.main.COMMANDS`."""

from __future__ import annotations

import argparse
from typing import Any

from cola_core.cli.args import add_store_arg
from cola_core.cli.handlers import _log
from cola_core.errors import ColaError


def add_report_args(p: argparse.ArgumentParser) -> None:
    add_store_arg(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--experiment", default=None, help="an experiment: built-in name or config JSON file")
    which.add_argument("--runs", default=None, help="comma-separated run ids (see `runs`), e.g. 1,2,3")
    p.add_argument("--out", required=True, help="the HTML file to write (self-contained, works offline)")


def add_demo_args(p: argparse.ArgumentParser) -> None:
    add_store_arg(p)
    p.add_argument("--out", default=None, help="the HTML report (default: cache/reports/demo.html)")


def run_ids(text: str) -> list[int]:
    """``"1,2,3"`` → ``[1, 2, 3]``; one clear error for anything else."""
    try:
        ids = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ColaError(f"--runs takes run ids separated by commas, e.g. 1,2,3; got '{text}'") from None
    if not ids:
        raise ColaError("--runs takes run ids separated by commas, e.g. 1,2,3")
    return list(dict.fromkeys(ids))


def cmd_report(args: argparse.Namespace) -> dict[str, Any]:
    from cola_core.evaluation.runstore import RunStore
    from cola_core.html_report.document import build_report, check_out, write_report

    ids = run_ids(args.runs) if args.runs is not None else None
    check_out(args.out)
    store = RunStore(args.store)
    html = build_report(store, experiment=args.experiment, run_ids=ids, log=_log)
    path = write_report(args.out, html)
    return {"report": str(path), "bytes": path.stat().st_size, "experiment": args.experiment, "runs": ids}


def cmd_demo(args: argparse.Namespace) -> dict[str, Any]:
    from cola_core.evaluation.runstore import RunStore
    from cola_core.experiments.demo import run_demo
    from cola_core.html_report.document import build_report, check_out, write_report
    from cola_core.paths import cache_root

    out = args.out or cache_root() / "reports" / "demo.html"
    check_out(out)  # before the work, not after it
    store = RunStore(args.store)
    result = run_demo(store, progress=_log)
    _log("demo: writing the report")
    path = write_report(out, build_report(store, experiment=result.config, log=_log))
    return {**result.to_dict(), "report": str(path), "store": str(store.path)}


def report_text(p: dict[str, Any]) -> str:
    return f"wrote {p['report']} ({p['bytes']:,} bytes): open it in a browser, no network needed"


def demo_text(p: dict[str, Any]) -> str:
    rows = [
        f"  {v['verdict']:<13} {v['claim']} · {v['capability']} · {v['compression']}  difference "
        + (f"{v['difference']:+.3f} [{v['ci_low']:+.3f}, {v['ci_high']:+.3f}]" if v["ci_low"] is not None else "n/a")
        for v in p["verdicts"]
    ]
    return "\n".join(
        [
            f"demo: experiment {p['experiment']}, {p['runs']} compressed runs in {p['store']}",
            *rows,
            f"report: {p['report']}",
        ]
    )
